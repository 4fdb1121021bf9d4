#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/support/status.h>

#include <chrono>
#include <memory>
#include <string>

namespace troupe::tools {

/// grpc.health.v1 serving status (the proto enum's values).
enum class ServingStatus : int {
  kUnknown = 0,
  kServing = 1,
  kNotServing = 2,
  kServiceUnknown = 3,
};

struct HealthResult {
  grpc::Status status;  // the RPC's status; `serving` is meaningful when ok()
  ServingStatus serving = ServingStatus::kUnknown;
};

/// "SERVING", "NOT_SERVING", ...
const char* serving_status_name(ServingStatus s);

/// Calls grpc.health.v1.Health/Check for `service` ("" = the whole server)
/// and blocks the calling thread until the answer or `deadline`.
/// Uses a generic stub with hand-encoded messages, so the binary carries no
/// copy of health.proto that could clash with another one linked beside it.
HealthResult check_health(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                          std::chrono::milliseconds deadline);

namespace detail {
/// Wire encoding of HealthCheckRequest{service}.
std::string encode_health_request(const std::string& service);
/// Decodes HealthCheckResponse.status; kUnknown when absent or malformed.
ServingStatus decode_health_response(const std::string& bytes);
}  // namespace detail

}  // namespace troupe::tools
