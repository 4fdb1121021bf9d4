#include "store/pg_journal.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <future>
#include <initializer_list>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "store/barrier_queue.h"
#include "store/entry_fold.h"
#include "store/metadata_codec.h"
#include "store/pg_connection.h"
#include "store/pg_schema.h"
#include "store/sql_values.h"

namespace troupe::store {

namespace {

using namespace std::chrono_literals;
using core::JobState;
using detail::clamp_ttl_ns;
using detail::from_sql;
using detail::PgParams;
using detail::PgQuery;
using detail::PgResult;
using detail::PgRound;
using detail::to_sql;
using detail::wall_now_ns;
namespace pg = detail::pg;

static_assert(static_cast<int>(JobState::kQueued) == 0);
static_assert(static_cast<int>(JobState::kRunning) == 1);
static_assert(static_cast<int>(JobState::kRetryWait) == 2);
static_assert(static_cast<int>(JobState::kSucceeded) == 3);
static_assert(static_cast<int>(JobState::kDead) == 5);
static_assert(static_cast<int>(JobState::kCancelled) == 6);
static_assert(static_cast<int>(JobState::kAborted) == 7);
static_assert(static_cast<int>(core::FailureClass::kCancelled) == 5);

std::int64_t micros(core::Duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

int whole_seconds(core::Duration d) {
  return static_cast<int>(std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(d + 999ms).count()));
}

/// The job in row `row` of `result`, its columns (pg::kJobColumns) from
/// `first`. Unreadable metadata reads as none (it was written by this
/// code; the row stays usable).
core::RecoveredJob decode_job(const PGresult* result, int row, int first) {
  using detail::pg_bytes;
  using detail::pg_int;
  core::RecoveredJob job;
  auto& r = job.request;
  int c = first;
  r.id = from_sql(pg_int(result, row, c++));
  r.troupe = pg_bytes(result, row, c++);
  job.state = static_cast<JobState>(pg_int(result, row, c++));
  r.payload = pg_bytes(result, row, c++);
  r.key = pg_bytes(result, row, c++);
  r.idempotency_key = pg_bytes(result, row, c++);
  r.metadata = detail::decode_metadata(pg_bytes(result, row, c++)).value_or(core::Metadata{});
  r.submitted_ns = pg_int(result, row, c++);
  r.deadline_ns = pg_int(result, row, c++);
  r.attempt_timeout_ns = pg_int(result, row, c++);
  job.attempts = static_cast<std::uint32_t>(pg_int(result, row, c++));
  job.failure = static_cast<core::FailureClass>(pg_int(result, row, c++));
  job.output = pg_bytes(result, row, c++);
  job.started_ns = pg_int(result, row, c++);
  job.finished_ns = pg_int(result, row, c++);
  job.next_run_ns = pg_int(result, row, c++);
  return job;
}

bool ok(const PgResult& result) {
  auto status = PQresultStatus(result.get());
  return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
}

/// The first error among a round's results, for a message.
std::string round_error(const std::vector<PgResult>& results) {
  for (const auto& result : results) {
    if (!ok(result) && PQresultStatus(result.get()) != PGRES_PIPELINE_ABORTED) {
      std::string message = PQresultErrorMessage(result.get());
      while (!message.empty() && message.back() == '\n') message.pop_back();
      return message;
    }
  }
  return "no answer";
}

bool round_ok(const std::vector<PgResult>& results, std::size_t expected) {
  if (results.size() != expected) return false;
  return std::all_of(results.begin(), results.end(), ok);
}

/// Runs `sql` on a blocking connection; throws StoreError naming `what`.
PgResult exec_or_throw(PGconn* conn, const char* sql, const std::string& what,
                       const PgParams* params = nullptr) {
  PGresult* raw;
  if (params != nullptr) {
    std::vector<const char*> values = params->values();
    raw = PQexecParams(conn, sql, params->size(), params->types(), values.data(), params->lengths(),
                       params->formats(), 1);
  } else {
    raw = PQexecParams(conn, sql, 0, nullptr, nullptr, nullptr, nullptr, 1);
  }
  PgResult result(raw);
  if (!result || !ok(result)) {
    std::string message = result ? PQresultErrorMessage(result.get()) : PQerrorMessage(conn);
    while (!message.empty() && message.back() == '\n') message.pop_back();
    throw StoreError("postgres store: " + what + ": " + message);
  }
  return result;
}

/// core::Journal on PostgreSQL, shared by the replicas of a cluster
/// (docs/cluster.md; the statements in store/pg_schema.h). Executor: one
/// thread ("troupe-pg") runs an io_context that owns the connection
/// (detail::PgConnection) and every piece of state below the mutex's:
/// group commits (one in flight; what is appended meanwhile goes in the
/// next), heartbeats with reaping and retention, claims, notifications,
/// lookups. Thread-safety: append() and after_durable() take one mutex
/// briefly; lookups, hooks and close() hand their work to the thread.
/// Owns the thread and the connection until destroyed.
class PgJournal final : public core::Journal {
 public:
  explicit PgJournal(const PgJournalOptions& options)
      : options_(options),
        result_ttl_ns_(clamp_ttl_ns(options.result_ttl)),
        idempotency_ttl_ns_(clamp_ttl_ns(options.idempotency_ttl)),
        heartbeat_timer_(io_),
        poll_timer_(io_),
        work_(boost::asio::make_work_guard(io_)) {
    if (options_.dsn.empty()) throw StoreError("postgres store: the dsn is empty");
    if (options_.replica.empty()) options_.replica = "trouped";
    set_up_schema_and_register();
    connection_ = std::make_unique<detail::PgConnection>(
        io_, options_.dsn,
        std::chrono::duration_cast<std::chrono::milliseconds>(options_.connect_timeout),
        std::vector<std::string>{"LISTEN troupe_jobs", "LISTEN troupe_cancel",
                                 "LISTEN troupe_leases"},
        detail::PgConnection::Handlers{
            .on_down = [this](const std::string& why) { on_down(why); },
            .on_up = [this] { on_up(); },
            .on_notify = [this](std::string_view channel,
                                std::string_view payload) { on_notify(channel, payload); },
        });
    boost::asio::post(io_, [this] {
      connection_->start();
      schedule_heartbeat();
    });
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "troupe-pg");
      io_.run();
    });
  }

  ~PgJournal() override {
    close();
    if (thread_.joinable()) {
      work_.reset();
      io_.stop();
      thread_.join();
    }
    connection_.reset();
  }

  bool durable() const override { return true; }
  bool shared() const override { return true; }

  /// Shared: a new incarnation owns nothing, so there is nothing to read
  /// back. Jobs left by earlier incarnations (this replica's or others')
  /// arrive through ClusterHooks::claimed once their lease expired or they
  /// were released; claiming starts here (the hooks are set by now).
  void recover(const std::function<void(core::RecoveredJob&&)>&) override {
    on_io([this] {
      claims_on_ = true;
      claim_all();
      coordination_round();
    });
  }

  void set_cluster_hooks(core::ClusterHooks hooks) override {
    on_io([this, hooks = std::move(hooks)]() mutable { hooks_ = std::move(hooks); });
  }

  std::uint64_t append(core::JournalEntry entry) override {
    bool kick = false;
    std::uint64_t position;
    {
      std::lock_guard lock(mutex_);
      // Dropped (the journal failed or closes): nothing will answer it.
      if (failure_ || stopping_) return 0;
      if (const auto* accepted = std::get_if<core::JournalAccepted>(&entry);
          accepted != nullptr && keyed_.erase(accepted->id.value) != 0) {
        return 0;  // accept_keyed() wrote its row
      }
      if (pending_.empty()) first_arrival_ = Clock::now();
      pending_.push_back(std::move(entry));
      barriers_.appended();
      position = barriers_.appended_count();
      kick = !kick_posted_;
      kick_posted_ = true;
    }
    if (kick) boost::asio::post(io_, [this] { maybe_commit(); });
    return position;
  }

  std::uint64_t durable_position() const override {
    // Lock-free: read under a job's lock (core::JournalLink::
    // outcome_settled_locked). Stored after the commit's lose() calls.
    return durable_position_.load(std::memory_order_acquire);
  }

  void after_durable(core::DurableCallback done) override {
    std::unique_lock lock(mutex_);
    if (barriers_.after_durable(std::move(done), lock, failure_))
      boost::asio::post(io_, [this] { run_barriers(); });
  }

  std::optional<core::JournalFailure> failure() const override {
    std::lock_guard lock(mutex_);
    return failure_;
  }

  void on_failure(std::function<void(const core::JournalFailure&)> handler) override {
    std::lock_guard lock(mutex_);
    on_failure_ = std::move(handler);
  }

  void close() override {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) {
        if (std::this_thread::get_id() == thread_.get_id() || !thread_.joinable()) return;
      }
      stopping_ = true;
    }
    if (std::this_thread::get_id() == thread_.get_id()) {
      // From a hook or a barrier: the rest happens on this thread; the
      // destructor joins it.
      boost::asio::post(io_, [this] { begin_close(nullptr); });
      return;
    }
    std::lock_guard close_lock(close_mutex_);
    if (closed_) return;
    closed_ = true;
    auto done = std::make_shared<std::promise<void>>();
    std::future<void> finished = done->get_future();
    boost::asio::post(io_, [this, done] { begin_close(done); });
    // Bounded: with the server gone, what is pending cannot be written; the
    // lease hands the jobs to others anyway.
    auto bound = std::max<core::Duration>(options_.lease, 5s);
    if (finished.wait_for(bound) != std::future_status::ready) {
      on_io([this] { give_up("closed while the store was unreachable"); });
    }
    on_io([this] {
      heartbeat_timer_.cancel();
      poll_timer_.cancel();
      for (auto& [troupe, bucket] : buckets_) bucket.refill->cancel();
      connection_->stop();
    });
  }

  void find(
      core::JobId id,
      std::function<void(core::StoreAnswer<std::optional<core::RecoveredJob>>)> done) override {
    PgRound round;
    round.queries.push_back(PgQuery{pg::kFind, PgParams().i64(to_sql(id))});
    round.done = answer_one_job(1, std::move(done));
    submit_from_any_thread(std::move(round));
  }

  void request_cancel(
      core::JobId id,
      std::function<void(core::StoreAnswer<std::optional<core::RecoveredJob>>)> done) override {
    // One round, one transaction (PgRound): not answered, nothing was changed.
    PgRound round;
    round.queries.push_back(PgQuery{pg::kFindForUpdate, PgParams().i64(to_sql(id))});
    round.queries.push_back(
        PgQuery{pg::kCancelUnowned, PgParams().i64(to_sql(id)).i64(wall_now_ns())});
    round.queries.push_back(PgQuery{pg::kCancelOwned, PgParams().i64(to_sql(id))});
    round.done = answer_one_job(3, std::move(done));
    submit_from_any_thread(std::move(round));
  }

  void dead_jobs(
      std::string troupe, std::size_t limit,
      std::function<void(core::StoreAnswer<std::vector<core::RecoveredJob>>)> done) override {
    PgRound round;
    round.queries.push_back(PgQuery{
        pg::kDeadJobs, PgParams().text(troupe).i64(static_cast<std::int64_t>(std::min<std::size_t>(
                           limit, std::numeric_limits<std::int64_t>::max())))});
    round.done = [this, done = std::move(done)](std::vector<PgResult>& results, bool lost) {
      if (lost || !round_ok(results, 1)) return done(unanswered(results, lost));
      std::vector<core::RecoveredJob> jobs;
      for (int row = 0; row < PQntuples(results[0].get()); ++row) {
        jobs.push_back(decode_job(results[0].get(), row, 0));
      }
      done(std::move(jobs));
    };
    submit_from_any_thread(std::move(round));
  }

  // ---- idempotency keys across replicas (issue 14) ----

  void accept_keyed(core::JournalAccepted a, std::function<void(core::KeyedAccept)> done) override {
    const std::int64_t expired_before =
        wall_now_ns() - std::min(idempotency_ttl_ns_, wall_now_ns());
    PgRound round;
    // Sent again after a lost answer: a committed first try is then found
    // by its id (the insert does nothing, the lookup names this job).
    round.resend = true;
    round.queries.push_back(PgQuery{
        pg::kExpireKey, PgParams().text(a.troupe).text(a.idempotency_key).i64(expired_before)});
    round.queries.push_back(
        PgQuery{pg::kFindByKey, PgParams().text(a.troupe).text(a.idempotency_key)});
    const core::JobId id = a.id;
    std::string troupe = a.troupe;
    std::string metadata = detail::encode_metadata(a.metadata);
    boost::asio::post(io_, [this, a = std::move(a), metadata = std::move(metadata),
                            round = std::move(round), id, troupe = std::move(troupe),
                            done = std::move(done)]() mutable {
      bool registering;
      {
        std::lock_guard lock(mutex_);
        registering = registering_;
      }
      if (io_closed_ || closing_ || registering) {
        // Registering again (declared dead): a row owned by the old
        // incarnation would be free for others while it ran here.
        done(core::KeyedAccept{core::KeyedAccept::Status::kUnavailable,
                               {},
                               registering
                                   ? "postgres store: this replica is registering again; retry"
                                   : "postgres store: closing"});
        return;
      }
      // The incarnation is this thread's: the row is owned by the current one.
      round.queries.insert(round.queries.begin() + 1,
                           PgQuery{pg::kInsertKeyed, PgParams()
                                                         .i64(to_sql(a.id))
                                                         .text(a.troupe)
                                                         .i64(incarnation_)
                                                         .bytes(a.payload)
                                                         .text(a.key)
                                                         .text(a.idempotency_key)
                                                         .bytes(metadata)
                                                         .i64(a.submitted_ns)
                                                         .i64(a.deadline_ns)
                                                         .i64(a.attempt_timeout_ns)});
      round.done = [this, id, troupe = std::move(troupe), done = std::move(done)](
                       std::vector<PgResult>& results, bool lost) {
        using Status = core::KeyedAccept::Status;
        if (lost || !round_ok(results, 3)) {
          done(core::KeyedAccept{
              Status::kUnavailable,
              {},
              "postgres store: " + (lost ? std::string("closing") : round_error(results))});
          return;
        }
        const PGresult* found = results[2].get();
        const bool inserted = PQntuples(results[1].get()) > 0;
        if (inserted || (PQntuples(found) > 0 && from_sql(detail::pg_int(found, 0, 0)) == id)) {
          owned_[id.value] = Owned{1, troupe, {}};
          {
            std::lock_guard lock(mutex_);
            keyed_.insert(id.value);
          }
          done(core::KeyedAccept{Status::kAccepted, {}, {}});
          return;
        }
        if (PQntuples(found) == 0) {
          // The job the key named went between the two statements (expired).
          done(core::KeyedAccept{
              Status::kUnavailable, {}, "postgres store: the idempotency key changed meanwhile"});
          return;
        }
        done(core::KeyedAccept{Status::kDuplicate, decode_job(found, 0, 0), {}});
      };
      connection_->submit(std::move(round));
    });
  }

  void withdraw_keyed(core::JobId id) override {
    {
      std::lock_guard lock(mutex_);
      keyed_.erase(id.value);
    }
    boost::asio::post(io_, [this, id] {
      owned_.erase(id.value);
      cancelled_.erase(id.value);
      if (io_closed_) return;
      PgRound round;
      round.resend = true;
      round.queries.push_back(
          PgQuery{pg::kWithdrawKeyed, PgParams().i64(to_sql(id)).i64(incarnation_)});
      round.done = [](std::vector<PgResult>&, bool) {};
      connection_->submit(std::move(round));
    });
  }

  // ---- the cluster view (h19; lease holders: docs/cluster.md) ----

  void cluster(std::function<void(core::ClusterLookup)> done) override {
    PgRound round;
    round.queries.push_back(PgQuery{pg::kClusterNow, {}});
    round.queries.push_back(PgQuery{pg::kClusterReplicas, {}});
    round.queries.push_back(PgQuery{pg::kClusterTroupes, {}});
    round.queries.push_back(PgQuery{pg::kClusterLeases, {}});
    round.queries.push_back(PgQuery{pg::kClusterPermits, {}});
    round.done = [this, done = std::move(done)](std::vector<PgResult>& results, bool lost) {
      core::ClusterLookup answer;
      if (lost || !round_ok(results, 5)) {
        answer.status = core::ClusterLookup::Status::kUnavailable;
        answer.error = unanswered(results, lost).why;
        done(std::move(answer));
        return;
      }
      using detail::pg_bytes;
      using detail::pg_int;
      answer.status = core::ClusterLookup::Status::kOk;
      answer.view.now_ns = pg_int(results[0].get(), 0, 0);
      const PGresult* replicas = results[1].get();
      for (int row = 0; row < PQntuples(replicas); ++row) {
        answer.view.replicas.push_back(core::ClusterReplica{
            .name = pg_bytes(replicas, row, 0),
            .incarnation = pg_int(replicas, row, 1),
            .started_ns = pg_int(replicas, row, 2),
            .heartbeat_ns = pg_int(replicas, row, 3),
            .expires_ns = pg_int(replicas, row, 4),
            .alive = pg_int(replicas, row, 5) != 0,
        });
      }
      auto& troupes = answer.view.troupes;
      const PGresult* live = results[2].get();
      for (int row = 0; row < PQntuples(live); ++row) {
        troupes.push_back(core::ClusterTroupe{
            .name = pg_bytes(live, row, 0),
            .queue_depth = static_cast<std::uint64_t>(pg_int(live, row, 1)),
            .running = static_cast<std::uint64_t>(pg_int(live, row, 2)),
            .oldest_queued_ns = pg_int(live, row, 3),
        });
      }
      // Leases and permits join the list by name (all three sorted alike);
      // a troupe with nothing unfinished enters with zeros.
      const PGresult* leases = results[3].get();
      for (int row = 0; row < PQntuples(leases); ++row) {
        answer.view.troupe(pg_bytes(leases, row, 0)).lease = core::ClusterLease{
            .holder = pg_bytes(leases, row, 1),
            .incarnation = pg_int(leases, row, 2),
            .term = pg_int(leases, row, 3),
            .expires_ns = pg_int(leases, row, 4),
            .held = pg_int(leases, row, 5) != 0,
        };
      }
      const PGresult* permits = results[4].get();
      for (int row = 0; row < PQntuples(permits); ++row) {
        answer.view.troupe(pg_bytes(permits, row, 0))
            .permits.push_back(core::ClusterPermits{
                .replica = pg_bytes(permits, row, 1),
                .incarnation = pg_int(permits, row, 2),
                .permits = static_cast<std::uint32_t>(pg_int(permits, row, 3)),
            });
      }
      done(std::move(answer));
    };
    submit_from_any_thread(std::move(round));
  }

  // ---- coordination: singleton leases and max_concurrency permits (h18) ----

  /// Never waits: called by the runtime with its troupe table locked.
  void coordinate(std::vector<core::CoordinatedTroupe> troupes) override {
    boost::asio::post(io_, [this, troupes = std::move(troupes)]() mutable {
      key_ordered_.clear();
      for (const auto& t : troupes) {
        if (t.key_order) key_ordered_.insert(t.name);
      }
      // Leases, permits and buckets: the troupes with `cluster:` options.
      std::erase_if(troupes, [](const core::CoordinatedTroupe& t) {
        return !t.singleton && t.max_concurrency == 0 && t.rate_per_second <= 0;
      });
      coordinated_ = std::move(troupes);
      configure_buckets();
      coordination_round();
    });
  }

  void want_tokens(std::string troupe) override {
    boost::asio::post(io_, [this, troupe = std::move(troupe)] { ask_tokens(troupe); });
  }

 private:
  using Clock = std::chrono::steady_clock;
  using Barrier = detail::BarrierQueue::Barrier;
  /// A job this incarnation owns: its fencing term and troupe.
  struct Owned {
    std::int64_t epoch = 1;
    std::string troupe;
    std::string key;  // its key when its troupe is key-ordered (claimed one key at a time)
  };
  /// What a statement of a commit round was, to read its result.
  struct Written {
    bool fenced = false;           // RETURNING the ids written
    std::vector<core::JobId> ids;  // fenced: the jobs it writes
  };
  /// The rows of one unnest() statement: a column per array.
  struct Rows {
    explicit Rows(std::initializer_list<detail::PgArray::Of> kinds) {
      for (auto kind : kinds) columns.emplace_back(kind);
    }
    detail::PgArray& operator[](std::size_t i) { return columns[i]; }
    bool empty() const { return ids.empty(); }
    /// The arrays, then `incarnation` when set.
    PgParams params(std::optional<std::int64_t> incarnation = std::nullopt) const {
      PgParams p;
      for (const auto& column : columns) p.array(column);
      if (incarnation) p.i64(*incarnation);
      return p;
    }
    std::vector<detail::PgArray> columns;
    std::vector<core::JobId> ids;
  };
  static constexpr auto I = detail::PgArray::Of::kInt8;
  static constexpr auto T = detail::PgArray::Of::kText;
  static constexpr auto B = detail::PgArray::Of::kBytea;
  /// The updates of a commit that are a job's n-th update in it: each job
  /// at most once, so their statements' order does not matter.
  struct Phase {
    Rows started{I, I, I, I};               // id, epoch, attempts, started_ns
    Rows retry_wait{I, I, I, I, B, I};      // id, epoch, attempts, next_run_ns, output, failure
    Rows requeued{I, I, I};                 // id, epoch, attempts
    Rows terminal{I, I, I, I, I, B, I, I};  // id, epoch, state, failure, attempts, output,
                                            // started_ns, finished_ns
  };

  /// Runs `fn` on the journal's thread and waits for it (inline when on
  /// it, or once the thread is gone).
  void on_io(std::function<void()> fn) {
    if (std::this_thread::get_id() == thread_.get_id() || !thread_.joinable() || io_.stopped()) {
      fn();
      return;
    }
    std::promise<void> done;
    auto finished = done.get_future();
    boost::asio::post(io_, [&] {
      fn();
      done.set_value();
    });
    finished.wait();
  }

  void submit_from_any_thread(PgRound round) {
    boost::asio::post(io_, [this, round = std::move(round)]() mutable {
      if (io_closed_) {
        std::vector<PgResult> none;
        round.done(none, true);
        return;
      }
      connection_->submit(std::move(round));
    });
  }

  // ---- open ----

  void set_up_schema_and_register() {
    std::string error;
    auto conn =
        detail::pg_connect_blocking(options_.dsn, whole_seconds(options_.connect_timeout), error);
    if (!conn) throw StoreError("postgres store: cannot connect (" + error + ")");
    PGconn* c = conn.get();
    exec_or_throw(c, "BEGIN", "schema");
    exec_or_throw(c, pg::kLockSchema, "schema lock");
    exec_or_throw(c, pg::kCreateVersionTable, "schema");
    PgResult version = exec_or_throw(c, pg::kSelectVersion, "schema version");
    std::int64_t found = detail::pg_int(version.get(), 0, 0);
    if (found > pg::kSchemaVersion) {
      throw StoreError("postgres store: the schema was written by a newer trouped (version " +
                       std::to_string(found) + "; this one knows up to " +
                       std::to_string(pg::kSchemaVersion) + ")");
    }
    if (found < 1) run_schema_script(c, pg::kCreateSchema, "create the schema");
    if (found < 2) {
      run_schema_script(c, pg::kMigrateClusterView, "migrate the schema to version 2");
      run_schema_script(c, pg::kMigrateCoordination, "migrate the schema to version 2");
    }
    if (found < 3) run_schema_script(c, pg::kMigrateRateLimits, "migrate the schema to version 3");
    if (found < 4) {
      run_schema_script(c, pg::kMigrateIdempotency, "migrate the schema to version 4");
    }
    if (found < 5) run_schema_script(c, pg::kMigrateKeyOrder, "migrate the schema to version 5");
    exec_or_throw(c, "COMMIT", "schema");
    PgParams params;
    params.text(options_.replica).i64(micros(options_.lease));
    PgResult registered = exec_or_throw(c, pg::kRegister, "register", &params);
    incarnation_ = detail::pg_int(registered.get(), 0, 0);
  }

  /// Runs a script of several statements (the simple protocol) inside the
  /// schema transaction; throws StoreError saying it could not `what`.
  static void run_schema_script(PGconn* c, const char* script, const std::string& what) {
    PgResult done(PQexec(c, script));
    if (!done || !ok(done)) {
      throw StoreError("postgres store: cannot " + what + ": " +
                       (done ? PQresultErrorMessage(done.get()) : PQerrorMessage(c)));
    }
  }

  // ---- reachability and notifications ----

  void on_down(const std::string& why) {
    down_ = true;
    down_why_ = "postgres store: " + why;
    if (hooks_.availability) hooks_.availability(false, down_why_);
  }

  /// A lookup round of `statements` whose first answers one job's row:
  /// `done` gets it, nullopt when the store has no such job, or why the
  /// store did not answer.
  std::function<void(std::vector<PgResult>&, bool)> answer_one_job(
      std::size_t statements,
      std::function<void(core::StoreAnswer<std::optional<core::RecoveredJob>>)> done) {
    return [this, statements, done = std::move(done)](std::vector<PgResult>& results, bool lost) {
      if (lost || !round_ok(results, statements)) return done(unanswered(results, lost));
      if (PQntuples(results[0].get()) == 0) return done(std::optional<core::RecoveredJob>());
      done(std::optional<core::RecoveredJob>(decode_job(results[0].get(), 0, 0)));
    };
  }

  /// Why a lookup's round got no answer: the outage's reason when the
  /// connection is down, else the statement's error. On the journal's thread.
  core::StoreUnavailable unanswered(const std::vector<PgResult>& results, bool lost) const {
    if (!lost) return {"postgres store: " + round_error(results)};
    if (down_) return {down_why_};
    return {io_closed_ ? std::string("postgres store: closed")
                       : std::string("postgres store: the connection dropped before it answered")};
  }

  /// Every connection, the first included: its LISTENs go first, so the
  /// claims sent here find what was announced before they took effect
  /// (recover() may have come before the connection, when nothing could be
  /// claimed; without this a replica starting while jobs wait would leave
  /// them to the poll).
  void on_up() {
    coordination_round();
    claim_all();
    if (!down_) return;  // the first connection
    down_ = false;
    if (hooks_.availability) hooks_.availability(true, "");
    release_unknown_rows();
  }

  /// After a reconnect: the rows the store has this incarnation own that it
  /// does not know of (a claim whose answer was lost with the connection:
  /// nobody would run them while this replica lives) go back to the store.
  /// Answered after every round sent before it, so owned_ has what those
  /// gave; a row handed back or ended since is left alone by the release's
  /// conditions.
  void release_unknown_rows() {
    PgRound round;
    round.queries.push_back(PgQuery{pg::kOwnedLive, PgParams().i64(incarnation_)});
    const std::int64_t incarnation = incarnation_;
    round.done = [this, incarnation](std::vector<PgResult>& results, bool lost) {
      if (lost || !round_ok(results, 1) || incarnation != incarnation_) return;
      const PGresult* rows = results[0].get();
      detail::PgArray unknown(detail::PgArray::Of::kInt8);
      for (int row = 0; row < PQntuples(rows); ++row) {
        const std::int64_t id = detail::pg_int(rows, row, 0);
        if (!owned_.contains(from_sql(id).value)) unknown.i64(id);
      }
      if (unknown.size() == 0) return;
      PgRound release;
      release.queries.push_back(
          PgQuery{pg::kReleaseUnknown, PgParams().i64(incarnation_).array(unknown)});
      release.done = [](std::vector<PgResult>&, bool) {};  // else at the next reconnect
      connection_->submit(std::move(release));
    };
    connection_->submit(std::move(round));
  }

  void on_notify(std::string_view channel, std::string_view payload) {
    if (channel == "troupe_jobs") {
      claim(std::string(payload));
    } else if (channel == "troupe_leases") {
      coordination_round();  // a holder stopped: its leases are free now
    } else if (channel == "troupe_cancel") {
      auto colon = payload.find(':');
      if (colon == std::string_view::npos) return;
      std::int64_t owner = std::strtoll(std::string(payload.substr(0, colon)).c_str(), nullptr, 10);
      std::int64_t id = std::strtoll(std::string(payload.substr(colon + 1)).c_str(), nullptr, 10);
      if (owner == incarnation_) cancel_owned(from_sql(id));
    }
  }

  void cancel_owned(core::JobId id) {
    if (!owned_.contains(id.value) || !cancelled_.insert(id.value).second) return;
    if (hooks_.cancel) hooks_.cancel(id);
  }

  void lose(core::JobId id) {
    owned_.erase(id.value);
    cancelled_.erase(id.value);
    if (hooks_.lost) hooks_.lost(id);
  }

  // ---- group commit ----

  void maybe_commit() {
    std::vector<core::JournalEntry> batch;
    std::uint64_t covered;
    Clock::time_point arrival;
    {
      std::lock_guard lock(mutex_);
      kick_posted_ = false;
      if (commit_in_flight_ || registering_ || pending_.empty() || failure_ || io_closed_) return;
      batch.swap(pending_);
      covered = barriers_.appended_count();
      arrival = first_arrival_;
      commit_in_flight_ = true;
    }
    send_commit(std::move(batch), covered, arrival);
  }

  void send_commit(std::vector<core::JournalEntry> batch, std::uint64_t covered,
                   Clock::time_point arrival) {
    fold_.fold(batch);
    Rows inserts{I, T, I, I, B, T, T, B, I, I, I, I, I, B, I, I, I};
    std::set<std::string> handed_back;  // troupes of jobs accepted and requeued in this batch
    std::vector<Phase> phases;
    phase_of_.clear();
    std::size_t accepted = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      std::int32_t row = fold_.row_of(i);
      if (row == detail::EntryFold::kOnItsOwn) {
        std::visit([&](const auto& e) { write(e, phases); }, batch[i]);
      } else if (row >= 0 && fold_.rows()[row].accept == i) {
        insert(batch, fold_.rows()[row], inserts, handed_back);
      }
      if (std::holds_alternative<core::JournalAccepted>(batch[i])) ++accepted;
    }

    auto written = std::make_shared<std::vector<Written>>();
    PgRound round;
    round.resend = true;  // idempotent: ON CONFLICT DO NOTHING, fenced updates
    auto add = [&](const char* sql, PgParams params, Written what = {}) {
      round.queries.push_back(PgQuery{sql, std::move(params)});
      written->push_back(std::move(what));
    };
    // The round is the transaction: it commits at its sync, and the sync's
    // answer (which runs `done`) comes once COMMIT is durable.
    if (!inserts.empty()) add(pg::kInsert, inserts.params());
    for (const auto& troupe : handed_back) {
      add("SELECT pg_notify('troupe_jobs', $1)", PgParams().text(troupe));
    }
    for (const Phase& phase : phases) {
      if (!phase.started.empty()) {
        add(pg::kStarted, phase.started.params(incarnation_), {true, phase.started.ids});
      }
      if (!phase.retry_wait.empty()) {
        add(pg::kRetryWait, phase.retry_wait.params(incarnation_), {true, phase.retry_wait.ids});
      }
      // Handing back needs no lost(): the job is given up either way.
      if (!phase.requeued.empty()) add(pg::kRequeued, phase.requeued.params(incarnation_));
      if (!phase.terminal.empty()) {
        add(pg::kTerminal, phase.terminal.params(incarnation_), {true, phase.terminal.ids});
      }
    }
    if (!keys_ended_.empty()) {
      // The next rows of a key whose last job here ended may go elsewhere.
      detail::PgArray troupes(detail::PgArray::Of::kText);
      detail::PgArray keys(detail::PgArray::Of::kText);
      for (const auto& [troupe, key] : keys_ended_) {
        troupes.bytes(troupe);
        keys.bytes(key);
      }
      keys_ended_.clear();
      add(pg::kKeysFreed, PgParams().array(troupes).array(keys));
    }
    std::size_t entries = batch.size();
    round.done = [this, written, covered, arrival, entries, accepted](
                     std::vector<PgResult>& results, bool lost) {
      (void)lost;  // resend: never dropped while the journal runs
      committed(results, *written, covered, arrival, entries, accepted);
    };
    connection_->submit(std::move(round));
  }

  /// A job accepted in this batch, with its later entries in it folded in.
  void insert(const std::vector<core::JournalEntry>& batch, const detail::FoldedRow& row,
              Rows& rows, std::set<std::string>& handed_back) {
    const auto& e = std::get<core::JournalAccepted>(batch[row.accept]);
    bool requeued = false;
    for (std::int32_t j = fold_.next(row.accept); j >= 0; j = fold_.next(j)) {
      requeued = requeued || std::holds_alternative<core::JournalRequeued>(batch[j]);
    }
    bool released = requeued && row.state == JobState::kQueued;
    bool owned = !core::is_terminal(row.state) && !released;
    rows[0].i64(to_sql(e.id));
    rows[1].bytes(e.troupe);
    rows[2].i64(static_cast<std::int64_t>(row.state));
    if (owned) {
      rows[3].i64(incarnation_);
    } else {
      rows[3].null();
    }
    rows[4].bytes(e.payload);
    rows[5].bytes(e.key);
    rows[6].bytes(e.idempotency_key);
    rows[7].bytes(detail::encode_metadata(e.metadata));
    rows[8].i64(e.submitted_ns);
    rows[9].i64(e.deadline_ns);
    rows[10].i64(e.attempt_timeout_ns);
    rows[11].i64(row.attempts);
    rows[12].i64(static_cast<std::int64_t>(row.failure));
    rows[13].bytes(row.output);
    rows[14].i64(row.started_ns);
    rows[15].i64(row.finished_ns);
    rows[16].i64(row.next_run_ns);
    rows.ids.push_back(e.id);
    if (owned) owned_[e.id.value] = Owned{1, e.troupe, {}};
    if (released) handed_back.insert(e.troupe);
    if (row.state == JobState::kDead) dead_to_trim_.insert(e.troupe);
  }

  /// The phase of job `id`'s next update in this batch, with its id and
  /// epoch added to `rows_of(phase)`; nullptr (write nothing) for a job
  /// this incarnation does not own (lost, or never held).
  template <typename Select>
  Rows* fenced_row(core::JobId id, std::vector<Phase>& phases, Select rows_of,
                   const Owned** owned = nullptr) {
    auto it = owned_.find(id.value);
    if (it == owned_.end()) return nullptr;
    std::size_t n = phase_of_[id.value]++;
    if (n >= phases.size()) phases.emplace_back();
    Rows& rows = rows_of(phases[n]);
    rows[0].i64(to_sql(id));
    rows[1].i64(it->second.epoch);
    rows.ids.push_back(id);
    if (owned != nullptr) *owned = &it->second;
    return &rows;
  }

  void write(const core::JournalAccepted&, std::vector<Phase>&) {}  // a second accept

  void write(const core::JournalStarted& e, std::vector<Phase>& phases) {
    Rows* rows = fenced_row(e.id, phases, [](Phase& p) -> Rows& { return p.started; });
    if (rows == nullptr) return;
    (*rows)[2].i64(e.attempts);
    (*rows)[3].i64(e.started_ns);
  }

  void write(const core::JournalRetryWait& e, std::vector<Phase>& phases) {
    Rows* rows = fenced_row(e.id, phases, [](Phase& p) -> Rows& { return p.retry_wait; });
    if (rows == nullptr) return;
    (*rows)[2].i64(e.attempts);
    (*rows)[3].i64(e.next_run_ns);
    (*rows)[4].bytes(e.error);
    (*rows)[5].i64(static_cast<std::int64_t>(e.failure));
  }

  void write(const core::JournalRequeued& e, std::vector<Phase>& phases) {
    Rows* rows = fenced_row(e.id, phases, [](Phase& p) -> Rows& { return p.requeued; });
    if (rows == nullptr) return;
    (*rows)[2].i64(e.attempts);
    owned_.erase(e.id.value);  // handed back
    cancelled_.erase(e.id.value);
  }

  void write(const core::JournalTerminal& e, std::vector<Phase>& phases) {
    const Owned* owned = nullptr;
    Rows* rows = fenced_row(
        e.id, phases, [](Phase& p) -> Rows& { return p.terminal; }, &owned);
    if (rows == nullptr) return;
    if (e.state == JobState::kDead) dead_to_trim_.insert(owned->troupe);
    if (!owned->key.empty()) keys_ended_.emplace(owned->troupe, owned->key);
    (*rows)[2].i64(static_cast<std::int64_t>(e.state));
    (*rows)[3].i64(static_cast<std::int64_t>(e.failure));
    (*rows)[4].i64(e.attempts);
    (*rows)[5].bytes(e.output);
    (*rows)[6].i64(e.started_ns);
    (*rows)[7].i64(e.finished_ns);
    owned_.erase(e.id.value);  // never written again
    cancelled_.erase(e.id.value);
  }

  void committed(std::vector<PgResult>& results, const std::vector<Written>& written,
                 std::uint64_t covered, Clock::time_point arrival, std::size_t entries,
                 std::size_t accepted) {
    if (!round_ok(results, written.size())) {
      fail(core::JournalFailure{"postgres store: commit failed: " + round_error(results)});
      return;
    }
    // Fenced writes that found no row: another replica holds the job.
    std::unordered_set<std::uint64_t> lost;
    for (std::size_t i = 0; i < written.size(); ++i) {
      if (!written[i].fenced) continue;
      const PGresult* result = results[i].get();
      if (static_cast<std::size_t>(PQntuples(result)) == written[i].ids.size()) continue;
      std::unordered_set<std::uint64_t> matched;
      for (int row = 0; row < PQntuples(result); ++row) {
        matched.insert(from_sql(detail::pg_int(result, row, 0)).value);
      }
      for (core::JobId id : written[i].ids) {
        if (!matched.contains(id.value) && lost.insert(id.value).second) lose(id);
      }
    }
    if (options_.observer != nullptr) {
      options_.observer->committed(Clock::now() - arrival, entries, accepted);
    }
    {
      std::lock_guard lock(mutex_);
      barriers_.durable_up_to(covered);
      commit_in_flight_ = false;
    }
    durable_position_.store(covered, std::memory_order_release);
    run_barriers();
    maybe_commit();
    if (closing_) continue_close();
  }

  void run_barriers() {
    std::vector<Barrier> ready;
    {
      std::lock_guard lock(mutex_);
      if (!barriers_.take_ready(ready)) return;
    }
    for (auto& barrier : ready) barrier.done(nullptr);
    std::lock_guard lock(mutex_);
    barriers_.done_running();
  }

  /// For good: drops what is pending, tells the handler and every waiting
  /// barrier.
  void fail(core::JournalFailure failure) {
    std::deque<Barrier> waiting;
    std::function<void(const core::JournalFailure&)> handler;
    {
      std::lock_guard lock(mutex_);
      if (failure_) return;
      failure_ = failure;
      pending_.clear();
      commit_in_flight_ = false;
      waiting = barriers_.take_all();
      handler = on_failure_;
    }
    if (handler) handler(failure);
    for (auto& barrier : waiting) barrier.done(&failure);
    if (closing_) continue_close();
  }

  // ---- heartbeat: lease, reaping, cancels, retention ----

  void schedule_heartbeat() {
    heartbeat_timer_.expires_after(options_.heartbeat);
    heartbeat_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || io_closed_) return;
      fence_if_expired();
      heartbeat();
      coordination_round();
      // A backstop: a request lost with the connection is sent again here.
      for (const auto& [troupe, bucket] : buckets_) ask_tokens(troupe);
      schedule_heartbeat();
    });
  }

  void heartbeat() {
    if (heartbeat_in_flight_ || registering_ || !connection_->up()) return;
    heartbeat_in_flight_ = true;
    PgRound round;
    round.queries.push_back(
        PgQuery{pg::kRenew, PgParams().i64(incarnation_).i64(micros(options_.lease))});
    round.queries.push_back(PgQuery{pg::kReap, {}});
    if (++heartbeats_ % pg::kOrphanSweepEvery == 0) {
      round.queries.push_back(PgQuery{pg::kReapOrphans, {}});
    }
    const std::size_t cancels = round.queries.size();
    round.queries.push_back(PgQuery{pg::kCancelsAsked, PgParams().i64(incarnation_)});
    bool idle;
    {
      std::lock_guard lock(mutex_);
      idle = pending_.empty() && !commit_in_flight_;
    }
    std::vector<std::string> trimmed;
    bool expiring = idle;
    if (expiring) {
      round.queries.push_back(expire_batch());
      for (const auto& troupe : dead_to_trim_) {
        round.queries.push_back(PgQuery{
            pg::kTrimDead, PgParams().text(troupe).i64(
                               static_cast<std::int64_t>(options_.dead_letters_per_troupe))});
        trimmed.push_back(troupe);
      }
      dead_to_trim_.clear();
    }
    bool sizing = options_.observer != nullptr;
    if (sizing) round.queries.push_back(PgQuery{pg::kStoreBytes, {}});
    std::size_t expected = round.queries.size();
    std::int64_t incarnation = incarnation_;
    round.done = [this, expected, cancels, expiring, sizing, incarnation,
                  trimmed = std::move(trimmed)](std::vector<PgResult>& results, bool lost) {
      heartbeat_in_flight_ = false;
      if (lost || !round_ok(results, expected)) {
        for (const auto& troupe : trimmed) dead_to_trim_.insert(troupe);  // next time
        return;
      }
      if (incarnation != incarnation_) return;
      if (detail::pg_affected(results[0].get()) == 0) {
        declared_dead();
        return;
      }
      const PGresult* asked = results[cancels].get();
      for (int row = 0; row < PQntuples(asked); ++row) {
        cancel_owned(from_sql(detail::pg_int(asked, row, 0)));
      }
      if (expiring) expired(detail::pg_affected(results[cancels + 1].get()));
      if (sizing) {
        options_.observer->store_bytes(
            static_cast<std::uint64_t>(detail::pg_int(results.back().get(), 0, 0)));
      }
    };
    connection_->submit(std::move(round));
  }

  /// One batch of retention (pg::kExpire), as of now.
  PgQuery expire_batch() const {
    const std::int64_t now = wall_now_ns();
    return PgQuery{pg::kExpire,
                   PgParams().i64(now - result_ttl_ns_).i64(now - idempotency_ttl_ns_)};
  }

  /// `deleted` expired rows went in one batch (pg::kExpire). A full batch
  /// means more are due: the next goes at once while nothing waits to be
  /// committed (a backlog of expired rows is not left to grow by a batch
  /// per heartbeat), else at the next heartbeat.
  void expired(std::int64_t deleted) {
    if (deleted > 0 && options_.observer != nullptr) {
      options_.observer->expired(static_cast<std::uint64_t>(deleted));
    }
    if (deleted < pg::kExpireBatch || closing_ || io_closed_ || !connection_->up()) return;
    {
      std::lock_guard lock(mutex_);
      if (!pending_.empty() || commit_in_flight_) return;
    }
    PgRound round;
    round.queries.push_back(expire_batch());
    round.done = [this](std::vector<PgResult>& results, bool lost) {
      if (lost || !round_ok(results, 1)) return;  // the next heartbeat goes on
      expired(detail::pg_affected(results[0].get()));
    };
    connection_->submit(std::move(round));
  }

  /// This incarnation's row is gone: another replica found its lease
  /// expired and handed its jobs to others. Every job it held is lost; it
  /// registers anew (commits wait meanwhile).
  void declared_dead() {
    step_down_all();  // its leases and permits are free for others now
    std::vector<std::uint64_t> ids;
    for (const auto& [id, owned] : owned_) ids.push_back(id);
    for (std::uint64_t id : ids) lose(core::JobId{id});
    {
      std::lock_guard lock(mutex_);
      registering_ = true;
    }
    PgRound round;
    round.resend = true;
    round.queries.push_back(
        PgQuery{pg::kRegister, PgParams().text(options_.replica).i64(micros(options_.lease))});
    round.done = [this](std::vector<PgResult>& results, bool lost) {
      if (lost) return;
      if (!round_ok(results, 1)) {
        fail(core::JournalFailure{"postgres store: cannot register this replica again: " +
                                  round_error(results)});
        return;
      }
      incarnation_ = detail::pg_int(results[0].get(), 0, 0);
      {
        std::lock_guard lock(mutex_);
        registering_ = false;
      }
      maybe_commit();
      claim_all();
    };
    connection_->submit(std::move(round));
  }

  // ---- claims ----

  void schedule_poll() {
    poll_timer_.expires_after(options_.poll);
    poll_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || io_closed_) return;
      claim_all();
    });
  }

  /// Every troupe with claimable rows (the poll backstop).
  void claim_all() {
    if (!claims_on_ || closing_ || io_closed_) return;
    schedule_poll();
    if (!connection_->up() || discovering_) return;
    discovering_ = true;
    PgRound round;
    round.queries.push_back(PgQuery{pg::kClaimableTroupes, {}});
    round.done = [this](std::vector<PgResult>& results, bool lost) {
      discovering_ = false;
      if (lost || !round_ok(results, 1)) return;
      for (int row = 0; row < PQntuples(results[0].get()); ++row) {
        claim(detail::pg_bytes(results[0].get(), row, 0));
      }
    };
    connection_->submit(std::move(round));
  }

  /// Claims up to min(claim_batch, room) jobs of `troupe`; again while
  /// a full batch came back or a notification arrived meanwhile.
  void claim(const std::string& troupe) {
    if (!claims_on_ || closing_ || io_closed_ || registering_ || !connection_->up()) return;
    auto [it, fresh] = claiming_.try_emplace(troupe, false);
    if (!fresh) {
      it->second = true;  // once the claim in flight is back
      return;
    }
    std::size_t room = hooks_.room ? hooks_.room(troupe) : 0;
    std::size_t limit = std::min(options_.claim_batch, room);
    if (limit == 0) {
      claiming_.erase(troupe);
      return;
    }
    PgRound round;
    const bool in_key_order = key_ordered_.contains(troupe);
    if (in_key_order) round.queries.push_back(PgQuery{pg::kLockKeyClaims, PgParams().text(troupe)});
    round.queries.push_back(
        PgQuery{in_key_order ? pg::kClaimInKeyOrder : pg::kClaim,
                PgParams().i64(incarnation_).text(troupe).i64(static_cast<std::int64_t>(limit))});
    std::int64_t incarnation = incarnation_;
    const std::size_t statements = round.queries.size();
    round.done = [this, troupe, limit, incarnation, in_key_order, statements](
                     std::vector<PgResult>& results, bool lost) {
      bool again = claiming_[troupe];
      claiming_.erase(troupe);
      if (lost || !round_ok(results, statements)) return;
      const PGresult* rows = results[statements - 1].get();
      struct Claimed {
        std::int64_t seq;
        std::int64_t epoch;
        bool cancel;
        core::RecoveredJob job;
      };
      std::vector<Claimed> claimed;
      for (int row = 0; row < PQntuples(rows); ++row) {
        claimed.push_back(Claimed{detail::pg_int(rows, row, 0), detail::pg_int(rows, row, 1),
                                  detail::pg_int(rows, row, 2) != 0, decode_job(rows, row, 3)});
      }
      std::sort(claimed.begin(), claimed.end(),
                [](const Claimed& a, const Claimed& b) { return a.seq < b.seq; });
      for (auto& c : claimed) {
        core::JobId id = c.job.request.id;
        if (incarnation != incarnation_) break;  // declared dead meanwhile: the rows went back
        owned_[id.value] = Owned{c.epoch, troupe, in_key_order ? c.job.request.key : std::string()};
        if (hooks_.claimed) hooks_.claimed(std::move(c.job));
        if (c.cancel) cancel_owned(id);
      }
      if (again || claimed.size() == limit) claim(troupe);
    };
    connection_->submit(std::move(round));
  }

  // ---- coordination: singleton leases and max_concurrency permits ----
  // (docs/cluster.md; statements in pg_schema.h, schema version 2). One
  // round in flight at a time, each a transaction: renew the leases held,
  // try to take those not held, and adjust each capped troupe's permits to
  // its demand. Sent at recover(), every heartbeat, on coordinate() and
  // when a holder releases its leases (NOTIFY troupe_leases).

  std::uint32_t set_permits(const std::string& troupe, std::uint32_t permits) {
    return hooks_.permits ? hooks_.permits(troupe, permits) : 0;
  }

  void coordination_round() {
    if (coordinated_.empty() || !claims_on_ || closing_ || io_closed_ || registering_ ||
        coordinating_ || !connection_->up()) {
      return;
    }
    struct Plan {
      std::vector<std::string> acquiring;  // singleton troupes not led here
      std::vector<std::string> capped;     // max_concurrency troupes, 4 statements each
    };
    auto plan = std::make_shared<Plan>();
    const std::int64_t lease = micros(options_.lease);
    PgRound round;
    round.queries.push_back(PgQuery{pg::kRenewLeases, PgParams().i64(incarnation_).i64(lease)});
    for (const auto& t : coordinated_) {
      if (!t.singleton || leading_.contains(t.name)) continue;
      round.queries.push_back(
          PgQuery{pg::kAcquireLease, PgParams().text(t.name).i64(incarnation_).i64(lease)});
      plan->acquiring.push_back(t.name);
    }
    for (const auto& t : coordinated_) {
      if (t.max_concurrency == 0) continue;
      const std::size_t demand = hooks_.demand ? hooks_.demand(t.name) : 0;
      auto want = static_cast<std::uint32_t>(std::min<std::size_t>(demand, t.max_concurrency));
      std::uint32_t& held = permits_held_[t.name];
      if (want < held) {
        // Lowered here before the store frees them (another replica may
        // take them at once); a running attempt keeps its permit.
        const std::uint32_t running = set_permits(t.name, want);
        if (running > want) {
          want = std::min(running, t.max_concurrency);
          set_permits(t.name, want);
        }
        held = want;
      }
      for (const char* sql :
           {pg::kPermitSlots, pg::kReleasePermits, pg::kTakePermits, pg::kHeldPermits}) {
        round.queries.push_back(PgQuery{
            sql, PgParams().text(t.name).i64(t.max_concurrency).i64(incarnation_).i64(want)});
      }
      plan->capped.push_back(t.name);
    }
    const std::size_t expected = round.queries.size();
    const Clock::time_point sent = Clock::now();
    const std::int64_t incarnation = incarnation_;
    coordinating_ = true;
    round.done = [this, plan, expected, sent, incarnation](std::vector<PgResult>& results,
                                                           bool lost) {
      coordinating_ = false;
      if (lost || !round_ok(results, expected) || incarnation != incarnation_ || closing_) return;
      // The store's leases run from its commit, after `sent`: held here
      // until sent + lease at the latest (fence_if_expired).
      coordination_valid_until_ = sent + options_.lease;
      std::set<std::string> renewed;
      for (int row = 0; row < PQntuples(results[0].get()); ++row) {
        renewed.insert(detail::pg_bytes(results[0].get(), row, 0));
      }
      std::vector<std::string> gone;
      for (const auto& [troupe, term] : leading_) {
        if (!renewed.contains(troupe)) gone.push_back(troupe);
      }
      for (const auto& troupe : gone) {
        leading_.erase(troupe);  // taken over meanwhile
        if (hooks_.leadership) hooks_.leadership(troupe, 0);
      }
      std::size_t i = 1;
      for (const auto& troupe : plan->acquiring) {
        const PGresult* taken = results[i++].get();
        if (PQntuples(taken) == 0) continue;
        const std::int64_t term = detail::pg_int(taken, 0, 0);
        leading_[troupe] = term;
        if (hooks_.leadership) hooks_.leadership(troupe, term);
        claim(troupe);  // what the previous holder left, and what others accepted
      }
      for (const auto& troupe : plan->capped) {
        const auto held = static_cast<std::uint32_t>(detail::pg_int(results[i + 3].get(), 0, 0));
        i += 4;
        permits_held_[troupe] = held;
        set_permits(troupe, held);
      }
    };
    connection_->submit(std::move(round));
  }

  // ---- cluster rate limits: a token bucket per troupe in the store ----
  // (docs/cluster.md; pg::kTakeTokens, schema version 3). A troupe with
  // queued work and no token asks (Journal::want_tokens); the bucket grants
  // up to a block (a tenth of a second's tokens) in one statement, refilled
  // on the database's clock, so the database sees about ten requests a
  // second per troupe whatever the job rate. One request in flight per
  // troupe; after a short grant the next waits until the bucket should
  // hold a block again.

  /// A rate-limited troupe's requests here.
  struct Bucket {
    double per_second = 0;
    std::uint32_t burst = 1;
    bool asking = false;   // a request in flight
    bool again = false;    // asked again meanwhile
    bool waiting = false;  // `refill` armed: the bucket was short
    std::unique_ptr<boost::asio::steady_timer> refill;
    std::uint32_t block() const {
      return std::min(core::ClusterOptions::rate_block(per_second),
                      std::max<std::uint32_t>(burst, 1));
    }
  };

  void configure_buckets() {
    std::set<std::string> limited;
    for (const auto& t : coordinated_) {
      if (t.rate_per_second <= 0) continue;
      limited.insert(t.name);
      Bucket& b = buckets_[t.name];
      b.per_second = t.rate_per_second;
      b.burst = std::max<std::uint32_t>(t.rate_burst, 1);
      if (!b.refill) b.refill = std::make_unique<boost::asio::steady_timer>(io_);
    }
    std::erase_if(buckets_, [&](const auto& entry) { return !limited.contains(entry.first); });
    for (const auto& troupe : limited) ask_tokens(troupe);
  }

  void ask_tokens(const std::string& troupe) {
    auto it = buckets_.find(troupe);
    if (it == buckets_.end()) return;
    Bucket& b = it->second;
    if (b.asking) {
      b.again = true;
      return;
    }
    if (b.waiting || !claims_on_ || closing_ || io_closed_ || registering_ || !connection_->up()) {
      return;  // the refill timer, or the next heartbeat, asks again
    }
    const std::size_t demand = hooks_.token_demand ? hooks_.token_demand(troupe) : 0;
    if (demand == 0) return;
    const auto want = static_cast<std::int64_t>(std::min<std::size_t>(demand, b.block()));
    b.asking = true;
    PgRound round;
    round.queries.push_back(PgQuery{
        pg::kTakeTokens, PgParams()
                             .text(troupe)
                             .i64(static_cast<std::int64_t>(std::llround(b.per_second * 1e6)))
                             .i64(b.burst)
                             .i64(want)});
    round.done = [this, troupe, want](std::vector<PgResult>& results, bool lost) {
      auto found = buckets_.find(troupe);
      if (found == buckets_.end()) return;  // no longer limited
      Bucket& bucket = found->second;
      bucket.asking = false;
      const bool again = std::exchange(bucket.again, false);
      if (lost || !round_ok(results, 1) || closing_) return;  // the heartbeat asks again
      const PGresult* r = results[0].get();
      const std::int64_t granted = std::clamp<std::int64_t>(detail::pg_int(r, 0, 0), 0, want);
      const double left = static_cast<double>(detail::pg_int(r, 0, 1)) / 1e6;
      // Even none: the troupe's parked actors look again, and ask again.
      if (hooks_.tokens) hooks_.tokens(troupe, static_cast<std::uint32_t>(granted));
      if (granted < want) {
        // Short: others took the rest. Asking before the bucket holds a
        // block again would only load the database.
        const double seconds =
            std::max(static_cast<double>(bucket.block()) - left, 1.0) / bucket.per_second;
        const auto wait = std::clamp<core::Duration>(
            std::chrono::duration_cast<core::Duration>(std::chrono::duration<double>(seconds)), 1ms,
            options_.heartbeat);
        bucket.waiting = true;
        bucket.refill->expires_after(wait);
        bucket.refill->async_wait([this, troupe](const boost::system::error_code& ec) {
          if (ec || io_closed_) return;
          auto again_at = buckets_.find(troupe);
          if (again_at == buckets_.end()) return;
          again_at->second.waiting = false;
          ask_tokens(troupe);
        });
      } else if (again) {
        ask_tokens(troupe);
      }
    };
    connection_->submit(std::move(round));
  }

  /// Nothing renewed for almost a lease (the store unreachable, or too
  /// slow): the leases and permits held here may be another's soon, so
  /// they are given up now, at least a heartbeat before the store's lease
  /// ends (ticks drift: two heartbeats of margin).
  void fence_if_expired() {
    if (leading_.empty() && permits_held_.empty()) return;
    if (Clock::now() + 2 * options_.heartbeat < coordination_valid_until_) return;
    step_down_all();
  }

  void step_down_all() {
    auto leading = std::move(leading_);
    leading_.clear();
    for (const auto& [troupe, term] : leading) {
      if (hooks_.leadership) hooks_.leadership(troupe, 0);
    }
    for (auto& [troupe, held] : permits_held_) {
      if (held == 0) continue;
      held = 0;
      set_permits(troupe, 0);
    }
  }

  // ---- close ----

  void begin_close(std::shared_ptr<std::promise<void>> done) {
    if (done && io_closed_) {
      done->set_value();  // a close() from this thread finished it already
      return;
    }
    if (done) close_done_ = std::move(done);
    if (closing_) return;
    closing_ = true;
    claims_on_ = false;
    maybe_commit();
    continue_close();
  }

  /// Once nothing is pending: releases this incarnation's live jobs and
  /// removes its row, then says close() may go on.
  void continue_close() {
    {
      std::lock_guard lock(mutex_);
      if (commit_in_flight_ || (!pending_.empty() && !failure_)) return;
    }
    if (released_) return;
    released_ = true;
    PgRound round;
    round.resend = true;
    round.queries.push_back(PgQuery{pg::kRelease, PgParams().i64(incarnation_)});
    round.queries.push_back(PgQuery{pg::kReleaseLeases, PgParams().i64(incarnation_)});
    round.queries.push_back(PgQuery{pg::kReleaseAllPermits, PgParams().i64(incarnation_)});
    round.queries.push_back(PgQuery{pg::kUnregister, PgParams().i64(incarnation_)});
    round.done = [this](std::vector<PgResult>&, bool) {
      owned_.clear();
      io_closed_ = true;
      if (close_done_) close_done_->set_value();
      close_done_.reset();
    };
    connection_->submit(std::move(round));
  }

  /// close() waited long enough: what waits gets a failure.
  void give_up(const std::string& why) {
    io_closed_ = true;
    std::deque<Barrier> waiting;
    {
      std::lock_guard lock(mutex_);
      pending_.clear();
      waiting = barriers_.take_all();
    }
    core::JournalFailure failure{"postgres store: " + why};
    for (auto& barrier : waiting) barrier.done(&failure);
    close_done_.reset();
  }

  PgJournalOptions options_;
  const std::int64_t result_ttl_ns_;
  const std::int64_t idempotency_ttl_ns_;

  boost::asio::io_context io_;
  // Journal-thread state (set up before the thread starts).
  std::unique_ptr<detail::PgConnection> connection_;
  boost::asio::steady_timer heartbeat_timer_;
  boost::asio::steady_timer poll_timer_;
  core::ClusterHooks hooks_;
  std::int64_t incarnation_ = 0;
  std::unordered_map<std::uint64_t, Owned> owned_;  // job id -> its term here
  std::unordered_set<std::uint64_t> cancelled_;     // owned jobs whose cancel hook ran
  std::unordered_map<std::string, bool> claiming_;  // troupe -> notified while its claim ran
  std::set<std::string> dead_to_trim_;              // troupes with new DEAD rows
  std::set<std::pair<std::string, std::string>> keys_ended_;  // (troupe, key) of terminal
                                                              // writes in this commit
  std::set<std::string> key_ordered_;  // troupes claimed one key at a time (dispatch: key)
  detail::EntryFold fold_;
  std::unordered_map<std::uint64_t, std::size_t> phase_of_;  // job id -> updates in the batch
  bool down_ = false;
  std::string down_why_;    // while down_: the outage's reason, as availability() was told
  bool claims_on_ = false;  // from recover()
  bool discovering_ = false;
  bool heartbeat_in_flight_ = false;
  std::uint64_t heartbeats_ = 0;
  bool closing_ = false;
  bool released_ = false;
  bool io_closed_ = false;  // the thread takes no more work
  std::shared_ptr<std::promise<void>> close_done_;
  // Coordination.
  std::vector<core::CoordinatedTroupe> coordinated_;
  std::unordered_map<std::string, std::int64_t> leading_;        // troupe -> fencing term
  std::unordered_map<std::string, std::uint32_t> permits_held_;  // troupe -> permits
  bool coordinating_ = false;
  Clock::time_point coordination_valid_until_{};
  std::map<std::string, Bucket> buckets_;  // troupes with a cluster rate limit

  mutable std::mutex mutex_;  // guards the members below
  std::vector<core::JournalEntry> pending_;
  std::unordered_set<std::uint64_t> keyed_;  // accept_keyed() rows whose accept is to come
  Clock::time_point first_arrival_{};
  detail::BarrierQueue barriers_;                   // entries appended, committed, and the barriers
  std::atomic<std::uint64_t> durable_position_{0};  // barriers_' durable count, for readers
  bool kick_posted_ = false;
  bool commit_in_flight_ = false;
  bool registering_ = false;
  bool stopping_ = false;
  std::optional<core::JournalFailure> failure_;
  std::function<void(const core::JournalFailure&)> on_failure_;

  std::mutex close_mutex_;
  bool closed_ = false;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<core::Journal> open_pg_journal(const PgJournalOptions& options) {
  return std::make_unique<PgJournal>(options);
}

std::string probe_postgres(const std::string& dsn, core::Duration timeout) {
  std::string error;
  auto conn = detail::pg_connect_blocking(dsn, whole_seconds(timeout), error);
  if (!conn) return "cannot connect to PostgreSQL: " + error;
  return {};
}

}  // namespace troupe::store
