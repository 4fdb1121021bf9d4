#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/job_store.h"
#include "core/runtime.h"
#include "core/troupe.h"

namespace troupe::core {

/// The Runtime: a table of troupes, the job store, id generation, watches
/// and the drain (which closes every troupe's gate and waits for them). Thread-safe: the troupe
/// table is guarded by a reader/writer lock (submits take it shared); watches and the drain have
/// their own mutexes; timers run on `control_`. Destroy it only after the io_context has stopped
/// running (or after a completed drain): pending work is then discarded with the io_context.
///
/// On a shared journal (docs/cluster.md) it sets the journal's ClusterHooks at construction
/// (before recover()); each runs on the journal's thread, concurrently with submits, drains
/// and reloads, and never blocks:
/// - room(troupe): the troupe's free mailbox room (capacity minus queued); 0 for a troupe not
///   hosted here, or closed (draining, removed).
/// - claimed(row): adopt(), the one path recover() uses for each row: queued -> enqueued (never
///   refused for capacity), retry-wait -> scheduled at next_run_ns, kRunning -> a CRASH attempt
///   under the retry policy; terminal rows are ignored. Counted as submitted here. A row of a
///   troupe not hosted here, or one whose gate is closed, is handed straight back
///   (JournalRequeued with its attempts: claimable again) and counted as submitted and left
///   (in no counter when the troupe is not hosted).
/// - lost(id): see JobLifecycle::lost: nothing more is journaled for the job, a running
///   attempt is cancelled and its outcome discarded, on_terminal callbacks are dropped
///   uncalled, watches end; counted as `left`. Its record here expires as a finished one;
///   find() answers for it from the store.
/// - cancel(id): cancel(id).
/// - availability(up, why): while down, submits are refused with kStoreUnavailable
///   (store_failure = why); the on_store_availability handler is told every change.
/// submit_anywhere() with an idempotency key on a shared journal asks the store
/// (Journal::accept_keyed) unless this process knows the key; its answer arrives on the
/// journal's thread, where the job is submitted to its troupe under the id its row was
/// committed with (a thread-local next_id override), or the row withdrawn when the troupe
/// refuses it, or the duplicate answered; `done` runs there.
class RuntimeImpl final : public Runtime, private detail::TroupeHost {
 public:
  /// `journal` null: a memory journal of its own.
  RuntimeImpl(boost::asio::io_context& io, Clock& clock, Observer& observer, RuntimeOptions options,
              Journal* journal = nullptr);
  ~RuntimeImpl() override;

  void apply(const std::vector<TroupeOptions>& troupes) override;
  std::variant<Accepted, Rejection> submit(JobRequest request, JobCallback on_terminal) override;
  void submit_anywhere(JobRequest request, JobCallback on_terminal, SubmitDone done) override;
  std::optional<JobRecord> get(JobId id) const override;
  std::optional<CancelOutcome> cancel(JobId id) override;
  std::variant<WatchId, WatchRefusal> watch(JobId id, JobCallback on_change) override;
  void unwatch(WatchId id) override;
  std::vector<TroupeStatus> troupes() const override;
  std::optional<TroupeStatus> troupe(std::string_view name) const override;
  std::optional<std::vector<JobRecord>> dead_jobs(std::string_view troupe,
                                                  std::size_t limit) const override;
  void drain(Duration timeout, std::function<void(DrainReport)> done) override;
  RecoveryReport recover() override;
  void after_durable(DurableCallback done) override;
  std::optional<JournalFailure> journal_failure() const override {
    // Noted by the failure handler and by every failed barrier before the
    // callbacks behind it run (a barrier can fail before the handler ran,
    // or without a journal failure: a shared journal closing unreachable).
    return journal_.failure_noted();
  }
  void on_journal_failure(std::function<void(const JournalFailure&)> handler) override;
  void find(JobId id,
            std::function<void(StoreAnswer<std::optional<JobRecord>>)> done) const override;
  void cancel_anywhere(
      JobId id, std::function<void(StoreAnswer<std::optional<CancelOutcome>>)> done) override;
  void dead_jobs_anywhere(
      std::string_view troupe, std::size_t limit,
      std::function<void(StoreAnswer<std::optional<std::vector<JobRecord>>>)> done) const override;
  void on_store_availability(std::function<void(bool up, const std::string& why)> handler) override;
  void cluster(std::function<void(ClusterLookup)> done) const override;

 private:
  // TroupeHost
  JobId next_id() override;
  void watch_ended(WatchId id) override;
  void watch_moved(JobId job, detail::JobListeners::Watcher&& watcher) override;
  void drain_ended(bool running) override;
  void drain_left(bool running) override;
  void job_lost() override;
  void follow_elsewhere(JobId id, JobCallback on_terminal) override;

  /// One row of the store taken on by this process, at recovery or claimed
  /// from a shared journal: a terminal one becomes findable (and a dead
  /// letter); a non-terminal one enters `troupe` (Troupe::recover). False
  /// when the troupe's gate is closed: nothing was done.
  bool adopt(RecoveredJob&& row, detail::Troupe& troupe, std::int64_t wall_now_ns,
             RecoveryReport& report);
  /// The ClusterHooks of a shared journal (see the class comment).
  ClusterHooks cluster_hooks();
  void claimed(RecoveredJob&& row);
  void lost(JobId id);
  void availability(bool up, const std::string& why);

  // --- Watches through a shared store (a job held by another replica). ---
  struct RemoteWatch;
  /// Registers a remote watch of `job` (false: the job already has
  /// max_listeners_per_job remote watches here) and starts its reads.
  bool watch_remote(WatchId id, JobId job, JobCallback on_change,
                    std::optional<JobState> last_state, std::uint32_t last_attempts);
  /// Reads the job's row now, delivers a change, reads again later.
  void poll_remote(const std::shared_ptr<RemoteWatch>& watch);
  /// Delivers `record` (nullopt: nothing read) to `watch` if it changed,
  /// then ends the watch (terminal) or reads again later; on its strand.
  void tell_remote(const std::shared_ptr<RemoteWatch>& watch, std::optional<JobRecord> record);
  /// A remote watch of `job` that calls `on_terminal` once, when the store
  /// has it ended (a wait=true caller of a job held elsewhere); false as
  /// watch_remote().
  bool follow_to_end(JobId job, JobCallback on_terminal, std::optional<JobState> last_state,
                     std::uint32_t last_attempts);
  /// What attach_on_terminal() did.
  enum class Attached { kYes, kEnded, kPending, kFull };
  /// Adds `on_terminal` to `job`'s terminal callbacks under its lock, unless
  /// it has ended (kEnded: the caller answers it; kPending: it ended, its
  /// outcome is not settled, JobLifecycle::tell_terminal answers it) or
  /// already has `most` (kFull).
  Attached attach_on_terminal(detail::Job& job, JobCallback on_terminal, std::size_t most) const;
  /// Job `id` was just claimed here: the remote watches of it (a wait=true
  /// caller that submitted it through the store, a WatchJob) read it again
  /// as soon as it ends here rather than at their next tick: they are
  /// told the outcome as its waiters are (settled: JobLifecycle::tell_terminal).
  void hasten_remote_watches(JobId id);
  /// The remote watches of `id`.
  std::vector<std::shared_ptr<RemoteWatch>> remote_watches_of(JobId id);
  /// Forgets a remote watch (its callback is never called again); false
  /// when it was not registered.
  bool end_remote(WatchId id);
  /// Whether this process answers for `job` (GetJob, CancelJob): always with
  /// a journal of one process; with a shared one unless the job left (lost,
  /// or handed back by a drain), when the store has the truth.
  bool answers_for(const detail::Job& job) const;
  /// `job` as this process answers for it, read under its lock: its record
  /// and whether its outcome is pending (ended here, the store's answer to
  /// its terminal write not in yet); nullopt unless answers_for().
  struct LocalView {
    JobRecord record;
    bool outcome_pending = false;
  };
  std::optional<LocalView> local_view(const detail::Job& job) const;
  /// GetJob of `id` answered from the store's row (shared journal).
  void find_in_store(JobId id,
                     std::function<void(StoreAnswer<std::optional<JobRecord>>)> done) const;

  /// The answer to a submit whose idempotency key names `match` (held
  /// here, a tombstone, or, from a shared store, a job held elsewhere):
  /// Accepted as a duplicate, `on_terminal` attached to it.
  std::variant<Accepted, Rejection> answer_duplicate(const IdempotentMatch& match,
                                                     JobCallback on_terminal);
  /// An idempotent submit to troupe `t` with no job under its key yet: the
  /// job is submitted and, when accepted, remembered under its key. Called
  /// with idempotency_mutex_ held.
  std::variant<Accepted, Rejection> submit_remembered(detail::Troupe& t, JobRequest request,
                                                      JobCallback on_terminal);
  /// submit_anywhere() once the store accepted the keyed row of `id`.
  void submit_keyed(const std::shared_ptr<detail::Troupe>& troupe, JobId id, JobRequest request,
                    JobCallback on_terminal, SubmitDone done);

  std::shared_ptr<detail::Troupe> find_troupe(std::string_view name) const;
  /// Counts the rejection (no troupe to count it) and says why.
  Rejection reject_unknown();
  std::shared_ptr<detail::Troupe> owner_of(const detail::Job& job) const;
  const std::string* intern(const std::string& name);
  /// A troupe's gate reported empty (or drain() finished closing them).
  void gate_drained();
  void remove_drained(detail::Troupe* troupe);

  boost::asio::io_context& io_;
  Clock& clock_;
  Observer& observer_;
  RuntimeOptions options_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<Journal> own_journal_;  // when none was given
  detail::JournalLink journal_;
  std::mutex failure_mutex_;  // guards on_failure_ and on_availability_
  std::function<void(const JournalFailure&)> on_failure_;
  std::function<void(bool up, const std::string& why)> on_availability_;
  boost::asio::strand<boost::asio::io_context::executor_type> control_;

  mutable std::shared_mutex troupes_mutex_;  // guards troupes_, retiring_ and names_
  std::map<std::string, std::shared_ptr<detail::Troupe>, std::less<>> troupes_;
  std::vector<std::shared_ptr<detail::Troupe>> retiring_;  // removed, still draining
  std::set<std::string> names_;                            // interned, never erased

  std::mutex idempotency_mutex_;  // serialises submits that carry an idempotency key

  std::mutex watches_mutex_;  // guards watches_, remote_watches_ and remote_per_job_
  std::unordered_map<WatchId, std::weak_ptr<detail::Job>> watches_;
  std::unordered_map<WatchId, std::shared_ptr<RemoteWatch>> remote_watches_;
  std::unordered_map<std::uint64_t, std::size_t> remote_per_job_;  // by JobId::value
  std::atomic<WatchId> next_watch_{1};

  std::atomic<bool> draining_{false};
  std::mutex drain_mutex_;  // guards the drain's bookkeeping below
  std::function<void(DrainReport)> drain_done_;
  DrainReport report_;
  std::uint64_t in_flight_at_drain_ = 0;
  std::atomic<std::uint64_t> drain_cancelled_{0};
  std::atomic<std::uint64_t> drain_aborted_{0};
  std::atomic<std::uint64_t> drain_requeued_{0};      // running, left for the next start
  std::atomic<std::uint64_t> drain_left_waiting_{0};  // queued or backing off, left
  std::atomic<std::uint64_t> drain_lost_{0};          // lost to another replica while draining
  std::size_t gates_open_ = 0;  // troupes whose gate has not reported empty, + 1
  bool drain_reported_ = false;
  DrainReport final_report_;            // once reported: what a later drain() is told
  std::unique_ptr<Timer> drain_timer_;  // control_ only
};

}  // namespace troupe::core
