#include "daemon/status_mapping.h"

#include <algorithm>
#include <string>

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

std::string quoted(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  out += s;
  out += '"';
  return out;
}

}  // namespace

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
  }
  return {grpc::StatusCode::INTERNAL, "unknown rejection reason; this is a trouped bug",
          std::nullopt};
}

RpcError invalid_argument(std::string_view field, std::string_view problem) {
  std::string message;
  message.reserve(field.size() + problem.size() + 2);
  message += field;
  message += ": ";
  message += problem;
  return {grpc::StatusCode::INVALID_ARGUMENT, std::move(message), std::nullopt};
}

RpcError job_not_found(std::string_view job_id) {
  return {grpc::StatusCode::NOT_FOUND,
          "job " + quoted(job_id) +
              " is unknown or its result has expired (results are kept for "
              "job_store.result_ttl); check the id",
          std::nullopt};
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
  ack.set_message(error.message);
  if (error.retry_after) {
    ack.set_retry_after_ms(static_cast<std::uint32_t>(error.retry_after->count()));
  }
}

}  // namespace troupe::daemon
