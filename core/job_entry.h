#pragma once

/// The runtime's in-memory form of one accepted job: what the queues, the
/// actors and the job store share. Lean on purpose (a queued job's overhead
/// is a performance promise): rarely used fields live in JobExtras, which is
/// only allocated when a request carries them.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/job.h"
#include "core/runtime.h"
#include "core/spin_lock.h"

namespace troupe::core::detail {

class Troupe;
class Actor;

/// Request fields most jobs do not have. Immutable after submit.
struct JobExtras {
  std::string key;
  std::string idempotency_key;
  Metadata metadata;
  std::optional<Duration> attempt_timeout;
  std::optional<WallTime> deadline;
};

/// The extras for these request fields (a submit's, or a recovered job's);
/// null when there are none, so a plain job allocates nothing more.
std::unique_ptr<JobExtras> make_extras(std::string key, std::string idempotency_key,
                                       Metadata metadata, std::optional<Duration> attempt_timeout,
                                       std::optional<WallTime> deadline);

/// Who listens to a job. `on_terminal` (the submitter's callback, plus those
/// of idempotent duplicates) is guarded by Job::lock. Watches are guarded by
/// `notify`, which is held while they are called, so each watcher sees
/// states in order and none is called after unwatch() returns (recursive, so
/// a watch callback may unwatch).
struct JobListeners {
  struct Watcher {
    WatchId id;
    JobCallback callback;
    JobState last_state;
    std::uint32_t last_attempts;
  };
  std::vector<JobCallback> on_terminal;
  std::recursive_mutex notify;
  std::vector<Watcher> watchers;
};

/// One accepted job. Immutable after submit: id, troupe_name, troupe, payload
/// and the request fields of extras. Everything else is guarded by `lock`;
/// `state` is also readable without it (a queue skips cancelled entries by
/// peeking at it). Its state is written only by the troupe's JobLifecycle.
/// No other lock is taken while a job's lock is held, but the journal's
/// own (Journal::append, which never waits on I/O).
class Job {
 public:
  JobId id;
  const std::string* troupe_name = nullptr;  // interned by the runtime, never freed
  Troupe* troupe = nullptr;                  // valid while the job is not terminal
  std::string payload;
  std::string output;  // the result on success, the error otherwise
  std::unique_ptr<JobExtras> extras;
  std::unique_ptr<JobListeners> listeners;  // the pointer is guarded by `lock`

  mutable SpinLock lock;
  std::atomic<JobState> state{JobState::kQueued};
  FailureClass failure = FailureClass::kNone;
  bool cancel_requested : 1 = false;  // running: end CANCELLED when the attempt returns
  bool abort_requested : 1 = false;   // running: end ABORTED (drain deadline)
  bool hand_over : 1 = false;         // running: requeued to the store when it returns (singleton)
  bool left : 1 = false;              // handed to the next start by a durable drain: ended here
  // Shared journal: it ended here and its terminal write, appended at
  // journal position terminal_position (its low 32 bits), may not be
  // answered yet (the store may refuse it): its outcome is not told before
  // it is (JobLifecycle::outcome_settled_locked, ::tell_terminal).
  mutable bool outcome_pending : 1 = false;  // cleared by whoever finds it settled
  bool in_store = false;                     // job store bookkeeping, under the store's shard lock
  bool finish_pending = false;               // ditto: finished before add() completed
  std::uint32_t terminal_position = 0;
  std::uint32_t attempts = 0;
  Actor* runner = nullptr;        // the actor running it (state kRunning)
  std::int64_t submitted_ns = 0;  // wall clock, ns since the epoch
  std::int64_t started_ns = 0;
  std::int64_t finished_ns = 0;
  std::int64_t enqueued_ns = 0;         // steady clock: queue-wait measurement
  std::int64_t finished_steady_ns = 0;  // steady clock: result TTL

  const std::string& key() const {
    static const std::string kEmpty;
    return extras ? extras->key : kEmpty;
  }
  const Metadata& metadata() const {
    static const Metadata kEmpty;
    return extras ? extras->metadata : kEmpty;
  }
  bool keyed() const { return extras && !extras->key.empty(); }

  /// A consistent snapshot; takes the lock.
  JobRecord snapshot() const;
  /// The same, for a caller already holding the lock.
  JobRecord snapshot_locked() const;

 private:
  /// The request's fields (immutable after submit; no lock needed).
  void copy_request(JobRecord& r) const;
  /// The fields guarded by `lock`.
  void copy_progress_locked(JobRecord& r) const;
};

using JobPtr = std::shared_ptr<Job>;

/// The wall-clock time point for ns since the epoch (Job's timestamps).
inline std::chrono::system_clock::time_point from_wall_ns(std::int64_t ns) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::nanoseconds(ns)));
}
inline std::int64_t to_ns(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
inline std::int64_t to_ns(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace troupe::core::detail
