#pragma once

/// Who may call which method on which troupe: the gRPC side of the access
/// policy (daemon/access_policy.h).

#include <grpcpp/server_context.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string_view>
#include <variant>

#include "config/config.h"
#include "daemon/status_mapping.h"

namespace troupe::daemon {

/// Checks each call's credentials (a bearer token in `authorization`
/// metadata, or the verified client certificate's subject) against `auth`,
/// and an identity's permission on a troupe. A denial is an RpcError
/// (UNAUTHENTICATED or PERMISSION_DENIED naming what is missing, never which
/// tokens exist), counted in troupe_auth_denied_total{method,reason} and
/// logged with the peer, without the token. With no identities configured
/// every call is allowed. Thread-safe: checks read a snapshot of the policy,
/// which update() (SIGHUP) replaces atomically; a call keeps the snapshot it
/// authenticated with.
class Authorizer {
 public:
  /// An authenticated caller: the policy it was checked against and its
  /// identity (nullptr when authentication is off).
  class Caller {
   public:
    bool may(config::Permission permission, std::string_view troupe) const;

   private:
    friend class Authorizer;
    std::shared_ptr<const config::AuthOptions> policy_;
    const config::Identity* identity_ = nullptr;
  };

  /// Registers the denial counter in `registry`.
  Authorizer(const config::AuthOptions& auth, prometheus::Registry& registry);

  void update(const config::AuthOptions& auth);

  /// The caller, or UNAUTHENTICATED. `method` names the RPC in logs/metrics.
  std::variant<Caller, RpcError> authenticate(const grpc::ServerContextBase& context,
                                              std::string_view method) const;
  /// nullopt when `caller` holds `permission` on `troupe`; else
  /// PERMISSION_DENIED, counted and logged.
  std::optional<RpcError> authorize(const grpc::ServerContextBase& context, const Caller& caller,
                                    config::Permission permission, std::string_view troupe,
                                    std::string_view method) const;
  /// PERMISSION_DENIED for a caller without `permission` on any troupe (a
  /// list it would see empty), counted and logged.
  RpcError deny_everywhere(const grpc::ServerContextBase& context, const Caller& caller,
                           config::Permission permission, std::string_view method) const;

 private:
  RpcError deny(const grpc::ServerContextBase& context, grpc::StatusCode code, std::string message,
                std::string_view method) const;

  std::atomic<std::shared_ptr<const config::AuthOptions>> policy_;
  prometheus::Family<prometheus::Counter>& denied_;
};

}  // namespace troupe::daemon
