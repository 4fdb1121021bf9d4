#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/cache_line.h"
#include "core/clock.h"
#include "core/gate.h"
#include "core/job_entry.h"
#include "core/job_store.h"
#include "core/journal.h"
#include "core/observer.h"
#include "core/runtime.h"

namespace troupe::core::detail {

class Actor;

/// The runtime's journal as its troupes see it: `durable` is fixed at
/// construction (entries are built and appended only then); `failed` is
/// set once when the journal fails and read on every submit.
struct JournalLink {
  explicit JournalLink(Journal& j) : journal(j), durable(j.durable()) {}
  Journal& journal;
  const bool durable;
  std::atomic<bool> failed{false};
  /// A shared journal's store is unreachable for now (ClusterHooks::
  /// availability): submits are refused, as after a failure, until it is
  /// back. `unavailable_why` (under `why_mutex`) names the problem.
  std::atomic<bool> unavailable{false};
  mutable std::mutex why_mutex;  // guards unavailable_why and failure_seen
  std::string unavailable_why;
  std::atomic<bool> any_failure{false};
  std::optional<JournalFailure> failure_seen;
  std::string why_unavailable() const {
    std::lock_guard lock(why_mutex);
    return unavailable_why;
  }
  /// A barrier failed (the journal failed, or a shared journal closed
  /// without reaching its store): remembered before the callbacks behind it
  /// run, so that whoever they answer learns it (Runtime::journal_failure).
  void note_failure(const JournalFailure& failure) {
    {
      std::lock_guard lock(why_mutex);
      if (!failure_seen) failure_seen = failure;
    }
    any_failure.store(true, std::memory_order_release);
  }
  /// The journal's after_durable() for what tells a job's end: `then` runs
  /// once everything journaled so far is durable, or after a failed
  /// barrier's failure was noted (note_failure).
  void after_durable_noting(std::function<void()> then);
  std::optional<JournalFailure> failure_noted() const {
    if (!any_failure.load(std::memory_order_acquire)) return std::nullopt;
    std::lock_guard lock(why_mutex);
    return failure_seen;
  }
  /// Whether `job`'s outcome may be told: yes unless it ended here on a
  /// shared journal and the store has not answered its terminal write yet
  /// (Job::outcome_pending, ::terminal_position). Job's lock held. Asks the
  /// journal, never a barrier: a job nobody asks about costs nothing. Once
  /// settled the job says so itself (outcome_pending cleared).
  bool outcome_settled_locked(const Job& job) const;
  /// A memory journal's link, for lifecycles built without a runtime (tests).
  static JournalLink& none();
};

/// What the job lifecycle needs from the troupe and runtime around it.
class LifecycleHost {
 public:
  virtual ~LifecycleHost() = default;
  /// A job reached its terminal state; its callbacks and watchers have run,
  /// or (shared journal) wait for its terminal write to commit. (The troupe
  /// releases its key pin.) Any core thread, no lock held.
  virtual void job_ended(const Job& job) = 0;
  /// A watch ended with its job's terminal state.
  virtual void watch_ended(WatchId id) = 0;
  /// A watched job left this process without ending (lost to another
  /// replica, or left by a drain): the host may go on watching it elsewhere
  /// (through a shared store); by default the watch ends with no further call.
  virtual void watch_moved(JobId job, JobListeners::Watcher&& watcher) {
    (void)job;
    watch_ended(watcher.id);
  }
  /// The drain deadline ended a job: a running attempt (`running`), or a
  /// queued or backing-off job.
  virtual void drain_ended(bool running) = 0;
  /// The drain deadline left a job for the next start (durable journal): a
  /// running attempt it cancelled and requeued (`running`), or a queued or
  /// backing-off job left as it is.
  virtual void drain_left(bool running) = 0;
  /// A job left this process because another replica took it (shared
  /// journal, JobLifecycle::lost), counted as `left`.
  virtual void job_lost() {}
  /// Runs `then` once everything journaled so far is durable (or the
  /// journal failed), keeping the host alive until then; at once by default.
  virtual void when_durable(std::function<void()> then) { then(); }
  /// Job `id` goes on in another replica (shared journal): `on_terminal` is
  /// answered with its outcome there (TroupeHost::follow_elsewhere); dropped
  /// uncalled by default.
  virtual void follow_elsewhere(JobId id, JobCallback on_terminal) {
    (void)id;
    (void)on_terminal;
  }
};

/// How an attempt ended, as the actor judged it (the retry decision is the
/// retry policy's; the lifecycle applies it unless a cancel or an abort
/// requested earlier wins).
struct AttemptEnd {
  FailureClass failure = FailureClass::kNone;
  bool success = false;
  bool retry = false;      // retry policy: try again
  bool retryable = false;  // not retried: DEAD when retryable, FAILED otherwise
  Duration backoff{0};     // retry: the wait before the next attempt (journaled)
  std::string output;
};

/// The one writer of a job's state and of a troupe's conservation counters.
/// Every transition (accept, start, attempt end, requeue, each terminal) is
/// one call here that checks the transition is legal, stamps the times,
/// updates the counters and notifies the store, the observer, the
/// submitter's callbacks and the watchers exactly once.
///
/// A transition that may lose a race by design (a start, a requeue or an
/// abort that finds the job already ended by a cancel) returns false. A
/// transition that must not happen (ending an ended job, ending an attempt
/// of a job that is not running) is refused: never applied, counted, and
/// reported once to the observer, which daemon/ logs.
///
/// `in_flight` is the gate's count: entered at admission, left at the
/// terminal transition (after the callbacks), never derived by subtraction.
/// With a durable journal every transition is also appended to it, under
/// the job's lock (the one exception to "no other lock under a job's lock":
/// the journal's append lock is a leaf), so a job's entries are appended in
/// the order of its transitions. The accept is appended by the troupe,
/// under the dispatcher's lock, before any actor can take the job.
///
/// Thread-safe: a job's fields are guarded by its lock; counters are
/// atomics; the dead letters have their own mutex. Callbacks run on the
/// calling (core) thread with no lock held.
class JobLifecycle {
 public:
  JobLifecycle(Clock& clock, JobStore& store, TroupeObserver& observer, LifecycleHost& host,
               JournalLink& journal = JournalLink::none());

  /// Admission: false once the gate is closed (draining or removed). An
  /// admitted job is accepted() or, when the dispatcher refuses it, unadmitted().
  bool admit() { return gate_.enter(); }
  void unadmit() { gate_.leave(); }
  Gate& gate() { return gate_; }
  const Gate& gate() const { return gate_; }

  /// A new job, admitted and queued: counts it, stamps it, stores it.
  void accepted(const JobPtr& job);
  /// The journal entry of a new job (a copy of its request). Only for a
  /// durable journal.
  JournalAccepted accepted_entry(const Job& job) const;
  bool durable() const { return journal_.durable; }

  /// Recovery: a non-terminal job read back from the journal (admitted:
  /// counted as submitted, in flight, stored). Its state is as journaled;
  /// the troupe queues it, schedules its retry or ends its crashed attempt.
  bool recovered(const JobPtr& job);
  /// A job a shared journal handed to this process (ClusterHooks::claimed)
  /// that it handed straight back (its troupe closed): counted as submitted
  /// and left, so the counters conserve; never admitted.
  void handed_back();
  /// Recovery: a terminal job, stored for GetJob (and a dead letter when
  /// DEAD). In no counter: it ended in an earlier process.
  void recovered_terminal(const JobPtr& job);

  /// Queued -> Running on `runner`. False when the job is no longer queued
  /// (a cancel or an abort ended it first). `attempt` and `watched` report
  /// the attempt number and whether anyone watches.
  bool start(const JobPtr& job, Actor* runner, std::int64_t now_ns, std::uint32_t& attempt,
             bool& watched);
  /// Queued -> terminal without an attempt (deadline passed, drain deadline,
  /// no actor left). False when the job is no longer queued.
  bool end_unstarted(const JobPtr& job, JobState terminal, std::string reason, std::int64_t now_ns);
  /// Running -> RetryWait or a terminal state. A cancel or drain abort
  /// requested while it ran wins. Returns the state the job is in now
  /// (kRunning when refused as illegal).
  JobState attempt_ended(const JobPtr& job, AttemptEnd end, std::int64_t now_ns);
  /// RetryWait -> Queued. False when the job ended meanwhile (a cancel).
  bool requeue(const JobPtr& job, std::int64_t now_ns);
  /// Queued or RetryWait -> ABORTED (drain deadline). False when the job is
  /// running (its actor ends it) or already ended. With a durable journal
  /// the job is left for the next start instead: not ended, no entry, it
  /// leaves the gate and counts as `left`.
  bool abort_waiting(const JobPtr& job, std::string reason);
  /// Running: the drain deadline passed; the attempt ends ABORTED. False
  /// when it is not running or was already asked.
  bool request_abort(const JobPtr& job);

  /// A cancel request. A queued or backing-off job is CANCELLED now
  /// (`ended`: pass the result to cancelled() on a core thread, which
  /// counts it and calls its listeners); a running one is marked and ends
  /// when its attempt returns (`runner` is then set, to be told).
  struct CancelResult {
    CancelOutcome outcome;
    JobState was = JobState::kQueued;
    bool ended = false;
    std::int64_t now_ns = 0;
    std::shared_ptr<Actor> runner;
  };
  CancelResult cancel(const JobPtr& job);
  void cancelled(const JobPtr& job, const CancelResult& result);

  /// Another replica owns the job now (shared journal, ClusterHooks::lost):
  /// it leaves this process without a terminal state and nothing more is
  /// journaled for it. Its on_terminal callbacks are dropped uncalled (the
  /// signal that it continues elsewhere) and its watches end without a
  /// further update. A queued or backing-off job leaves at once (`left`;
  /// the caller forgets its retry timer; a queued entry is skipped when an
  /// actor reaches it); a running one is marked and leaves when its attempt
  /// returns, its outcome discarded (`runner` is set: cancel the attempt).
  /// `lost` false: already terminal or gone, nothing done.
  struct LostResult {
    bool lost = false;
    JobState was = JobState::kQueued;
    std::shared_ptr<Actor> runner;
  };
  LostResult lost(const JobPtr& job);

  /// A singleton troupe this process no longer leads (shared journal,
  /// ClusterHooks::leadership) hands its jobs to the store: a queued or
  /// backing-off job is journaled requeued (claimable by the holder) and
  /// leaves now (`left`; true); a running one is marked and, when its
  /// attempt returns (cancel it: `runner` of the result), is requeued with
  /// that attempt not counted. False: terminal or gone, nothing done.
  bool hand_over(const JobPtr& job, std::shared_ptr<Actor>* runner = nullptr);
  /// A job accepted by a replica that does not lead its singleton troupe:
  /// journaled accepted and requeued at once (the holder claims it),
  /// counted as submitted and left. Never queued here.
  void accepted_and_handed_over(const Job& job);

  /// Sends every watcher of `job` its current state (no lock held).
  void notify_watchers(const JobPtr& job);

  /// Tells `callbacks` and the watchers of terminal `job` its outcome. With
  /// a journal of one process the watchers at once and `callbacks` once the
  /// terminal entry is durable (at once with the memory journal); with a
  /// shared one both once its terminal write committed, or, when the store
  /// refused it, through the store (deliver_terminal). For the end itself
  /// and for a watch or a wait=true that comes after it (the outcome may
  /// not be settled yet).
  void tell_terminal(const JobPtr& job, std::vector<JobCallback> callbacks);

  /// Counters, each read on its own (exact whenever the troupe is quiet:
  /// submitted == every terminal count + in_flight).
  TroupeCounters counters() const;
  std::uint64_t in_flight() const { return gate_.count(); }

  void set_dead_letter_limits(std::size_t count, std::size_t bytes);
  std::vector<JobRecord> dead_jobs(std::size_t limit) const;
  std::size_t dead_letter_count() const;

  /// Wall-clock ns for a steady-clock reading (one clock read per transition).
  std::int64_t wall_ns(std::int64_t steady_ns) const { return steady_ns + wall_offset_ns_; }

 private:
  /// After the state was set under the job's lock: counters, store, dead
  /// letters, callbacks and watchers (deliver_terminal; with a shared
  /// journal once the terminal write committed), host, and last the gate.
  void finalize(const JobPtr& job, JobState terminal, JobState from, std::int64_t now_ns);
  /// Tells `callbacks` and the watchers of terminal `job` its outcome; or,
  /// when the job left meanwhile (a shared store refused its terminal write:
  /// another replica took it while this one was paused past its lease),
  /// follows it through the store instead, where its outcome is.
  void deliver_terminal(const JobPtr& job, std::vector<JobCallback> callbacks);
  /// A job handed to the next start (durable drain): key pin, host, gate.
  void left_for_next_start(const JobPtr& job, bool running);
  /// A lost job leaves: its record expires as a finished one, then as above.
  void left_as_lost(const JobPtr& job);
  /// A job that goes on elsewhere (another replica, the next start): its
  /// watches end here (moved to the store with a shared journal), and its
  /// on_terminal callbacks follow it through the store (`follow`, shared
  /// journal) or are dropped uncalled (a drain: the process is stopping).
  void drop_waiters(const JobPtr& job, bool follow = false);
  /// Counts `left`, releases the key pin, leaves the gate.
  void left_here(const JobPtr& job);
  /// Ends every watch of `job` without a further update.
  void end_watches(const JobPtr& job);
  /// Appends the terminal entry of `job` (state, output and times set). Job lock held.
  /// With a shared journal the outcome is pending until the write is
  /// answered (JournalLink::outcome_settled_locked, tell_terminal).
  void journal_terminal_locked(Job& job);
  void refuse(const Job& job, JobState from, JobState to);
  void keep_dead_letter(const JobPtr& job);
  void trim_dead_letters_locked();

  Clock& clock_;
  JobStore& store_;
  TroupeObserver& obs_;
  LifecycleHost& host_;
  JournalLink& journal_;
  const std::int64_t wall_offset_ns_;  // wall - steady, taken at construction

  // Written by submitters.
  alignas(kCacheLine) std::atomic<std::uint64_t> submitted_{0};
  // Written as jobs end.
  alignas(kCacheLine) std::atomic<std::uint64_t> succeeded_{0};
  std::atomic<std::uint64_t> failed_{0};
  std::atomic<std::uint64_t> dead_{0};
  std::atomic<std::uint64_t> cancelled_{0};
  std::atomic<std::uint64_t> aborted_{0};
  std::atomic<std::uint64_t> left_{0};
  std::atomic<std::uint64_t> illegal_{0};
  // Entered by submitters, left as jobs end.
  alignas(kCacheLine) Gate gate_;

  alignas(kCacheLine) mutable std::mutex dead_mutex_;  // guards the dead letters
  std::deque<JobPtr> dead_letters_;                    // newest at the front
  std::size_t dead_bytes_ = 0;
  std::size_t dead_limit_ = 1000;
  std::size_t dead_bytes_limit_ = 64u << 20;
};

}  // namespace troupe::core::detail
