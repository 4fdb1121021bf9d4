#include "config/value_parsers.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>
#include <vector>

namespace troupe::config {
namespace {

constexpr std::string_view kDurationExample = R"(like "250ms", "30s" or "5m")";

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_lower(char c) {
  return c >= 'a' && c <= 'z';
}

std::string quoted(std::string_view text) {
  // Built by appends: `"\"" + std::string(...)` trips GCC 12's -Wrestrict at -O3.
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back('"');
  out.append(text);
  out.push_back('"');
  return out;
}

/// Parses a run of decimal digits into `out`; false on overflow.
bool parse_digits(std::string_view digits, std::uint64_t& out) {
  std::uint64_t value = 0;
  for (const char c : digits) {
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return false;
    value = value * 10 + digit;
  }
  out = value;
  return true;
}

struct DurationUnit {
  std::string_view name;
  std::uint64_t nanos;
};
constexpr std::array<DurationUnit, 6> kDurationUnits{{
    {"h", 3'600'000'000'000ULL},
    {"m", 60'000'000'000ULL},
    {"s", 1'000'000'000ULL},
    {"ms", 1'000'000ULL},
    {"us", 1'000ULL},
    {"ns", 1ULL},
}};

std::optional<std::uint16_t> parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5 || !std::all_of(text.begin(), text.end(), is_digit)) {
    return std::nullopt;
  }
  std::uint64_t port = 0;
  if (!parse_digits(text, port) || port > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(port);
}

bool is_ipv4(const std::string& text) {
  in_addr addr{};
  return inet_pton(AF_INET, text.c_str(), &addr) == 1;
}

bool is_ipv6(const std::string& text) {
  in6_addr addr{};
  return inet_pton(AF_INET6, text.c_str(), &addr) == 1;
}

bool looks_numeric(std::string_view host) {
  return std::all_of(host.begin(), host.end(), [](char c) { return is_digit(c) || c == '.'; });
}

/// Validates a host (already split from its port); empty string when fine.
std::string check_host(std::string_view host, bool bracketed) {
  if (bracketed) {
    return is_ipv6(std::string(host)) ? "" : quoted(host) + " is not a valid IPv6 address";
  }
  if (host.empty()) return "missing host";
  if (looks_numeric(host)) {
    return is_ipv4(std::string(host)) ? "" : quoted(host) + " is not a valid IPv4 address";
  }
  return is_hostname(host) ? "" : quoted(host) + " is not a valid host name";
}

}  // namespace

Parsed<core::Duration> parse_duration(std::string_view text) {
  const std::string generic = "expected a duration " + std::string(kDurationExample) +
                              " (units ns, us, ms, s, m, h), got " + quoted(text);
  if (text.empty()) return Parsed<core::Duration>::fail(generic);
  if (text.front() == '-') {
    return Parsed<core::Duration>::fail("a duration cannot be negative, got " + quoted(text));
  }
  if (text == "0") return Parsed<core::Duration>::ok(core::Duration::zero());
  if (std::all_of(text.begin(), text.end(), is_digit)) {
    return Parsed<core::Duration>::fail(quoted(text) + " has no unit; write e.g. \"" +
                                        std::string(text) + "s\" or \"" + std::string(text) +
                                        "ms\" (units ns, us, ms, s, m, h)");
  }
  std::uint64_t total = 0;
  std::size_t last_unit = 0;  // index into kDurationUnits; units must descend
  bool first = true;
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t digits_begin = i;
    while (i < text.size() && is_digit(text[i])) ++i;
    if (i == digits_begin) return Parsed<core::Duration>::fail(generic);
    if (i < text.size() && text[i] == '.') {
      return Parsed<core::Duration>::fail("fractions are not supported in durations, got " +
                                          quoted(text) + "; use a smaller unit (e.g. \"1500ms\")");
    }
    const std::size_t unit_begin = i;
    while (i < text.size() && is_lower(text[i])) ++i;
    const std::string_view digits = text.substr(digits_begin, unit_begin - digits_begin);
    const std::string_view unit = text.substr(unit_begin, i - unit_begin);
    const auto found = std::find_if(kDurationUnits.begin(), kDurationUnits.end(),
                                    [&](const DurationUnit& u) { return u.name == unit; });
    if (found == kDurationUnits.end()) return Parsed<core::Duration>::fail(generic);
    const auto index = static_cast<std::size_t>(found - kDurationUnits.begin());
    if (!first && index <= last_unit) return Parsed<core::Duration>::fail(generic);
    first = false;
    last_unit = index;
    std::uint64_t count = 0;
    constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    if (!parse_digits(digits, count) || count > kMax / found->nanos ||
        total > kMax - count * found->nanos) {
      return Parsed<core::Duration>::fail("duration " + quoted(text) + " is too large");
    }
    total += count * found->nanos;
  }
  return Parsed<core::Duration>::ok(core::Duration(static_cast<std::int64_t>(total)));
}

Parsed<std::size_t> parse_size(std::string_view text) {
  const std::string generic = R"(expected a size like "512", "64KiB" or "4MiB" (units B, KiB, )"
                              R"(MiB, GiB), got )" +
                              quoted(text);
  if (!text.empty() && text.front() == '-') {
    return Parsed<std::size_t>::fail("a size cannot be negative, got " + quoted(text));
  }
  std::size_t i = 0;
  while (i < text.size() && is_digit(text[i])) ++i;
  if (i == 0) return Parsed<std::size_t>::fail(generic);
  const std::string_view unit = text.substr(i);
  std::uint64_t multiplier = 0;
  if (unit.empty() || unit == "B") {
    multiplier = 1;
  } else if (unit == "KiB") {
    multiplier = 1ULL << 10;
  } else if (unit == "MiB") {
    multiplier = 1ULL << 20;
  } else if (unit == "GiB") {
    multiplier = 1ULL << 30;
  } else {
    return Parsed<std::size_t>::fail("unknown size unit " + quoted(unit) + " in " + quoted(text) +
                                     R"(; use B, KiB, MiB or GiB (e.g. "4MiB"))");
  }
  std::uint64_t count = 0;
  if (!parse_digits(text.substr(0, i), count) ||
      count > std::numeric_limits<std::size_t>::max() / multiplier) {
    return Parsed<std::size_t>::fail("size " + quoted(text) + " is too large");
  }
  return Parsed<std::size_t>::ok(static_cast<std::size_t>(count * multiplier));
}

Parsed<HostPort> parse_address(std::string_view text) {
  const std::string example = R"(; write host:port, e.g. "127.0.0.1:50051" or "[::1]:50051")";
  HostPort result;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) {
      return Parsed<HostPort>::fail("missing ']' in " + quoted(text) + example);
    }
    const std::string_view host = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      return Parsed<HostPort>::fail("missing port in " + quoted(text) + example);
    }
    if (auto why = check_host(host, true); !why.empty()) {
      return Parsed<HostPort>::fail(why + example);
    }
    result.host = std::string(host);
    port_text = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return Parsed<HostPort>::fail("missing port in " + quoted(text) + example);
    }
    const std::string_view host = text.substr(0, colon);
    if (host.find(':') != std::string_view::npos) {
      return Parsed<HostPort>::fail("IPv6 addresses need brackets, got " + quoted(text) + example);
    }
    if (auto why = check_host(host, false); !why.empty()) {
      return Parsed<HostPort>::fail(why + " in " + quoted(text) + example);
    }
    result.host = std::string(host);
    port_text = text.substr(colon + 1);
  }
  const auto port = parse_port(port_text);
  if (!port) {
    return Parsed<HostPort>::fail("port " + quoted(port_text) + " in " + quoted(text) +
                                  " is not a number from 0 to 65535");
  }
  result.port = *port;
  return Parsed<HostPort>::ok(std::move(result));
}

bool is_loopback(const HostPort& address) {
  if (address.host == "localhost") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, address.host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  return ::inet_pton(AF_INET6, address.host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

Parsed<Url> parse_url(std::string_view text) {
  const std::string example = R"(; write e.g. "http://127.0.0.1:8080/jobs")";
  Url url;
  std::string_view rest;
  if (text.starts_with("http://")) {
    url.scheme = "http";
    rest = text.substr(7);
  } else if (text.starts_with("https://")) {
    url.scheme = "https";
    rest = text.substr(8);
  } else {
    return Parsed<Url>::fail("URL " + quoted(text) + " must start with http:// or https://" +
                             example);
  }
  const auto authority_end = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, authority_end);
  url.target.push_back('/');  // url.target is empty; GCC 12 -O3 misreads `= "/"` (-Wrestrict)
  if (authority_end != std::string_view::npos) {
    const std::string_view target = rest.substr(authority_end);
    // "?q" and "#f" still need the root path in front.
    url.target.append(target.front() == '/' ? target.substr(1) : target);
  }
  if (authority.find('@') != std::string_view::npos) {
    return Parsed<Url>::fail("URL " + quoted(text) +
                             " must not carry credentials; send them in headers instead");
  }
  std::string_view host = authority;
  std::string_view port_text;
  bool bracketed = false;
  if (!host.empty() && host.front() == '[') {
    const auto close = host.find(']');
    if (close == std::string_view::npos) {
      return Parsed<Url>::fail("missing ']' in URL " + quoted(text) + example);
    }
    if (close + 1 < host.size()) {
      if (host[close + 1] != ':') return Parsed<Url>::fail("bad URL " + quoted(text) + example);
      port_text = host.substr(close + 2);
      if (port_text.empty()) return Parsed<Url>::fail("empty port in URL " + quoted(text));
    }
    host = host.substr(1, close - 1);
    bracketed = true;
  } else if (const auto colon = host.find(':'); colon != std::string_view::npos) {
    port_text = host.substr(colon + 1);
    host = host.substr(0, colon);
    if (port_text.empty()) return Parsed<Url>::fail("empty port in URL " + quoted(text));
  }
  if (host.empty()) return Parsed<Url>::fail("URL " + quoted(text) + " has no host" + example);
  if (auto why = check_host(host, bracketed); !why.empty()) {
    return Parsed<Url>::fail(why + " in URL " + quoted(text));
  }
  url.host = std::string(host);
  if (!port_text.empty()) {
    const auto port = parse_port(port_text);
    if (!port || *port == 0) {
      return Parsed<Url>::fail("port " + quoted(port_text) + " in URL " + quoted(text) +
                               " is not a number from 1 to 65535");
    }
    url.port = *port;
  }
  return Parsed<Url>::ok(std::move(url));
}

bool is_hostname(std::string_view text) {
  if (text.empty() || text.size() > 253) return false;
  std::size_t begin = 0;
  while (begin <= text.size()) {
    auto end = text.find('.', begin);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view label = text.substr(begin, end - begin);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (const char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
    begin = end + 1;
  }
  return true;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> previous(b.size() + 1);
  std::vector<std::size_t> current(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) previous[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitution});
    }
    std::swap(previous, current);
  }
  return previous[b.size()];
}

std::optional<std::string_view> closest_match(std::string_view word,
                                              std::span<const std::string_view> candidates) {
  std::optional<std::string_view> best;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  // A third of the word's length, at least 1 and at most 3 edits: close enough
  // to be a typo, far enough to avoid silly suggestions for short words.
  const std::size_t limit = std::clamp<std::size_t>(word.size() / 3, 1, 3);
  // Case and '-' vs '_' slips count as the smallest possible typo.
  std::string lowered(word);
  std::transform(lowered.begin(), lowered.end(), lowered.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::replace(lowered.begin(), lowered.end(), '-', '_');
  for (const auto candidate : candidates) {
    if (candidate == word) continue;
    const std::size_t distance = lowered == candidate ? 1 : edit_distance(lowered, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  if (best && best_distance <= limit) return best;
  return std::nullopt;
}

std::string format_duration(core::Duration d) {
  if (d == core::Duration::zero()) return "0s";
  auto remaining = static_cast<std::uint64_t>(d.count());
  std::string out;
  for (const auto& unit : kDurationUnits) {
    if (remaining >= unit.nanos) {
      out += std::to_string(remaining / unit.nanos) + std::string(unit.name);
      remaining %= unit.nanos;
    }
  }
  return out;
}

std::string format_size(std::size_t bytes) {
  constexpr std::array<std::pair<std::size_t, std::string_view>, 3> kUnits{{
      {std::size_t{1} << 30, "GiB"},
      {std::size_t{1} << 20, "MiB"},
      {std::size_t{1} << 10, "KiB"},
  }};
  for (const auto& [size, name] : kUnits) {
    if (bytes != 0 && bytes % size == 0) return std::to_string(bytes / size) + std::string(name);
  }
  return std::to_string(bytes) + "B";
}

}  // namespace troupe::config
