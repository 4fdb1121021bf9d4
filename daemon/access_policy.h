#pragma once

/// Pure decisions over config::AuthOptions: which identity a caller's
/// credentials name, and whether it may do something on a troupe. No gRPC:
/// the Authorizer feeds them from a call and turns the answer into a status.

#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"

namespace troupe::daemon {

/// What a call presented.
struct Credentials {
  /// The `authorization` metadata value, when sent.
  std::optional<std::string_view> authorization;
  /// The verified client certificate's subject (RFC 2253); empty without one.
  std::string_view certificate_subject;
};

/// The identity the credentials name, or why there is none (`error`, for the
/// client: it never says which tokens or identities exist).
struct Identification {
  const config::Identity* identity = nullptr;
  std::string error;
};

/// A bearer token wins over a certificate. The token's SHA-256 is compared
/// with every identity's in constant time (no early exit), so the time taken
/// tells nothing about how close a guess was.
Identification identify(const config::AuthOptions& auth, const Credentials& credentials);

/// `pattern` with '*' matching any run of characters (also none).
bool matches(std::string_view pattern, std::string_view troupe);

/// Whether `identity` holds `permission` on `troupe` through any grant.
bool allows(const config::Identity& identity, config::Permission permission,
            std::string_view troupe);

/// "submit", "read", "cancel", "admin".
std::string_view permission_name(config::Permission permission);

}  // namespace troupe::daemon
