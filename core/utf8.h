#pragma once

/// UTF-8 repair and clipping for text that leaves trouped as text: proto3
/// `string` fields, gRPC messages, JSON log lines. Handlers produce raw bytes
/// (a program's stderr, an upstream's body); whoever clips such text cuts at
/// code-point boundaries with these, and whoever sends it as a string repairs
/// it with valid_utf8(). Pure functions; thread-safe.

#include <cstddef>
#include <string>
#include <string_view>

namespace troupe::core {

/// True when `text` is well-formed UTF-8 (Unicode 15, table 3-7: no
/// overlong forms, surrogates or code points past U+10FFFF).
bool is_valid_utf8(std::string_view text);

/// `text` with each maximal ill-formed subsequence replaced by U+FFFD (the
/// Unicode-recommended practice, as browsers decode); `text` itself when it
/// is well-formed.
std::string valid_utf8(std::string_view text);

/// The longest prefix of `text` of at most `max_bytes` bytes that does not
/// end inside a multi-byte character.
std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes);

/// The longest suffix of `text` of at most `max_bytes` bytes that does not
/// start inside a multi-byte character.
std::string_view utf8_suffix(std::string_view text, std::size_t max_bytes);

}  // namespace troupe::core
