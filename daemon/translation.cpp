#include "daemon/translation.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

#include "core/utf8.h"

namespace troupe::daemon {
namespace {

constexpr std::int64_t kNanosPerSecond = 1'000'000'000;
constexpr std::int64_t kMaxTimeoutSeconds = 1'000'000'000;  // ~31 years

bool valid_nanos(std::int64_t seconds, std::int32_t nanos) {
  if (nanos <= -kNanosPerSecond || nanos >= kNanosPerSecond) return false;
  // Seconds and nanos must not have opposite signs (google.protobuf.Duration).
  return !((seconds > 0 && nanos < 0) || (seconds < 0 && nanos > 0));
}

// Protobuf's documented Timestamp range: 0001-01-01 .. 9999-12-31.
constexpr std::int64_t kMinTimestampSeconds = -62'135'596'800;
constexpr std::int64_t kMaxTimestampSeconds = 253'402'300'799;

void set_timestamp(std::chrono::system_clock::time_point t, google::protobuf::Timestamp& out) {
  const auto since = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch());
  auto seconds = std::chrono::floor<std::chrono::seconds>(since);
  out.set_seconds(seconds.count());
  out.set_nanos(static_cast<std::int32_t>((since - seconds).count()));
}

std::string too_large(std::size_t size, std::size_t limit, std::string_view what) {
  std::string m = "is ";
  m += std::to_string(size);
  m += " bytes, over the limit of ";
  m += std::to_string(limit);
  m += " bytes (";
  m += what;
  m += "); send less";
  return m;
}

// Framing of one metadata map entry: its tag and length, and the key's and
// the value's tags and lengths (varints of at most 5 bytes), rounded up.
constexpr std::size_t kMetadataEntryFraming = 24;
// Tags and lengths of the keys, and the troupe name, timeout, deadline,
// wait flag and the stream's correlation id and wrapper, with room to spare.
constexpr std::size_t kRequestOverhead = 64 << 10;

}  // namespace

std::size_t max_valid_request_bytes(const config::LimitsOptions& limits) {
  return limits.max_payload + limits.max_metadata_bytes +
         limits.max_metadata_entries * kMetadataEntryFraming + 2 * kMaxKeyBytes + kRequestOverhead;
}

int max_receive_message_bytes(const config::LimitsOptions& limits) {
  return static_cast<int>(std::min<std::size_t>(2 * max_valid_request_bytes(limits), INT32_MAX));
}

std::variant<core::JobRequest, RpcError> to_job_request(v1::SubmitRequest& request,
                                                        const config::LimitsOptions& limits,
                                                        SubmitSource source) {
  if (request.troupe().empty()) {
    return invalid_argument("troupe",
                            "is empty; name the troupe to run the job (see "
                            "AdminService.ListTroupes)");
  }
  if (request.payload().size() > limits.max_payload) {
    return invalid_argument("payload", too_large(request.payload().size(), limits.max_payload,
                                                 "server.limits.max_payload"));
  }
  if (request.key().size() > kMaxKeyBytes) {
    return invalid_argument("key", too_large(request.key().size(), kMaxKeyBytes, "fixed"));
  }
  if (request.idempotency_key().size() > kMaxKeyBytes) {
    return invalid_argument("idempotency_key",
                            too_large(request.idempotency_key().size(), kMaxKeyBytes, "fixed"));
  }
  if (static_cast<std::size_t>(request.metadata_size()) > limits.max_metadata_entries) {
    return invalid_argument("metadata", "has " + std::to_string(request.metadata_size()) +
                                            " entries, over the limit of " +
                                            std::to_string(limits.max_metadata_entries) +
                                            " (server.limits.max_metadata_entries); send fewer");
  }
  std::size_t metadata_bytes = 0;
  for (const auto& [k, v] : request.metadata()) {
    if (k.empty()) return invalid_argument("metadata", "has an empty key; name every entry");
    metadata_bytes += k.size() + v.size();
  }
  if (metadata_bytes > limits.max_metadata_bytes) {
    return invalid_argument("metadata",
                            too_large(metadata_bytes, limits.max_metadata_bytes,
                                      "keys plus values, server.limits.max_metadata_bytes"));
  }
  if (request.wait() && source == SubmitSource::kStream) {
    return invalid_argument("request.wait",
                            "is not allowed on SubmitStream; use Submit with wait=true, or "
                            "WatchJob / GetJob with the acked job id");
  }

  core::JobRequest job;
  if (request.has_timeout()) {
    const auto& t = request.timeout();
    if (!valid_nanos(t.seconds(), t.nanos())) {
      return invalid_argument("timeout", "is not a valid google.protobuf.Duration");
    }
    if (t.seconds() < 0 || (t.seconds() == 0 && t.nanos() <= 0)) {
      return invalid_argument("timeout",
                              "must be positive; leave it unset to use the troupe's timeout");
    }
    // core::Duration is nanoseconds: past ~292 years it overflows.
    if (t.seconds() > kMaxTimeoutSeconds) {
      return invalid_argument("timeout", "is too large; use at most a few days");
    }
    job.attempt_timeout = std::chrono::seconds(t.seconds()) + std::chrono::nanoseconds(t.nanos());
  }
  if (request.has_deadline()) {
    const auto& d = request.deadline();
    if (d.nanos() < 0 || d.nanos() >= kNanosPerSecond || d.seconds() < kMinTimestampSeconds ||
        d.seconds() > kMaxTimestampSeconds) {
      return invalid_argument("deadline", "is not a valid google.protobuf.Timestamp");
    }
    // A valid Timestamp spans years 1 to 9999; the system clock counts
    // nanoseconds in 64 bits (about 1677 to 2262). Converting a deadline
    // outside that range overflowed (undefined behaviour, seen by UBSan):
    // one that far ahead is no deadline at all, one that far back has passed.
    using Clock = std::chrono::system_clock;
    constexpr auto kLatest =
        std::chrono::floor<std::chrono::seconds>(Clock::time_point::max().time_since_epoch());
    constexpr auto kEarliest =
        std::chrono::ceil<std::chrono::seconds>(Clock::time_point::min().time_since_epoch());
    if (d.seconds() >= kLatest.count()) {
      job.deadline = Clock::time_point::max();
    } else if (d.seconds() <= kEarliest.count()) {
      job.deadline = Clock::time_point::min();
    } else {
      job.deadline = Clock::time_point(std::chrono::duration_cast<Clock::duration>(
          std::chrono::seconds(d.seconds()) + std::chrono::nanoseconds(d.nanos())));
    }
  }

  job.troupe = request.troupe();
  // Moving the payload out is fine: the request message is ours for the call
  // and nothing reads it after translation.
  job.payload = std::move(*request.mutable_payload());
  job.key = request.key();
  job.idempotency_key = request.idempotency_key();
  for (const auto& [k, v] : request.metadata()) job.metadata.emplace(k, v);
  return job;
}

std::variant<core::JobId, RpcError> parse_job_id(std::string_view text, std::string_view field) {
  if (text.empty()) {
    return invalid_argument(field, "is empty; pass the job id returned by Submit");
  }
  auto id = core::JobId::parse(text);
  if (!id) {
    return invalid_argument(field,
                            "is not a job id (16 lowercase hex digits, as returned by Submit)");
  }
  return *id;
}

v1::JobState to_proto(core::JobState state) {
  switch (state) {
    case core::JobState::kQueued:
      return v1::JOB_STATE_QUEUED;
    case core::JobState::kRunning:
      return v1::JOB_STATE_RUNNING;
    case core::JobState::kRetryWait:
      return v1::JOB_STATE_RETRY_WAIT;
    case core::JobState::kSucceeded:
      return v1::JOB_STATE_SUCCEEDED;
    case core::JobState::kFailed:
      return v1::JOB_STATE_FAILED;
    case core::JobState::kDead:
      return v1::JOB_STATE_DEAD;
    case core::JobState::kCancelled:
      return v1::JOB_STATE_CANCELLED;
    case core::JobState::kAborted:
      return v1::JOB_STATE_ABORTED;
  }
  return v1::JOB_STATE_UNSPECIFIED;
}

v1::FailureClass to_proto(core::FailureClass failure) {
  switch (failure) {
    case core::FailureClass::kNone:
      return v1::FAILURE_CLASS_NONE;
    case core::FailureClass::kRetryable:
      return v1::FAILURE_CLASS_RETRYABLE;
    case core::FailureClass::kPermanent:
      return v1::FAILURE_CLASS_PERMANENT;
    case core::FailureClass::kTimeout:
      return v1::FAILURE_CLASS_TIMEOUT;
    case core::FailureClass::kCrash:
      return v1::FAILURE_CLASS_CRASH;
    case core::FailureClass::kCancelled:
      return v1::FAILURE_CLASS_CANCELLED;
  }
  return v1::FAILURE_CLASS_NONE;
}

v1::CircuitState to_proto(core::CircuitState state) {
  switch (state) {
    case core::CircuitState::kClosed:
      return v1::CIRCUIT_STATE_CLOSED;
    case core::CircuitState::kOpen:
      return v1::CIRCUIT_STATE_OPEN;
    case core::CircuitState::kHalfOpen:
      return v1::CIRCUIT_STATE_HALF_OPEN;
  }
  return v1::CIRCUIT_STATE_UNSPECIFIED;
}

void to_proto(const core::JobRecord& record, v1::Job& out) {
  // Every `string` field is valid UTF-8 (a reply that is not cannot be
  // parsed); the handler's raw bytes travel in `result`, a `bytes` field.
  out.set_id(record.id.to_string());
  out.set_troupe(core::valid_utf8(record.troupe));
  out.set_state(to_proto(record.state));
  out.set_attempts(record.attempts);
  out.set_result(record.result);
  out.set_error(core::valid_utf8(record.error));
  out.set_failure_class(to_proto(record.failure_class));
  out.set_key(core::valid_utf8(record.key));
  out.set_idempotency_key(core::valid_utf8(record.idempotency_key));
  auto& metadata = *out.mutable_metadata();
  for (const auto& [k, v] : record.metadata) metadata[core::valid_utf8(k)] = core::valid_utf8(v);
  const std::chrono::system_clock::time_point unset{};
  if (record.submitted_at != unset) set_timestamp(record.submitted_at, *out.mutable_submitted_at());
  if (record.started_at != unset) set_timestamp(record.started_at, *out.mutable_started_at());
  if (record.finished_at != unset) set_timestamp(record.finished_at, *out.mutable_finished_at());
}

void to_proto(const core::ClusterView& view, const std::function<bool(std::string_view)>& shown,
              v1::GetClusterResponse& out) {
  auto at = [](std::int64_t ns, google::protobuf::Timestamp& ts) {
    set_timestamp(std::chrono::system_clock::time_point(std::chrono::nanoseconds(ns)), ts);
  };
  auto age = [&view](std::int64_t since_ns, google::protobuf::Duration& d) {
    const std::int64_t ns = std::max<std::int64_t>(0, view.now_ns - since_ns);
    d.set_seconds(ns / kNanosPerSecond);
    d.set_nanos(static_cast<std::int32_t>(ns % kNanosPerSecond));
  };
  at(view.now_ns, *out.mutable_now());
  for (const auto& r : view.replicas) {
    auto& replica = *out.add_replicas();
    replica.set_name(core::valid_utf8(r.name));
    replica.set_incarnation(r.incarnation);
    at(r.started_ns, *replica.mutable_started_at());
    at(r.heartbeat_ns, *replica.mutable_heartbeat_at());
    at(r.expires_ns, *replica.mutable_lease_expires_at());
    replica.set_alive(r.alive);
    age(r.heartbeat_ns, *replica.mutable_heartbeat_age());
  }
  for (const auto& t : view.troupes) {
    if (!shown(t.name)) continue;
    auto& troupe = *out.add_troupes();
    troupe.set_name(core::valid_utf8(t.name));
    troupe.set_queue_depth(t.queue_depth);
    troupe.set_running(t.running);
    if (t.oldest_queued_ns != 0) age(t.oldest_queued_ns, *troupe.mutable_oldest_queued_age());
    if (t.lease) {
      auto& lease = *troupe.mutable_lease();
      lease.set_replica(core::valid_utf8(t.lease->holder));
      lease.set_incarnation(t.lease->incarnation);
      lease.set_term(t.lease->term);
      at(t.lease->expires_ns, *lease.mutable_expires_at());
      lease.set_held(t.lease->held);
      if (t.lease->held) troupe.set_holder(lease.replica());
    }
    for (const auto& p : t.permits) {
      auto& permits = *troupe.add_permits();
      permits.set_replica(core::valid_utf8(p.replica));
      permits.set_incarnation(p.incarnation);
      permits.set_permits(p.permits);
    }
    troupe.set_singleton(t.singleton);
    troupe.set_max_concurrency(t.max_concurrency);
  }
}

void to_proto(const core::TroupeStatus& status, v1::Troupe& out) {
  out.set_name(core::valid_utf8(status.name));
  out.set_mode(status.mode == core::TroupeMode::kFixed ? "fixed" : "dynamic");
  out.set_handler(core::valid_utf8(status.handler));
  out.set_actors(status.actors);
  out.set_actors_busy(status.actors_busy);
  out.set_min_actors(status.min_actors);
  out.set_max_actors(status.max_actors);
  out.set_mailbox_depth(status.mailbox_depth);
  out.set_mailbox_capacity(status.mailbox_capacity);
  out.set_circuit_state(to_proto(status.circuit));
  out.set_degraded(status.degraded);
  out.set_draining(status.draining);
  out.set_dead_letters(status.dead_letters);
  auto& c = *out.mutable_counters();
  c.set_submitted(status.counters.submitted);
  c.set_rejected(status.counters.rejected);
  c.set_succeeded(status.counters.succeeded);
  c.set_failed(status.counters.failed);
  c.set_dead(status.counters.dead);
  c.set_cancelled(status.counters.cancelled);
  c.set_aborted(status.counters.aborted);
  c.set_in_flight(status.counters.in_flight);
  c.set_attempts(status.counters.attempts);
  c.set_actor_restarts(status.counters.actor_restarts);
}

}  // namespace troupe::daemon
