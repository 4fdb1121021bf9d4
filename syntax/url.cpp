#include "syntax/url.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <optional>

#include "syntax/lexing.h"

namespace troupe::syntax {
namespace {

using detail::is_digit;
using detail::quoted;

constexpr std::string_view kAddressExample =
    R"(; write host:port, e.g. "127.0.0.1:50051" or "[::1]:50051")";
constexpr std::string_view kUrlExample = R"(; write e.g. "http://127.0.0.1:8080/jobs")";

std::optional<std::uint16_t> parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5 || !std::all_of(text.begin(), text.end(), is_digit)) {
    return std::nullopt;
  }
  unsigned port = 0;
  for (const char c : text) port = port * 10 + static_cast<unsigned>(c - '0');
  if (port > 65535) return std::nullopt;
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

/// "host", "host:port", "[v6]" or "[v6]:port", split once for addresses and
/// URLs alike. `port` is nullopt when none is written; "host:" gives "".
struct Authority {
  std::string_view host;
  bool bracketed = false;
  std::optional<std::string_view> port;
};

Parsed<Authority> split_authority(std::string_view text) {
  Authority a;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) {
      return Parsed<Authority>::fail("missing ']' in " + quoted(text));
    }
    a.host = text.substr(1, close - 1);
    a.bracketed = true;
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') {
        return Parsed<Authority>::fail("missing port after ']' in " + quoted(text));
      }
      a.port = text.substr(close + 2);
    }
  } else if (const auto colon = text.find(':'); colon != std::string_view::npos) {
    a.host = text.substr(0, colon);
    a.port = text.substr(colon + 1);
    if (a.port->find(':') != std::string_view::npos) {
      return Parsed<Authority>::fail("IPv6 addresses need brackets, got " + quoted(text));
    }
  } else {
    a.host = text;
  }
  if (auto why = check_host(a.host, a.bracketed); !why.empty()) {
    return Parsed<Authority>::fail(why + " in " + quoted(text));
  }
  return Parsed<Authority>::ok(a);
}

}  // namespace

Parsed<HostPort> parse_address(std::string_view text) {
  auto split = split_authority(text);
  if (!split.value) return Parsed<HostPort>::fail(split.error + std::string(kAddressExample));
  const Authority& a = *split.value;
  if (!a.port) {
    return Parsed<HostPort>::fail("missing port in " + quoted(text) + std::string(kAddressExample));
  }
  const auto port = parse_port(*a.port);
  if (!port) {
    return Parsed<HostPort>::fail("port " + quoted(*a.port) + " in " + quoted(text) +
                                  " is not a number from 0 to 65535");
  }
  return Parsed<HostPort>::ok(HostPort{std::string(a.host), *port});
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
  const std::string example(kUrlExample);
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
    std::string_view target = rest.substr(authority_end);
    target = target.substr(0, target.find('#'));  // the fragment never goes on the wire
    // "?q" still needs the root path in front.
    if (!target.empty()) url.target.append(target.front() == '/' ? target.substr(1) : target);
  }
  if (authority.find('@') != std::string_view::npos) {
    return Parsed<Url>::fail("URL " + quoted(text) +
                             " must not carry credentials; send them in headers instead");
  }
  if (authority.empty()) return Parsed<Url>::fail("URL " + quoted(text) + " has no host" + example);
  auto split = split_authority(authority);
  if (!split.value) return Parsed<Url>::fail(split.error + " in URL " + quoted(text) + example);
  const Authority& a = *split.value;
  url.host = std::string(a.host);
  url.port = url.tls() ? 443 : 80;
  if (a.port) {
    const auto port = parse_port(*a.port);
    if (!port || *port == 0) {
      return Parsed<Url>::fail("port " + quoted(*a.port) + " in URL " + quoted(text) +
                               " is not a number from 1 to 65535");
    }
    url.port = *port;
  }
  return Parsed<Url>::ok(std::move(url));
}

std::string Url::host_header() const {
  std::string out;
  const bool v6 = host.find(':') != std::string::npos;
  if (v6) out.push_back('[');
  out.append(host);
  if (v6) out.push_back(']');
  if (port != (tls() ? 443 : 80)) {
    out.push_back(':');
    out.append(std::to_string(port));
  }
  return out;
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

}  // namespace troupe::syntax
