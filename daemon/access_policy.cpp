#include "daemon/access_policy.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cctype>

#include "config/crypto.h"

namespace troupe::daemon {
namespace {

constexpr std::string_view kScheme = "bearer ";

bool starts_with_scheme(std::string_view value) {
  if (value.size() < kScheme.size()) return false;
  return std::equal(kScheme.begin(), kScheme.end(), value.begin(), [](char a, char b) {
    return a == std::tolower(static_cast<unsigned char>(b));
  });
}

}  // namespace

Identification identify(const config::AuthOptions& auth, const Credentials& credentials) {
  if (credentials.authorization) {
    const std::string_view value = *credentials.authorization;
    if (!starts_with_scheme(value) || value.size() == kScheme.size()) {
      return {nullptr, "the authorization header must be \"Bearer <token>\""};
    }
    const config::Sha256 presented = config::sha256(value.substr(kScheme.size()));
    const config::Identity* found = nullptr;
    for (const auto& identity : auth.identities) {
      if (!identity.token_sha256) continue;
      const bool equal =
          CRYPTO_memcmp(identity.token_sha256->data(), presented.data(), presented.size()) == 0;
      if (equal) found = &identity;
    }
    if (found == nullptr) return {nullptr, "the bearer token matches no identity"};
    return {found, {}};
  }
  if (!credentials.certificate_subject.empty()) {
    for (const auto& identity : auth.identities) {
      if (identity.certificate_subject == credentials.certificate_subject) return {&identity, {}};
    }
    return {nullptr, "the client certificate's subject \"" +
                         std::string(credentials.certificate_subject) +
                         "\" names no identity; send a bearer token (authorization: Bearer "
                         "<token>) or a certificate whose subject an identity names"};
  }
  return {nullptr,
          "no credentials: send a bearer token (authorization: Bearer <token>) or a client "
          "certificate whose subject an identity names (docs/security.md)"};
}

bool matches(std::string_view pattern, std::string_view troupe) {
  // Greedy glob with backtracking to the last '*': linear for one '*'.
  std::size_t p = 0;
  std::size_t t = 0;
  std::size_t star = std::string_view::npos;
  std::size_t resume = 0;
  while (t < troupe.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (p < pattern.size() && pattern[p] == troupe[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool allows(const config::Identity& identity, config::Permission permission,
            std::string_view troupe) {
  const auto bit = static_cast<config::Permissions>(permission);
  return std::any_of(identity.grants.begin(), identity.grants.end(), [&](const config::Grant& g) {
    return (g.permissions & bit) != 0 && matches(g.troupes, troupe);
  });
}

std::string_view permission_name(config::Permission permission) {
  switch (permission) {
    case config::Permission::kSubmit:
      return "submit";
    case config::Permission::kRead:
      return "read";
    case config::Permission::kCancel:
      return "cancel";
    case config::Permission::kAdmin:
      return "admin";
  }
  return "?";
}

}  // namespace troupe::daemon
