#pragma once

/// Job identity, lifecycle states and the snapshot (JobRecord) every reader of
/// a job gets. Plain values, no behaviour beyond formatting and parsing.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/options.h"

namespace troupe::core {

using TimePoint = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;
using Metadata = std::map<std::string, std::string>;

/// 64-bit job id. Formatted on the wire as 16 lowercase hex digits.
struct JobId {
  std::uint64_t value = 0;
  friend bool operator==(JobId, JobId) = default;
  friend auto operator<=>(JobId, JobId) = default;
  std::string to_string() const;
  /// Parses 16 hex digits; nullopt for anything else.
  static std::optional<JobId> parse(std::string_view text);
};

enum class JobState : std::uint8_t {
  kQueued,
  kRunning,
  kRetryWait,
  kSucceeded,
  kFailed,
  kDead,
  kCancelled,
  kAborted,
};

constexpr bool is_terminal(JobState s) {
  return s >= JobState::kSucceeded;
}
std::string_view to_string(JobState s);
std::string_view to_string(FailureClass c);

/// What a client asks for. Validated by daemon/ (sizes, fields) before core
/// sees it.
struct JobRequest {
  std::string troupe;
  std::string payload;
  std::string key;
  std::string idempotency_key;
  std::optional<Duration> attempt_timeout;  // overrides the troupe's timeout
  std::optional<std::chrono::system_clock::time_point> deadline;
  Metadata metadata;
};

/// A consistent snapshot of one job. Timestamps are wall-clock for display;
/// unset ones are the epoch. Without the payload: no reply sends it back, and
/// copying it for every GetJob, watch event and callback cost up to
/// max_payload each.
struct JobRecord {
  JobId id;
  std::string troupe;
  JobState state = JobState::kQueued;
  std::uint32_t attempts = 0;
  std::string result;
  std::string error;
  FailureClass failure_class = FailureClass::kNone;
  std::string key;
  std::string idempotency_key;
  Metadata metadata;
  std::chrono::system_clock::time_point submitted_at{};
  std::chrono::system_clock::time_point started_at{};
  std::chrono::system_clock::time_point finished_at{};
};

/// Why a submit was refused. The job was never accepted and is not counted.
enum class RejectReason : std::uint8_t {
  kUnknownTroupe,
  kFull,              // every mailbox of the troupe is at capacity
  kDraining,          // the daemon drains, or a reload removes the troupe
  kCircuitOpen,       // the breaker is open (policy reject)
  kRateLimited,       // rate limited and the queue is full
  kStoreFull,         // the job store holds job_store.max_jobs / max_bytes of unfinished jobs
  kDegraded,          // no actor runs: the supervisor gave up on all of them for now
  kTimeoutOverMax,    // the job's own timeout is over its troupe's max_timeout
  kTooManyListeners,  // a duplicate's on_terminal past max_listeners_per_job
  kStoreUnavailable,  // the journal failed: nothing can be made durable in this process
};
std::string_view to_string(RejectReason r);

/// A refused submit, as facts: the reason and the numbers behind it. The
/// words a client reads are written by daemon/ (status_mapping), not here.
struct Rejection {
  RejectReason reason = RejectReason::kFull;
  /// When a retry may succeed: the breaker's half-open time, the next token,
  /// the next restart of a degraded troupe, or the queue's expected drain.
  /// Zero when core cannot tell (draining, unknown troupe, strategy stop).
  std::chrono::milliseconds retry_after{0};
  std::uint64_t queued = 0;  // kFull, kRateLimited: jobs waiting in the troupe
  /// kFull: actors x mailbox_capacity; kTooManyListeners: max_listeners_per_job.
  std::uint64_t capacity = 0;
  std::uint32_t actors = 0;     // kFull, kDegraded: the troupe's actors (kDegraded: none running)
  Duration limit{0};            // kTimeoutOverMax: the troupe's max_timeout
  JobId job{};                  // kTooManyListeners: the job already waited on
  std::string store_failure{};  // kStoreUnavailable: the journal's message
};

struct Accepted {
  JobId id;
  bool duplicate = false;  // idempotency key matched an existing job
};

}  // namespace troupe::core

template <>
struct std::hash<troupe::core::JobId> {
  std::size_t operator()(troupe::core::JobId id) const noexcept {
    return std::hash<std::uint64_t>{}(id.value);
  }
};
