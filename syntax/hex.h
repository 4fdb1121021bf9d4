#pragma once

/// Lower-case hex of bytes: one spelling for token hashes (config/crypto)
/// and request signatures (handlers/http).

#include <cstdint>
#include <span>
#include <string>

namespace troupe::syntax {

inline std::string to_hex(std::span<const std::uint8_t> bytes) {
  constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const std::uint8_t byte : bytes) {
    out += kDigits[byte >> 4];
    out += kDigits[byte & 0xf];
  }
  return out;
}

}  // namespace troupe::syntax
