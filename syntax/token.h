#pragma once

/// How a secret token is read back from a file, stdin or the environment:
/// one definition for trouped (token files, hash-token) and the tools
/// (--token, --token-file, TROUPE_TOKEN), so both compare the same bytes.

#include <string_view>

namespace troupe::syntax {

/// A token as written in a token file or on stdin: `text` without the
/// whitespace around it (a trailing newline, typically); empty when none.
inline std::string_view trim_token(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  const auto first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(kSpace) - first + 1);
}

}  // namespace troupe::syntax
