#include "daemon/authorizer.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/auth_context.h>
#include <spdlog/spdlog.h>

#include <string>

#include "daemon/access_policy.h"

namespace troupe::daemon {
namespace {

Credentials credentials_of(const grpc::ServerContextBase& context) {
  Credentials out;
  const auto& metadata = context.client_metadata();
  if (const auto it = metadata.find("authorization"); it != metadata.end()) {
    out.authorization = std::string_view(it->second.data(), it->second.size());
  }
  const auto auth_context = context.auth_context();
  if (auth_context && auth_context->IsPeerAuthenticated()) {
    const auto subjects = auth_context->FindPropertyValues(GRPC_X509_SUBJECT_PROPERTY_NAME);
    if (!subjects.empty()) {
      out.certificate_subject = std::string_view(subjects.front().data(), subjects.front().size());
    }
  }
  return out;
}

}  // namespace

bool Authorizer::Caller::may(config::Permission permission, std::string_view troupe) const {
  return identity_ == nullptr || allows(*identity_, permission, troupe);
}

Authorizer::Authorizer(const config::AuthOptions& auth, prometheus::Registry& registry)
    : policy_(std::make_shared<const config::AuthOptions>(auth)),
      denied_(prometheus::BuildCounter()
                  .Name("troupe_auth_denied_total")
                  .Help("Calls refused: reason unauthenticated (no or unknown credentials) or "
                        "permission_denied (the identity lacks the permission on the troupe)")
                  .Register(registry)) {}

void Authorizer::update(const config::AuthOptions& auth) {
  policy_.store(std::make_shared<const config::AuthOptions>(auth));
}

std::variant<Authorizer::Caller, RpcError> Authorizer::authenticate(
    const grpc::ServerContextBase& context, std::string_view method) const {
  Caller caller;
  caller.policy_ = policy_.load();
  if (!caller.policy_->enabled()) return caller;
  auto found = identify(*caller.policy_, credentials_of(context));
  if (found.identity == nullptr) {
    return deny(context, grpc::StatusCode::UNAUTHENTICATED, std::move(found.error), method);
  }
  caller.identity_ = found.identity;
  return caller;
}

std::optional<RpcError> Authorizer::authorize(const grpc::ServerContextBase& context,
                                              const Caller& caller, config::Permission permission,
                                              std::string_view troupe,
                                              std::string_view method) const {
  if (caller.may(permission, troupe)) return std::nullopt;
  return deny(context, grpc::StatusCode::PERMISSION_DENIED,
              "identity \"" + caller.identity_->name + "\" lacks " +
                  std::string(permission_name(permission)) + " on troupe \"" + std::string(troupe) +
                  "\"",
              method);
}

RpcError Authorizer::deny_everywhere(const grpc::ServerContextBase& context, const Caller& caller,
                                     config::Permission permission, std::string_view method) const {
  return deny(context, grpc::StatusCode::PERMISSION_DENIED,
              "identity \"" + (caller.identity_ != nullptr ? caller.identity_->name : "") +
                  "\" lacks " + std::string(permission_name(permission)) + " on every troupe",
              method);
}

RpcError Authorizer::deny(const grpc::ServerContextBase& context, grpc::StatusCode code,
                          std::string message, std::string_view method) const {
  const bool unauthenticated = code == grpc::StatusCode::UNAUTHENTICATED;
  denied_
      .Add({{"method", std::string(method)},
            {"reason", unauthenticated ? "unauthenticated" : "permission_denied"}})
      .Increment();
  spdlog::warn("denied {} from {}: {}: {}", method, context.peer(),
               unauthenticated ? "UNAUTHENTICATED" : "PERMISSION_DENIED", message);
  return RpcError{code, std::move(message), std::nullopt};
}

}  // namespace troupe::daemon
