#include "core/utf8.h"

#include <cstdint>

namespace troupe::core {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
// A cut backs off at most this many continuation bytes (a 4-byte character).
constexpr std::size_t kMaxContinuation = 3;

bool is_continuation(char c) {
  return (static_cast<std::uint8_t>(c) & 0xC0) == 0x80;
}

/// The length of the well-formed character at `text[at]`, or 0; in
/// `*consumed` how many bytes form the maximal ill-formed subpart when it is
/// not (at least 1).
std::size_t char_length(std::string_view text, std::size_t at, std::size_t* consumed) {
  const auto b0 = static_cast<std::uint8_t>(text[at]);
  *consumed = 1;
  if (b0 < 0x80) return 1;
  std::size_t length = 0;
  std::uint8_t low = 0x80;  // the allowed range of the second byte
  std::uint8_t high = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    if (b0 == 0xE0) low = 0xA0;   // no overlong forms
    if (b0 == 0xED) high = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    if (b0 == 0xF0) low = 0x90;   // no overlong forms
    if (b0 == 0xF4) high = 0x8F;  // nothing past U+10FFFF
  } else {
    return 0;
  }
  for (std::size_t i = 1; i < length; ++i) {
    if (at + i >= text.size()) return 0;
    const auto b = static_cast<std::uint8_t>(text[at + i]);
    if (b < (i == 1 ? low : 0x80) || b > (i == 1 ? high : 0xBF)) return 0;
    *consumed = i + 1;
  }
  return length;
}

}  // namespace

bool is_valid_utf8(std::string_view text) {
  std::size_t consumed = 0;
  for (std::size_t at = 0; at < text.size();) {
    // ASCII runs are the common case.
    if (static_cast<std::uint8_t>(text[at]) < 0x80) {
      ++at;
      continue;
    }
    const std::size_t length = char_length(text, at, &consumed);
    if (length == 0) return false;
    at += length;
  }
  return true;
}

std::string valid_utf8(std::string_view text) {
  if (is_valid_utf8(text)) return std::string(text);
  std::string out;
  out.reserve(text.size() + 2 * kReplacement.size());
  std::size_t consumed = 0;
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t length = char_length(text, at, &consumed);
    if (length == 0) {
      out += kReplacement;
      at += consumed;
    } else {
      out.append(text.substr(at, length));
      at += length;
    }
  }
  return out;
}

std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  std::size_t end = max_bytes;
  for (std::size_t i = 0; i < kMaxContinuation && end > 0 && is_continuation(text[end]); ++i) {
    --end;
  }
  return text.substr(0, end);
}

std::string_view utf8_suffix(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  std::size_t begin = text.size() - max_bytes;
  for (std::size_t i = 0;
       i < kMaxContinuation && begin < text.size() && is_continuation(text[begin]); ++i) {
    ++begin;
  }
  return text.substr(begin);
}

}  // namespace troupe::core
