#pragma once

/// The one place where core outcomes become gRPC statuses. Every error a
/// client sees from trouped is built here, so codes, messages and the
/// `retry-after-ms` hint stay consistent across Submit, SubmitStream and the
/// admin API. Pure functions; thread-safe.

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>
#include <grpcpp/support/status.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "core/job.h"

namespace troupe::v1 {
class StreamSubmitAck;
}

namespace troupe::daemon {

/// Trailing metadata key carrying the retry hint in milliseconds.
inline constexpr std::string_view kRetryAfterKey = "retry-after-ms";

/// A refused request: the gRPC code, a message that says what was wrong and
/// what to do, and (for RESOURCE_EXHAUSTED and UNAVAILABLE) a retry hint.
struct RpcError {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  std::string message;
  std::optional<std::chrono::milliseconds> retry_after;

  /// The status to finish with; its message made valid UTF-8.
  grpc::Status status() const;
};

/// Core's refusal of a submit -> NOT_FOUND, RESOURCE_EXHAUSTED or
/// UNAVAILABLE (the last two always carry a retry hint).
RpcError to_rpc_error(const core::Rejection& rejection, std::string_view troupe);

/// UNAVAILABLE naming the journal's failure: a submit refused, or one whose
/// accept (or, wait=true, terminal state) could not be made durable.
RpcError store_unavailable(std::string_view store_failure);

/// INVALID_ARGUMENT naming the offending request field.
RpcError invalid_argument(std::string_view field, std::string_view problem);
/// INVALID_ARGUMENT for request bytes that are not a `message_type` (e.g.
/// "troupe.v1.SubmitRequest"): garbage, or a string field that is not UTF-8.
RpcError unparseable_request(std::string_view message_type);
/// NOT_FOUND for a well-formed job id that is unknown or expired.
RpcError job_not_found(std::string_view job_id);
/// RESOURCE_EXHAUSTED (with a retry hint) for a WatchJob on a job that has
/// `limit` watches already.
RpcError too_many_watchers(std::string_view job_id, std::size_t limit);
/// FAILED_PRECONDITION for GetCluster on a store of one process.
RpcError not_a_cluster_store();
/// UNAVAILABLE (with a retry hint) for a cluster view the shared store did
/// not answer; `why` names the problem.
RpcError cluster_store_unreachable(std::string_view why);
/// UNAVAILABLE (with a retry hint) for GetJob, WatchJob or CancelJob of a job
/// this replica does not hold when the shared store did not answer the
/// lookup (an outage): the job may exist. `why` names the store's problem.
RpcError job_lookup_unavailable(std::string_view job_id, std::string_view why);
/// UNAVAILABLE (with a retry hint) for ListDeadJobs when the shared store,
/// which holds every replica's dead jobs, did not answer.
RpcError dead_jobs_unavailable(std::string_view troupe, std::string_view why);
/// NOT_FOUND for a troupe name that is not hosted.
RpcError troupe_not_found(std::string_view troupe);

/// Adds the retry hint (if any) as trailing metadata. Must be called before
/// the RPC is finished.
void add_retry_hint(grpc::CallbackServerContext& context, const RpcError& error);

/// add_retry_hint, then Finish(error.status()).
void finish(grpc::CallbackServerContext& context, grpc::ServerUnaryReactor& reactor,
            const RpcError& error);

/// Fills the rejection fields of a stream ack (code, message, retry hint).
void fill_ack(const RpcError& error, v1::StreamSubmitAck& ack);

}  // namespace troupe::daemon
