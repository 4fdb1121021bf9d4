#pragma once

/// Character-level helpers the value parsers share (syntax/ and config's
/// size parser): one definition of a digit run and of how a value is quoted
/// back in a message.

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace troupe::syntax::detail {

inline bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

/// `text` in double quotes, as messages show what was written.
inline std::string quoted(std::string_view text) {
  // Built by appends: `"\"" + std::string(...)` trips GCC 12's -Wrestrict at -O3.
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back('"');
  out.append(text);
  out.push_back('"');
  return out;
}

/// Parses a run of decimal digits into `out`; false on overflow.
inline bool parse_digits(std::string_view digits, std::uint64_t& out) {
  std::uint64_t value = 0;
  for (const char c : digits) {
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return false;
    value = value * 10 + digit;
  }
  out = value;
  return true;
}

}  // namespace troupe::syntax::detail
