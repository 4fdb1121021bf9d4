#pragma once

/// Proto <-> core translation for the JobService and AdminService, including
/// request validation against server.limits. Pure functions; thread-safe.

#include <functional>
#include <string_view>
#include <variant>

#include "config/config.h"
#include "core/job.h"
#include "core/runtime.h"
#include "daemon/status_mapping.h"
#include "troupe/v1/troupe.pb.h"

namespace troupe::daemon {

/// Longest accepted `key` and `idempotency_key`, in bytes.
inline constexpr std::size_t kMaxKeyBytes = 1024;

/// The largest serialized SubmitRequest (or StreamSubmitRequest) that passes
/// validation under `limits`: payload, metadata and keys at their limits,
/// plus framing and room for the troupe name and the small fields.
std::size_t max_valid_request_bytes(const config::LimitsOptions& limits);

/// The gRPC server's receive limit (SetMaxReceiveMessageSize): twice
/// max_valid_request_bytes(), at most INT32_MAX. Every request up to it is
/// parsed and validated, so one over a limit gets INVALID_ARGUMENT naming
/// the field; only past it does gRPC refuse the message itself
/// (RESOURCE_EXHAUSTED, "Received message larger than max", no retry hint).
int max_receive_message_bytes(const config::LimitsOptions& limits);

/// Where a SubmitRequest came from: `wait` is refused on a stream.
enum class SubmitSource : std::uint8_t { kUnary, kStream };

/// Validates `request` against `limits` and turns it into a core request.
/// The payload is moved out of `request` (the hot path copies no payload);
/// on error `request` is left untouched.
std::variant<core::JobRequest, RpcError> to_job_request(v1::SubmitRequest& request,
                                                        const config::LimitsOptions& limits,
                                                        SubmitSource source);

/// Parses a wire job id (16 lowercase hex digits); `field` names the request
/// field in the error.
std::variant<core::JobId, RpcError> parse_job_id(std::string_view text, std::string_view field);

v1::JobState to_proto(core::JobState state);
v1::FailureClass to_proto(core::FailureClass failure);
v1::CircuitState to_proto(core::CircuitState state);

/// The job snapshot as clients see it (the payload is not echoed back).
void to_proto(const core::JobRecord& record, v1::Job& out);
void to_proto(const core::TroupeStatus& status, v1::Troupe& out);
/// The cluster view (GetCluster); only the troupes `shown` accepts.
void to_proto(const core::ClusterView& view, const std::function<bool(std::string_view)>& shown,
              v1::GetClusterResponse& out);

}  // namespace troupe::daemon
