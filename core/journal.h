#pragma once

/// The durable half of the job store: an append-only stream of lifecycle
/// transitions that a journal makes durable in groups, and reads back at
/// start. core/ defines the contract and a memory journal; the SQLite
/// journal lives in store/ (no database client in core/).

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/job.h"

namespace troupe::core {

/// A job as accepted: everything needed to run it again after a restart.
/// Wall-clock times in ns since the epoch (0 = unset).
struct JournalAccepted {
  JobId id;
  std::string troupe;
  std::string payload;
  std::string key;
  std::string idempotency_key;
  Metadata metadata;
  std::int64_t submitted_ns = 0;
  std::int64_t deadline_ns = 0;         // 0: none
  std::int64_t attempt_timeout_ns = 0;  // 0: the troupe's timeout
};

/// Queued -> Running: attempt number `attempts` (1 for the first) started.
struct JournalStarted {
  JobId id;
  std::uint32_t attempts = 0;
  std::int64_t started_ns = 0;
};

/// Running -> RetryWait: the attempt failed and runs again at `next_run_ns`
/// (wall clock). `error` and `failure` are the failed attempt's.
struct JournalRetryWait {
  JobId id;
  std::uint32_t attempts = 0;
  std::int64_t next_run_ns = 0;
  std::string error;
  FailureClass failure = FailureClass::kNone;
};

/// Running or RetryWait -> Queued without a terminal state: the drain
/// deadline handed the job back for the next start (`attempts` is the count
/// to keep: an interrupted attempt is not counted against the job).
struct JournalRequeued {
  JobId id;
  std::uint32_t attempts = 0;
};

/// Any -> a terminal state. `output` is the result on success, the error
/// otherwise.
struct JournalTerminal {
  JobId id;
  JobState state = JobState::kSucceeded;
  FailureClass failure = FailureClass::kNone;
  std::uint32_t attempts = 0;
  std::string output;
  std::int64_t started_ns = 0;
  std::int64_t finished_ns = 0;
};

using JournalEntry = std::variant<JournalAccepted, JournalStarted, JournalRetryWait,
                                  JournalRequeued, JournalTerminal>;

/// Why a journal cannot make entries durable. Once a journal has failed it
/// stays failed for the life of the process (after a failed fsync the page
/// cache's state is unknown; recovery on the next start is the only way
/// back).
struct JournalFailure {
  std::string message;  // names the store and the problem, e.g. "sqlite /var/lib/...: disk full"
};

/// Called once the entries appended before the barrier are durable
/// (`failure` null), or once the journal has failed (`failure` set: they
/// may not be). Runs on the journal's writer thread or inline; must not
/// block.
using DurableCallback = std::function<void(const JournalFailure* failure)>;

/// One job as read back at start, in its last journaled state. Times are
/// wall clock, ns since the epoch.
struct RecoveredJob {
  JournalAccepted request;
  JobState state = JobState::kQueued;  // kRunning: it was running when the process died
  FailureClass failure = FailureClass::kNone;
  std::uint32_t attempts = 0;
  std::string output;
  std::int64_t started_ns = 0;
  std::int64_t finished_ns = 0;
  std::int64_t next_run_ns = 0;  // kRetryWait
};

/// What a journal reports for metrics. Called on the journal's writer
/// thread; must not block. Every method has an empty default.
class JournalObserver {
 public:
  virtual ~JournalObserver() = default;
  /// A commit made `entries` durable (`accepted` of them new jobs) and took
  /// `latency` from its first entry's arrival to the end of its fsync.
  virtual void committed(std::chrono::nanoseconds latency, std::size_t entries,
                         std::size_t accepted) {
    (void)latency, (void)entries, (void)accepted;
  }
  /// The store's size on disk (database plus write-ahead log).
  virtual void store_bytes(std::uint64_t bytes) { (void)bytes; }
  /// Rows held per state (sampled now and then, not per commit).
  virtual void rows(JobState state, std::uint64_t count) { (void)state, (void)count; }
  /// Expired rows deleted.
  virtual void expired(std::uint64_t rows) { (void)rows; }
};

/// What a journal shared by several processes (`store: {kind: postgres}`,
/// docs/cluster.md) tells the process it serves, besides journaling that
/// process's own transitions. The runtime sets them once, before recover().
/// Every hook runs on the journal's thread and must not block.
struct ClusterHooks {
  /// How many more jobs of troupe `troupe` this process can take now
  /// (free mailbox room; 0 for a troupe it does not host, or while closed
  /// or draining). The journal claims at most that many. Any thread.
  std::function<std::size_t(std::string_view troupe)> room;
  /// A job this process now owns and did not hold: accepted by another
  /// replica, handed back by a drained one, or taken over from a replica
  /// whose lease expired. As a recovered row: kQueued runs, kRetryWait runs
  /// at next_run_ns, kRunning (its owner died mid-attempt) counts that
  /// attempt as CRASH under the retry policy. Counts as submitted here.
  /// One it cannot take (its troupe is not hosted here, or closed: drain,
  /// removal) comes straight back as a JournalRequeued with the row's
  /// attempts (claimable again); a terminal row is ignored.
  std::function<void(RecoveredJob&&)> claimed;
  /// This process lost job `id` (its lease expired and another replica took
  /// it, or a write found a newer owner): stop its attempt, journal nothing
  /// more for it; it is not ended here (counted as left).
  std::function<void(JobId id)> lost;
  /// A client asked another replica to cancel job `id`, which this process
  /// owns: cancel it as a local CancelJob would.
  std::function<void(JobId id)> cancel;
  /// The store became unreachable (`up` false, `why` names the problem) or
  /// reachable again. Transient, unlike a failure: the journal reconnects
  /// with backoff and keeps what it holds; barriers wait meanwhile (entries
  /// are written once it is back). Called once per change, not per entry.
  std::function<void(bool up, const std::string& why)> availability;

  // --- Coordination of troupes with `cluster:` options (Journal::coordinate). ---

  /// Singleton troupe `troupe`: this process holds its lease with fencing
  /// term `term` (> 0) and runs its jobs, or no longer holds it (`term` 0):
  /// it hands the troupe's jobs back to the store at once (running attempts
  /// cancelled and requeued without counting them, queued ones released)
  /// and hands every new one over as it accepts it.
  std::function<void(std::string_view troupe, std::int64_t term)> leadership;
  /// Troupe `troupe` with max_concurrency: this process may run at most
  /// `permits` attempts of it at once from now on. Returns how many run now
  /// (after the cap took effect: a lowered cap never stops a running
  /// attempt, so that many permits are still in use).
  std::function<std::uint32_t(std::string_view troupe, std::uint32_t permits)> permits;
  /// The permits troupe `troupe` could use here: its queued plus running
  /// attempts, at most its actors. Any thread.
  std::function<std::size_t(std::string_view troupe)> demand;
  /// Troupe `troupe` with a cluster rate limit: `tokens` more attempt starts
  /// were granted to this process by the store's bucket (0: none now; the
  /// troupe looks again, and asks again with Journal::want_tokens when it
  /// still has work).
  std::function<void(std::string_view troupe, std::uint32_t tokens)> tokens;
  /// The tokens troupe `troupe` could use now: its queued jobs beyond the
  /// tokens it holds. Any thread.
  std::function<std::size_t(std::string_view troupe)> token_demand;
};

/// A troupe a shared journal coordinates across replicas (its `cluster:`
/// options, core::ClusterOptions, and its key order).
struct CoordinatedTroupe {
  std::string name;
  bool singleton = false;
  std::uint32_t max_concurrency = 0;  // 0: no cap
  double rate_per_second = 0;         // cluster rate limit; 0: none
  std::uint32_t rate_burst = 0;       // its bucket size (>= 1 when limited)
  /// `dispatch: key`: the jobs of one key are given to one replica at a
  /// time, in submission order (its jobs with a key are accepted unowned;
  /// Troupe::keys_across_replicas).
  bool key_order = false;
};

// --- The cluster view (h19: AdminService GetCluster, the cluster gauges;
// docs/cluster.md, "Watching the cluster"). ---

/// One registered incarnation of a replica in a shared store (a trouped
/// process since its start). Times are the database's clock, ns since the
/// epoch.
struct ClusterReplica {
  std::string name;  // store.replica: the pod or host name
  std::int64_t incarnation = 0;
  std::int64_t started_ns = 0;
  std::int64_t heartbeat_ns = 0;  // the last renewal of its lease
  std::int64_t expires_ns = 0;    // its lease's expiry
  bool alive = false;             // its lease has not expired
};

/// A singleton troupe's lease as the store has it (troupe_leases): who holds
/// it, with which fencing term, until when (the database's clock, ns since
/// the epoch).
struct ClusterLease {
  std::string holder;            // the holding incarnation's replica name; empty: none
  std::int64_t incarnation = 0;  // the holding incarnation; 0: released (none)
  std::int64_t term = 0;         // the fencing term, raised at every takeover
  std::int64_t expires_ns = 0;
  /// Held now: an incarnation still registered holds it and it has not
  /// expired. False for a released lease, an expired one, or one whose
  /// holder is gone (reaped or stopped): the next taker raises the term.
  bool held = false;
};

/// The max_concurrency permits one incarnation holds for a troupe.
struct ClusterPermits {
  std::string replica;  // the incarnation's replica name
  std::int64_t incarnation = 0;
  std::uint32_t permits = 0;
};

/// One troupe's unfinished jobs across every replica of a shared store, and
/// who holds its coordination (docs/cluster.md, "Coordinated troupes").
struct ClusterTroupe {
  std::string name;
  /// QUEUED and RETRY_WAIT jobs, owned by a replica or not.
  std::uint64_t queue_depth = 0;
  std::uint64_t running = 0;
  /// The submit time (the accepting replica's clock) of the oldest QUEUED
  /// job; 0 when none is queued.
  std::int64_t oldest_queued_ns = 0;
  /// Singleton troupes: the lease's row, once a replica has taken it.
  std::optional<ClusterLease> lease = std::nullopt;
  /// max_concurrency troupes: each registered incarnation holding permits,
  /// by replica name then incarnation (none: no permit is held).
  std::vector<ClusterPermits> permits = {};
  /// The troupe's `cluster:` options as the replica that answers hosts it
  /// (false and 0 for a troupe not hosted there). Set by the runtime, not
  /// the journal.
  bool singleton = false;
  std::uint32_t max_concurrency = 0;
};

/// What a shared store says about the cluster, in one snapshot.
struct ClusterView {
  std::int64_t now_ns = 0;               // the database's clock when it answered
  std::vector<ClusterReplica> replicas;  // by name, then incarnation
  /// By name: the troupes with unfinished jobs, a lease row or permits held.
  std::vector<ClusterTroupe> troupes;

  /// Troupe `name`'s entry, inserted with zeros (in name order) when the
  /// view has none.
  ClusterTroupe& troupe(const std::string& name) {
    auto it =
        std::lower_bound(troupes.begin(), troupes.end(), name,
                         [](const ClusterTroupe& t, const std::string& n) { return t.name < n; });
    if (it == troupes.end() || it->name != name)
      it = troupes.insert(it, ClusterTroupe{.name = name});
    return *it;
  }
};

/// Journal::cluster()'s answer.
struct ClusterLookup {
  enum class Status {
    kNotShared,    // a store of one process: there is no cluster to show
    kUnavailable,  // the store did not answer (`error` says why)
    kOk,
  };
  Status status = Status::kNotShared;
  std::string error;
  ClusterView view;
};

/// A shared store that gave no answer to a lookup (unreachable, or the query
/// failed): unlike "no such job", what the store holds is unknown. `why`
/// names the store and the problem.
struct StoreUnavailable {
  std::string why;
};

/// A lookup in a shared store: `T` when the store answered (for one job an
/// optional, nullopt meaning "the store has no such job"), StoreUnavailable
/// when it did not.
template <class T>
using StoreAnswer = std::variant<T, StoreUnavailable>;

/// Journal::accept_keyed()'s answer (idempotency keys across replicas,
/// docs/cluster.md).
struct KeyedAccept {
  enum class Status {
    kAccepted,     // the row is committed, owned by this process; the key is the job's
    kDuplicate,    // the key names another job (`existing`): nothing was written
    kUnavailable,  // the store did not answer (`error` says why): nothing is known
  };
  Status status = Status::kUnavailable;
  RecoveredJob existing;  // kDuplicate: the job the key names, as the store has it
  std::string error;
};

/// The journal's contract. Thread-safe: append() and after_durable() may be
/// called from any thread concurrently and never block on I/O.
///
/// Per job, entries are appended in lifecycle order, its JournalAccepted
/// first (the caller guarantees it: the job is not visible to an actor
/// before its accept is appended).
///
/// Order: entries become durable in the order they were appended (per
/// journal, not only per job); a barrier's callback runs once every entry
/// appended before after_durable() was called is durable. Callbacks run in
/// barrier order. Group commit: the writer commits everything that arrived
/// while the previous commit was in progress, in one transaction.
class Journal {
 public:
  virtual ~Journal() = default;

  /// True when entries survive a restart of the process.
  virtual bool durable() const = 0;

  /// Reads back, once, before the first append: every job the journal still
  /// holds, non-terminal ones in the order they were accepted, and terminal
  /// ones whose result or idempotency key has not expired. `each` is called
  /// for each job, on the calling thread.
  virtual void recover(const std::function<void(RecoveredJob&&)>& each) = 0;

  /// Queues `entry` for the next commit. Returns its position for
  /// durable_position() (a shared journal numbers entries from 1 in append
  /// order); a journal that is not shared may return 0.
  virtual std::uint64_t append(JournalEntry entry) = 0;

  /// Calls `done` once everything appended so far is durable, or the
  /// journal failed.
  virtual void after_durable(DurableCallback done) = 0;

  /// The failure that stopped the journal, if any.
  virtual std::optional<JournalFailure> failure() const = 0;

  /// Called once, on the writer thread, when the journal fails (to stop
  /// admission, report NOT_SERVING and exit for a restart). Set before the
  /// first append.
  virtual void on_failure(std::function<void(const JournalFailure&)> handler) = 0;

  /// Commits what is pending, stops the writer. After it, append() is ignored.
  virtual void close() = 0;

  // --- Shared journals (several replicas on one store). A journal of one
  // process keeps these defaults. ---

  /// True when other processes share the store: jobs may be run, looked up
  /// and cancelled by another replica.
  virtual bool shared() const { return false; }

  /// The position of the last durable entry: every entry append() numbered
  /// up to it is committed, and where the store refused one (a fenced write
  /// of a job another replica holds), ClusterHooks::lost has already run
  /// for its job. Lets a reader tell whether a job's terminal write is
  /// answered without asking a barrier. Any thread; never blocks on I/O.
  virtual std::uint64_t durable_position() const { return 0; }

  /// Sets the hooks a shared journal calls (ignored otherwise). Called once,
  /// before recover().
  virtual void set_cluster_hooks(ClusterHooks hooks) { (void)hooks; }

  /// A job this process does not hold, as the store has it (for GetJob of a
  /// job accepted or run elsewhere): the row, nullopt when the store has no
  /// such job, or StoreUnavailable when it did not answer (an outage, a
  /// failed query). Calls `done` once, on the journal's thread (or inline).
  virtual void find(JobId id, std::function<void(StoreAnswer<std::optional<RecoveredJob>>)> done) {
    (void)id;
    done(std::optional<RecoveredJob>());
  }

  /// Asks the store to cancel a job this process does not hold: a queued,
  /// unowned one ends CANCELLED at once; an owned one is cancelled by its
  /// owner (ClusterHooks::cancel there). `done` gets the job as it was
  /// before the request (nullopt: unknown; StoreUnavailable: the store did
  /// not answer, and nothing was cancelled), once, on the journal's thread.
  virtual void request_cancel(JobId id,
                              std::function<void(StoreAnswer<std::optional<RecoveredJob>>)> done) {
    (void)id;
    done(std::optional<RecoveredJob>());
  }

  /// The newest DEAD jobs of `troupe` in the store, newest first, at most
  /// `limit` (every replica's); StoreUnavailable when the store did not
  /// answer. `done` runs once, on the journal's thread.
  virtual void dead_jobs(std::string troupe, std::size_t limit,
                         std::function<void(StoreAnswer<std::vector<RecoveredJob>>)> done) {
    (void)troupe, (void)limit;
    done(std::vector<RecoveredJob>());
  }

  // --- Idempotency keys across replicas (issue 14). ---

  /// A job with an idempotency key, before this process accepts it: in a
  /// transaction of its own, the store inserts `accepted` as a queued row
  /// owned by this process unless its (troupe, idempotency_key) already
  /// names a job submitted within the journal's idempotency TTL, in which
  /// case nothing is written and `done` gets that job (kDuplicate). The
  /// store decides between replicas racing with one key (a unique index):
  /// exactly one of them gets kAccepted. `done` runs once, on the journal's
  /// thread, after the commit; it must not block.
  ///
  /// After kAccepted the caller either accepts the job with this id (the
  /// JournalAccepted it then appends writes nothing: the row exists; its
  /// later entries are fenced writes as for a claimed job), or, when it
  /// refuses the job after all, calls withdraw_keyed(id): the row goes and
  /// nothing of the job stays. A journal of one process answers
  /// kUnavailable with an empty `error` (not shared: never called).
  virtual void accept_keyed(JournalAccepted accepted, std::function<void(KeyedAccept)> done) {
    (void)accepted;
    done(KeyedAccept{});
  }

  /// Removes the row accept_keyed() committed for job `id`, which this
  /// process refused after all (no entry of it was appended). Any thread;
  /// never blocks.
  virtual void withdraw_keyed(JobId id) { (void)id; }

  // --- The cluster view (h19). ---

  /// The replicas registered in the store, every troupe's unfinished jobs
  /// across them, and the holders of singleton leases and max_concurrency
  /// permits (ClusterView), in one round of cheap queries. `done`
  /// runs once, on the journal's thread (or inline). A journal of one
  /// process answers ClusterLookup::Status::kNotShared.
  virtual void cluster(std::function<void(ClusterLookup)> done) { done(ClusterLookup{}); }

  // --- Coordinated troupes (h18). ---

  /// The troupes with `cluster:` options or `dispatch: key` this process
  /// hosts (each call replaces the last; called at start and at every
  /// reload, before recover() the first time). A shared journal elects a
  /// holder per singleton troupe and leases max_concurrency permits,
  /// reporting through ClusterHooks::leadership and ::permits; until it
  /// reports, a singleton troupe is not led here and a capped one holds no
  /// permit. It claims the jobs of a key-ordered troupe one key at a time
  /// (CoordinatedTroupe::key_order).
  virtual void coordinate(std::vector<CoordinatedTroupe> troupes) { (void)troupes; }

  /// Troupe `troupe` (with a cluster rate limit) has queued work and no
  /// token: take a block from the store's bucket now (ClusterHooks::tokens
  /// answers). Never waits; any thread; a call while a request is in flight
  /// or waiting for the bucket to refill adds nothing.
  virtual void want_tokens(std::string troupe) { (void)troupe; }
};

/// The journal of `store: {kind: memory}`: nothing survives a restart;
/// every barrier is durable at once (inline).
std::unique_ptr<Journal> make_memory_journal();

}  // namespace troupe::core
