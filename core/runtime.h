#pragma once

/// The core's one entry point: hosts the troupes and runs their jobs.

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/clock.h"
#include "core/job.h"
#include "core/journal.h"
#include "core/observer.h"
#include "core/options.h"

namespace troupe::core {

struct TroupeCounters {
  std::uint64_t submitted = 0;
  std::uint64_t rejected = 0;
  std::uint64_t succeeded = 0;
  std::uint64_t failed = 0;
  std::uint64_t dead = 0;
  std::uint64_t cancelled = 0;
  std::uint64_t aborted = 0;
  std::uint64_t in_flight = 0;  // its own counter: +1 at accept, -1 at the terminal transition
  /// Left for the next start by a drain with a durable journal (queued,
  /// backing off, or running and requeued), or, with a shared journal, lost
  /// to another replica or a claim handed straight back: not terminal here,
  /// no longer in flight in this process. Always 0 with the memory journal.
  std::uint64_t left = 0;
  std::uint64_t illegal_transitions = 0;  // refused by the job lifecycle (a bug when non-zero)
  std::uint64_t attempts = 0;
  std::uint64_t actor_restarts = 0;
};

struct TroupeStatus {
  std::string name;
  TroupeMode mode = TroupeMode::kDynamic;
  std::string handler;  // describe(options.handler)
  std::uint32_t actors = 0;
  std::uint32_t actors_busy = 0;
  std::uint32_t actors_running = 0;  // not given up on by the supervisor
  std::uint32_t min_actors = 0;
  std::uint32_t max_actors = 0;
  std::uint64_t mailbox_depth = 0;
  std::uint64_t mailbox_capacity = 0;
  CircuitState circuit = CircuitState::kClosed;
  bool degraded = false;
  std::string degraded_cause;  // the supervisor's last give-up, while degraded
  bool draining = false;
  TroupeCounters counters;
  std::uint64_t dead_letters = 0;
};

struct DrainReport {
  std::uint64_t finished = 0;  // reached a terminal state on their own during the drain
  /// Running at the deadline, cancelled: ABORTED with the memory journal;
  /// requeued for the next start (and counted in `left` too) with a durable one.
  std::uint64_t cancelled = 0;
  std::uint64_t aborted = 0;  // queued or backing off at the deadline (-> ABORTED; memory journal)
  /// Durable journal: left for the next start (queued, backing off, or
  /// running and requeued): not ended, they run again after a restart.
  /// With a shared journal also the jobs lost to another replica during
  /// the drain.
  std::uint64_t left = 0;
  bool deadline_reached = false;
};

/// What Runtime::recover() did with the journal's rows. Counted per row.
struct RecoveryReport {
  std::uint64_t queued = 0;         // re-entered their troupe's queue
  std::uint64_t retry_waiting = 0;  // wait for their journaled next run time
  /// Running when the process died: the attempt counted as CRASH, then
  /// retried (retry_waiting includes them) or ended DEAD (crashed_dead).
  std::uint64_t crashed = 0;
  std::uint64_t crashed_dead = 0;
  std::uint64_t terminal = 0;      // finished ones, for GetJob and idempotency keys
  std::uint64_t dead_letters = 0;  // of `terminal`: DEAD, into their troupe's dead letters
  /// Rows of troupes the configuration no longer has: kept in the journal,
  /// not loaded; per troupe name.
  std::map<std::string, std::uint64_t, std::less<>> orphaned;
  std::uint64_t orphaned_total() const {
    std::uint64_t n = 0;
    for (const auto& [name, count] : orphaned) n += count;
    return n;
  }
  Duration took{0};
};

struct CancelOutcome {
  JobRecord job;           // snapshot at the time of the request
  bool cancelled = false;  // false when the job was already terminal
};

/// Called with a job snapshot, on a core thread; must not block.
using JobCallback = std::function<void(const JobRecord&)>;
using WatchId = std::uint64_t;
/// Why watch() refused.
enum class WatchRefusal : std::uint8_t {
  kUnknownJob,        // unknown, or its record expired
  kTooManyListeners,  // it has RuntimeOptions::max_listeners_per_job watches
};

/// Hosts the troupes. Every method is thread-safe and non-blocking: callers
/// (gRPC threads) never wait on a job. Callbacks run on the io_context's
/// threads. The io_context is run by the daemon's threads; `clock` and
/// `observer` must outlive the runtime.
class Runtime {
 public:
  virtual ~Runtime() = default;

  /// Makes the hosted troupes match `troupes`: new ones start, removed ones
  /// drain and go (their accepted jobs still finish), changed limits and
  /// policies apply live. Options are already validated.
  virtual void apply(const std::vector<TroupeOptions>& troupes) = 0;

  /// Accepts a job, or says why not. Never blocks. When accepted,
  /// `on_terminal` (if set) is called exactly once with the terminal record,
  /// once that end is durable (with a durable journal: its terminal entry
  /// committed, or the journal failed, which journal_failure() then says).
  /// A duplicate (idempotency key hit) calls it when the original job ends.
  /// Never called for a job that does not end in this process: one a
  /// durable drain left for the next start, or (shared journal) one lost to
  /// another replica (ClusterHooks::lost), whose callbacks are destroyed
  /// uncalled at once. A caller waiting on it learns "the job continues
  /// elsewhere" from that destruction; find() tells its end.
  virtual std::variant<Accepted, Rejection> submit(JobRequest request,
                                                   JobCallback on_terminal = {}) = 0;

  /// What submit_anywhere() answers: submit()'s outcome.
  using SubmitDone = std::function<void(std::variant<Accepted, Rejection>)>;

  /// submit(), answered through `done` (once: inline, or on the journal's
  /// thread). With a shared journal (docs/cluster.md) a request with an
  /// idempotency key is checked against every replica's jobs: after this
  /// process's own (as submit() does), the store decides (Journal::
  /// accept_keyed(): one transaction, a unique index, so replicas racing
  /// with one key accept it once). A key that names a job within
  /// idempotency_ttl answers that job's id as a duplicate, wherever it
  /// runs; `on_terminal` is then called with its terminal record (a job
  /// held elsewhere is followed through the store, as a remote watch). A
  /// job accepted this way is committed before `done` runs and is never
  /// run before its key is settled; one the troupe then refuses after all
  /// leaves nothing behind (Journal::withdraw_keyed). Otherwise, and with a
  /// journal of one process, it is submit().
  virtual void submit_anywhere(JobRequest request, JobCallback on_terminal, SubmitDone done) {
    done(submit(std::move(request), std::move(on_terminal)));
  }

  /// Snapshot of a job; nullopt when unknown or its record expired.
  virtual std::optional<JobRecord> get(JobId id) const = 0;

  /// Cancels a queued, backing-off or running job (a running handler is
  /// told through its cancellation slot). nullopt when unknown.
  virtual std::optional<CancelOutcome> cancel(JobId id) = 0;

  /// Calls on_change with the current snapshot, then with every state
  /// change up to and including the terminal one; then the watch ends by
  /// itself. With a shared journal a job held by another replica (or one
  /// this process lost or handed back while watched) is watched through the
  /// store: its row is read every RuntimeOptions::remote_watch_interval and
  /// on_change gets each change (the first read is the snapshot), on a core
  /// thread, until the terminal one; a read the store does not answer is
  /// retried at the next interval. Such a watch is accepted at once (no
  /// kUnknownJob: use find() first). Refused (and on_change never called)
  /// when the job is unknown, or already has
  /// RuntimeOptions::max_listeners_per_job watches in this process.
  virtual std::variant<WatchId, WatchRefusal> watch(JobId id, JobCallback on_change) = 0;
  /// Ends a watch early; no callback runs after unwatch returns... except
  /// one already running. Unknown ids are ignored.
  virtual void unwatch(WatchId id) = 0;

  // --- Any replica (docs/cluster.md): with a shared journal a job may be
  // held by another process. These answer from this process when it holds
  // the job, else from the store; `done` runs once, on a core or journal
  // thread (inline when answered here). When the store had to be asked and
  // did not answer (an outage), `done` gets StoreUnavailable, never a
  // "not found". With a journal of one process they are get(), cancel()
  // and dead_jobs(), and always answered. ---

  /// get(), or the store's row of a job another replica accepted or runs
  /// (nullopt: unknown here and in the store).
  virtual void find(JobId id,
                    std::function<void(StoreAnswer<std::optional<JobRecord>>)> done) const {
    done(get(id));
  }
  /// cancel(), or a cancel request through the store (the owner cancels the
  /// attempt; an unowned queued job ends CANCELLED at once).
  virtual void cancel_anywhere(
      JobId id, std::function<void(StoreAnswer<std::optional<CancelOutcome>>)> done) {
    done(cancel(id));
  }
  /// dead_jobs() of every replica (nullopt: unknown troupe here).
  virtual void dead_jobs_anywhere(
      std::string_view troupe, std::size_t limit,
      std::function<void(StoreAnswer<std::optional<std::vector<JobRecord>>>)> done) const {
    done(dead_jobs(troupe, limit));
  }

  virtual std::vector<TroupeStatus> troupes() const = 0;
  virtual std::optional<TroupeStatus> troupe(std::string_view name) const = 0;
  /// Newest first, at most `limit`; nullopt for an unknown troupe.
  virtual std::optional<std::vector<JobRecord>> dead_jobs(std::string_view troupe,
                                                          std::size_t limit) const = 0;

  /// Stops accepting (submits get kDraining), lets accepted jobs finish,
  /// and after `timeout` cancels what runs and aborts what waits. `done` is
  /// called once, on a core thread, when every accepted job is terminal.
  /// With a durable journal, at the deadline queued and backing-off jobs
  /// are left as they are for the next start and running ones are
  /// cancelled and requeued (DrainReport::left); with the memory journal
  /// they end ABORTED.
  virtual void drain(Duration timeout, std::function<void(DrainReport)> done) = 0;

  /// Reads the journal back, once, after the first apply() and before the
  /// first submit: non-terminal jobs of known troupes re-enter them in
  /// acceptance order (never refused for capacity); retry-waiting ones keep
  /// their next run time; one that was running counts that attempt as
  /// CRASH and follows its retry policy (DEAD after max_attempts); terminal
  /// ones become findable (GetJob, idempotency keys) and DEAD ones dead
  /// letters. Rows of unknown troupes are left in the journal and counted.
  /// Recovered non-terminal jobs count as submitted in this process (the
  /// conservation check holds: submitted == ended + left + in_flight);
  /// terminal ones are in no counter.
  virtual RecoveryReport recover() = 0;

  /// Calls `done` once everything journaled so far (the accept of a job
  /// submit() just returned, a terminal state a callback just reported) is
  /// durable, or the journal failed (`failure` set). Inline with the memory
  /// journal.
  virtual void after_durable(DurableCallback done) = 0;

  /// The failure that stopped the journal, if any (set before the barriers
  /// it failed, and on_terminal callbacks, run).
  virtual std::optional<JournalFailure> journal_failure() const = 0;

  /// Called once, on the journal's writer thread, when the journal fails;
  /// submits are refused with kStoreUnavailable from then on. Set it before
  /// the first submit.
  virtual void on_journal_failure(std::function<void(const JournalFailure&)> handler) = 0;

  /// Called on every change of a shared store's reachability (docs/cluster.md):
  /// while it is down submits are refused with kStoreUnavailable; `why`
  /// names the problem. Never called with a journal of one process. Set it
  /// before the first submit.
  virtual void on_store_availability(std::function<void(bool up, const std::string& why)> handler) {
    (void)handler;
  }

  /// The cluster as a shared store has it (Journal::cluster(): replicas
  /// with their leases, every troupe's queue depth across replicas, the
  /// holders of singleton leases and max_concurrency permits); its troupes
  /// are those the store lists and every troupe hosted here (zeros when it
  /// has none), by name, with their `cluster:` options as configured here. `done` runs once, on
  /// the journal's thread; inline, kNotShared, with a journal of one
  /// process.
  virtual void cluster(std::function<void(ClusterLookup)> done) const { done(ClusterLookup{}); }
};

/// Destroy the returned runtime only once the io_context is no longer being
/// run (join its threads first, e.g. after a completed drain): work still
/// queued there is discarded with the io_context, never run against a
/// destroyed runtime.
std::unique_ptr<Runtime> make_runtime(boost::asio::io_context& io, Clock& clock, Observer& observer,
                                      RuntimeOptions options);
/// The same on `journal` (which must outlive the runtime): every lifecycle
/// transition is appended to it when it is durable.
std::unique_ptr<Runtime> make_runtime(boost::asio::io_context& io, Clock& clock, Observer& observer,
                                      RuntimeOptions options, Journal& journal);

}  // namespace troupe::core
