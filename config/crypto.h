#pragma once

/// The few cryptographic checks the config needs, over OpenSSL: PEM
/// certificates and keys (server.tls) and SHA-256 token hashes (auth). Pure
/// functions; thread-safe.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "syntax/token.h"

namespace troupe::config {

using Sha256 = std::array<std::uint8_t, 32>;

// Tokens are trimmed the same way by trouped and the tools (syntax/).
using syntax::trim_token;

/// SHA-256 of `text`.
Sha256 sha256(std::string_view text);
/// Lower-case hex, 64 characters.
std::string to_hex(const Sha256& digest);

namespace detail {

/// Empty when `cert_pem` holds at least one certificate and `key_pem` the
/// private key of the first; otherwise what is wrong.
std::string check_key_pair(const std::string& cert_pem, const std::string& key_pem);
/// Empty when `pem` holds at least one certificate (a CA bundle).
std::string check_certificates(const std::string& pem);

}  // namespace detail
}  // namespace troupe::config
