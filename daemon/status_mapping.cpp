#include "daemon/status_mapping.h"

#include <algorithm>
#include <string>

#include "config/value_parsers.h"
#include "core/utf8.h"
#include "troupe/v1/troupe.pb.h"

namespace troupe::daemon {
namespace {

using namespace std::chrono_literals;

// Floors for the retry hint when core gives none (or a tiny one): a full
// mailbox frees up within a job's run time; draining means "go to another
// replica".
constexpr std::chrono::milliseconds kFullRetryFloor = 50ms;
constexpr std::chrono::milliseconds kRateLimitedRetryFloor = 10ms;
constexpr std::chrono::milliseconds kCircuitOpenRetryFloor = 1000ms;
constexpr std::chrono::milliseconds kDrainingRetryFloor = 1000ms;
constexpr std::chrono::milliseconds kStoreFullRetryFloor = 1000ms;
constexpr std::chrono::milliseconds kDegradedRetryFloor = 1000ms;
// A failed store ends the process; its supervisor restarts it.
constexpr std::chrono::milliseconds kStoreUnavailableRetryFloor = 1000ms;
// A shared store that did not answer a lookup reconnects with backoff
// (100 ms doubling to 5 s).
constexpr std::chrono::milliseconds kStoreLookupRetryFloor = 1000ms;
// Waiters leave when the job ends.
constexpr std::chrono::milliseconds kTooManyWaitersRetryFloor = 1000ms;

std::string quoted(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  out += s;
  out += '"';
  return out;
}

}  // namespace

grpc::Status RpcError::status() const {
  return {code, core::valid_utf8(message)};
}

// Core says why and gives the numbers; the words are written here, once.
RpcError to_rpc_error(const core::Rejection& r, std::string_view troupe) {
  const auto hint = [&](std::chrono::milliseconds floor) { return std::max(r.retry_after, floor); };
  const std::string name = quoted(troupe);
  switch (r.reason) {
    case core::RejectReason::kUnknownTroupe:
      return troupe_not_found(troupe);
    case core::RejectReason::kFull:
      return {grpc::StatusCode::RESOURCE_EXHAUSTED,
              "troupe " + name + " is full: " + std::to_string(r.queued) +
                  " jobs queued, capacity " + std::to_string(r.capacity) + " (" +
                  std::to_string(r.actors) +
                  " actors x mailbox_capacity); retry after the retry-after-ms hint or raise "
                  "mailbox_capacity / max_actors",
              hint(kFullRetryFloor)};
    case core::RejectReason::kRateLimited:
      return {grpc::StatusCode::RESOURCE_EXHAUSTED,
              "troupe " + name + " is rate limited and its queue is full (" +
                  std::to_string(r.queued) + " jobs queued); retry after the retry-after-ms hint",
              hint(kRateLimitedRetryFloor)};
    case core::RejectReason::kStoreFull:
      return {grpc::StatusCode::RESOURCE_EXHAUSTED,
              "the job store is full of unfinished jobs; retry after the retry-after-ms hint or "
              "raise job_store.max_jobs / job_store.max_bytes",
              hint(kStoreFullRetryFloor)};
    case core::RejectReason::kDraining:
      return {grpc::StatusCode::UNAVAILABLE,
              "troupe " + name +
                  " is draining (trouped is shutting down, or a reload removed the troupe) and "
                  "accepts no new jobs; submit to another replica or retry after the restart",
              hint(kDrainingRetryFloor)};
    case core::RejectReason::kCircuitOpen:
      return {grpc::StatusCode::UNAVAILABLE,
              "troupe " + name +
                  " has its circuit breaker open (its handler keeps failing); retry after the "
                  "retry-after-ms hint",
              hint(kCircuitOpenRetryFloor)};
    case core::RejectReason::kDegraded:
      if (r.retry_after > 0ms) {
        return {grpc::StatusCode::UNAVAILABLE,
                "troupe " + name + " is degraded: none of its " + std::to_string(r.actors) +
                    " actors runs (the supervisor paused them after repeated handler "
                    "crashes; the trouped log says why); the next restart is in " +
                    std::to_string(r.retry_after.count()) +
                    " ms, retry after the retry-after-ms "
                    "hint",
                hint(kDegradedRetryFloor)};
      }
      return {grpc::StatusCode::UNAVAILABLE,
              "troupe " + name +
                  " is degraded: every actor stopped (supervisor strategy stop; the trouped log "
                  "says why); fix the handler and reload the configuration to restart it",
              hint(kDegradedRetryFloor)};
    case core::RejectReason::kTimeoutOverMax: {
      const std::string limit = config::format_duration(r.limit);
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "timeout: longer than the max_timeout of troupe " + name + " (" + limit +
                  "); ask for at most " + limit +
                  ", leave it unset to use the troupe's timeout, or raise max_timeout in the "
                  "troupe's config",
              std::nullopt};
    }
    case core::RejectReason::kTooManyListeners:
      return {grpc::StatusCode::RESOURCE_EXHAUSTED,
              "job " + r.job.to_string() + " already has " + std::to_string(r.capacity) +
                  " callers waiting for it (server.limits.max_waiters_per_job); retry after the "
                  "retry-after-ms hint, or poll GetJob with its id",
              hint(kTooManyWaitersRetryFloor)};
    case core::RejectReason::kStoreUnavailable:
      return store_unavailable(r.store_failure);
  }
  return {grpc::StatusCode::INTERNAL, "unknown rejection reason; this is a trouped bug",
          std::nullopt};
}

RpcError store_unavailable(std::string_view store_failure) {
  return {grpc::StatusCode::UNAVAILABLE,
          "the job store failed (" + std::string(store_failure) +
              "): no job can be made durable; trouped stops and restarts with recovery; retry "
              "after the restart or submit to another replica",
          kStoreUnavailableRetryFloor};
}

RpcError not_a_cluster_store() {
  return {grpc::StatusCode::FAILED_PRECONDITION,
          "not a cluster store: this trouped keeps its jobs in a store of its own (store.kind "
          "sqlite or memory); GetCluster needs store.kind postgres (docs/cluster.md); see "
          "ListTroupes for this process",
          std::nullopt};
}

RpcError cluster_store_unreachable(std::string_view why) {
  return {
      grpc::StatusCode::UNAVAILABLE,
      "the shared store did not answer (" + std::string(why) + "); retry, or ask another replica",
      std::chrono::milliseconds(1000)};
}

RpcError job_lookup_unavailable(std::string_view job_id, std::string_view why) {
  return {grpc::StatusCode::UNAVAILABLE,
          "job " + quoted(job_id) +
              " is not held by this replica and the shared store did not answer (" +
              std::string(why) +
              "), so whether it exists is unknown; retry after the retry-after-ms hint, or ask "
              "the replica that accepted it",
          kStoreLookupRetryFloor};
}

RpcError dead_jobs_unavailable(std::string_view troupe, std::string_view why) {
  return {grpc::StatusCode::UNAVAILABLE,
          "the dead jobs of troupe " + quoted(troupe) +
              " are listed from the shared store, which did not answer (" + std::string(why) +
              "); retry after the retry-after-ms hint",
          kStoreLookupRetryFloor};
}

RpcError invalid_argument(std::string_view field, std::string_view problem) {
  std::string message;
  message.reserve(field.size() + problem.size() + 2);
  message += field;
  message += ": ";
  message += problem;
  return {grpc::StatusCode::INVALID_ARGUMENT, std::move(message), std::nullopt};
}

RpcError unparseable_request(std::string_view message_type) {
  std::string message = "could not parse request: the bytes are not a ";
  message += message_type;
  message +=
      " (a malformed protobuf, a field of the wrong type, or a string field that is not UTF-8); "
      "send a message built from proto/troupe/v1/troupe.proto";
  return {grpc::StatusCode::INVALID_ARGUMENT, std::move(message), std::nullopt};
}

RpcError job_not_found(std::string_view job_id) {
  return {grpc::StatusCode::NOT_FOUND,
          "job " + quoted(job_id) +
              " is unknown or its result has expired (results are kept for "
              "job_store.result_ttl); check the id",
          std::nullopt};
}

RpcError too_many_watchers(std::string_view job_id, std::size_t limit) {
  return {grpc::StatusCode::RESOURCE_EXHAUSTED,
          "job " + quoted(job_id) + " already has " + std::to_string(limit) +
              " WatchJob streams (server.limits.max_waiters_per_job); retry after the "
              "retry-after-ms hint, or poll GetJob",
          kTooManyWaitersRetryFloor};
}

RpcError troupe_not_found(std::string_view troupe) {
  return {grpc::StatusCode::NOT_FOUND,
          "troupe " + quoted(troupe) +
              " is not hosted here; list troupes with AdminService.ListTroupes and "
              "check the name",
          std::nullopt};
}

void add_retry_hint(grpc::CallbackServerContext& context, const RpcError& error) {
  if (error.retry_after) {
    context.AddTrailingMetadata(std::string(kRetryAfterKey),
                                std::to_string(error.retry_after->count()));
  }
}

void finish(grpc::CallbackServerContext& context, grpc::ServerUnaryReactor& reactor,
            const RpcError& error) {
  add_retry_hint(context, error);
  reactor.Finish(error.status());
}

void fill_ack(const RpcError& error, v1::StreamSubmitAck& ack) {
  ack.set_code(static_cast<std::int32_t>(error.code));
  ack.set_message(core::valid_utf8(error.message));
  if (error.retry_after) {
    ack.set_retry_after_ms(static_cast<std::uint32_t>(error.retry_after->count()));
  }
}

}  // namespace troupe::daemon
