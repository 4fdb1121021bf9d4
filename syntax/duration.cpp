#include "syntax/duration.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>

#include "syntax/lexing.h"

namespace troupe::syntax {
namespace {

using detail::is_digit;
using detail::parse_digits;
using detail::quoted;

constexpr std::string_view kDurationExample = R"(like "250ms", "30s" or "5m")";

bool is_lower(char c) {
  return c >= 'a' && c <= 'z';
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

}  // namespace

Parsed<std::chrono::nanoseconds> parse_duration(std::string_view text) {
  using Result = Parsed<std::chrono::nanoseconds>;
  const std::string generic = "expected a duration " + std::string(kDurationExample) +
                              " (units ns, us, ms, s, m, h), got " + quoted(text);
  if (text.empty()) return Result::fail(generic);
  if (text.front() == '-') {
    return Result::fail("a duration cannot be negative, got " + quoted(text));
  }
  if (text == "0") return Result::ok(std::chrono::nanoseconds::zero());
  if (std::all_of(text.begin(), text.end(), is_digit)) {
    return Result::fail(quoted(text) + " has no unit; write e.g. \"" + std::string(text) +
                        "s\" or \"" + std::string(text) + "ms\" (units ns, us, ms, s, m, h)");
  }
  std::uint64_t total = 0;
  std::size_t last_unit = 0;  // index into kDurationUnits; units must descend
  bool first = true;
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t digits_begin = i;
    while (i < text.size() && is_digit(text[i])) ++i;
    if (i == digits_begin) return Result::fail(generic);
    if (i < text.size() && text[i] == '.') {
      return Result::fail("fractions are not supported in durations, got " + quoted(text) +
                          "; use a smaller unit (e.g. \"1500ms\")");
    }
    const std::size_t unit_begin = i;
    while (i < text.size() && is_lower(text[i])) ++i;
    const std::string_view digits = text.substr(digits_begin, unit_begin - digits_begin);
    const std::string_view unit = text.substr(unit_begin, i - unit_begin);
    const auto found = std::find_if(kDurationUnits.begin(), kDurationUnits.end(),
                                    [&](const DurationUnit& u) { return u.name == unit; });
    if (found == kDurationUnits.end()) return Result::fail(generic);
    const auto index = static_cast<std::size_t>(found - kDurationUnits.begin());
    if (!first && index <= last_unit) return Result::fail(generic);
    first = false;
    last_unit = index;
    std::uint64_t count = 0;
    constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    if (!parse_digits(digits, count) || count > kMax / found->nanos ||
        total > kMax - count * found->nanos) {
      return Result::fail("duration " + quoted(text) + " is too large");
    }
    total += count * found->nanos;
  }
  return Result::ok(std::chrono::nanoseconds(static_cast<std::int64_t>(total)));
}

std::string format_duration(std::chrono::nanoseconds d) {
  if (d <= std::chrono::nanoseconds::zero()) return "0s";
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

}  // namespace troupe::syntax
