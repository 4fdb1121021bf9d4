#include "store/sqlite_journal.h"

#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/barrier_queue.h"
#include "store/entry_fold.h"
#include "store/lock_file.h"
#include "store/metadata_codec.h"
#include "store/row_counts.h"
#include "store/sql_values.h"
#include "store/sqlite_statement.h"

namespace troupe::store {

namespace {

using namespace std::chrono_literals;
using core::JobState;
using detail::clamp_ttl_ns;
using detail::from_sql;
using detail::SqliteError;
using detail::Statement;
using detail::to_sql;
using detail::wall_now_ns;

/// PRAGMA user_version of the schema below. A newer file is refused; a
/// version 1 file (a UNIQUE index on id) is migrated at open.
constexpr int kSchemaVersion = 2;

// The schema stores JobState and FailureClass as their numbers: these are
// part of the file format (a change needs a new schema version).
static_assert(static_cast<int>(JobState::kQueued) == 0);
static_assert(static_cast<int>(JobState::kRunning) == 1);
static_assert(static_cast<int>(JobState::kRetryWait) == 2);
static_assert(static_cast<int>(JobState::kSucceeded) == 3);
static_assert(static_cast<int>(JobState::kDead) == 5);
static_assert(static_cast<int>(JobState::kAborted) == 7);
constexpr int kStates = detail::RowCounts::kStates;

// rowid (seq) is the acceptance order: recovery replays queued jobs in it.
// No index on id (random 64 bits: each accept would dirty a random page of
// it): the writer updates rows by seq, from its map of the rows that can
// still change (SqliteJournal::live_rows_). A row expires at expires_ns;
// NULL while it is not terminal, and for DEAD rows, which are trimmed per
// troupe by count instead (jobs_dead).
constexpr const char* kJobsColumns = R"sql((
  seq INTEGER PRIMARY KEY,
  id INTEGER NOT NULL,
  troupe TEXT NOT NULL,
  state INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  payload BLOB NOT NULL,
  key TEXT NOT NULL DEFAULT '',
  idempotency_key TEXT NOT NULL DEFAULT '',
  metadata BLOB NOT NULL DEFAULT x'',
  submitted_ns INTEGER NOT NULL DEFAULT 0,
  started_ns INTEGER NOT NULL DEFAULT 0,
  finished_ns INTEGER NOT NULL DEFAULT 0,
  next_run_ns INTEGER NOT NULL DEFAULT 0,
  deadline_ns INTEGER NOT NULL DEFAULT 0,
  timeout_ns INTEGER NOT NULL DEFAULT 0,
  failure INTEGER NOT NULL DEFAULT 0,
  output BLOB NOT NULL DEFAULT x'',
  expires_ns INTEGER
))sql";
constexpr const char* kIndexes = R"sql(
CREATE INDEX IF NOT EXISTS jobs_expiry ON jobs(expires_ns) WHERE expires_ns IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_dead ON jobs(troupe, finished_ns) WHERE state = 5;
)sql";

/// A new store's schema.
std::string schema() {
  return std::string("CREATE TABLE IF NOT EXISTS jobs ") + kJobsColumns + ";" + kIndexes;
}

/// Version 1 to 2: drops the UNIQUE index on id. An index that a column's
/// UNIQUE made cannot be dropped on its own (DROP INDEX refuses it), so the
/// table is copied into one without it, with the same columns and rowids.
std::string migration_from_1() {
  return std::string("CREATE TABLE jobs_v2 ") + kJobsColumns +
         ";"
         "INSERT INTO jobs_v2 SELECT * FROM jobs;"
         "DROP TABLE jobs;"
         "ALTER TABLE jobs_v2 RENAME TO jobs;" +
         kIndexes;
}

constexpr const char* kColumns =
    "id, troupe, state, attempts, payload, key, idempotency_key, metadata, submitted_ns, "
    "deadline_ns, timeout_ns, failure, output, started_ns, finished_ns, next_run_ns";
/// The column after kColumns in the recovery of non-terminal rows: seq.
constexpr int kLiveSeqColumn = 16;

/// Expired rows deleted per transaction: bounds the time one commit spends
/// on expiry when many rows come due at once.
constexpr std::int64_t kExpiryBatch = 1000;
/// WAL pages after a commit that wake the checkpointer thread for a
/// PASSIVE checkpoint (SQLite's autocheckpoint default; the writer's
/// connection does not checkpoint on commit). The checkpointer copies
/// pages while the writer commits; the WAL starts over from its beginning
/// at the first commit after a checkpoint that caught up.
constexpr int kCheckpointPages = 1000;
/// WAL pages after a commit at which the writer resets the WAL itself (a
/// RESTART checkpoint, between commits) because the checkpointer has not
/// caught up: bounds the WAL under a load that never pauses.
constexpr int kWalCapPages = 2500;
/// How long the writer's connection waits for a lock another connection
/// holds (a reader such as the sqlite3 shell) before failing.
constexpr int kBusyTimeoutMs = 5000;
/// The size the WAL file is truncated back to when it starts over.
constexpr std::int64_t kWalSizeLimit = 64 << 20;
/// Idle this long after a commit: checkpoint and truncate the WAL.
constexpr auto kIdleCheckpoint = 1s;
/// Rows by state and bytes on disk go to the observer at most this often
/// (after a change).
constexpr auto kSampleEvery = 1s;
std::string corrupt_message(const std::string& path, const SqliteError& error) {
  return "the store " + path + " is corrupt (" + error.sqlite_message() +
         "): move it aside (with its -wal and -shm files) to start empty, or restore a backup";
}

bool is_corrupt(const SqliteError& error) {
  return error.primary() == SQLITE_CORRUPT || error.primary() == SQLITE_NOTADB;
}

/// Creates the missing directories above `path`, 0700.
void create_parent_directories(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(path).parent_path();
  std::vector<fs::path> missing;
  std::error_code ec;
  for (fs::path p = dir; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    missing.push_back(p);
    if (p == p.parent_path()) break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), 0700) != 0 && errno != EEXIST) {
      throw StoreError("cannot create the directory " + it->string() + " for the store " + path +
                       ": " + std::strerror(errno));
    }
  }
  if (!dir.empty() && !fs::is_directory(dir, ec)) {
    throw StoreError("cannot create the store " + path + ": " + dir.string() +
                     " exists and is not a directory");
  }
}

struct CloseDatabase {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};

/// SqliteJournal's prepared statements, prepared once at open.
struct Statements {
  explicit Statements(sqlite3* db)
      : begin(db, "BEGIN IMMEDIATE"),
        commit(db, "COMMIT"),
        // The row as the batch leaves it: a job's later entries in the same
        // batch are folded into its accept (detail::EntryFold).
        insert(
            db,
            "INSERT INTO jobs(id, troupe, state, attempts, payload, key, idempotency_key, "
            "metadata, submitted_ns, deadline_ns, timeout_ns, failure, output, started_ns, "
            "finished_ns, next_run_ns, expires_ns) "
            "VALUES(?1, ?2, ?10, ?11, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?12, ?13, ?14, ?15, ?16, ?17)"),
        started(db, "UPDATE jobs SET state = 1, attempts = ?2, started_ns = ?3 WHERE seq = ?1"),
        retry_wait(db,
                   "UPDATE jobs SET state = 2, attempts = ?2, next_run_ns = ?3, output = ?4, "
                   "failure = ?5 WHERE seq = ?1"),
        requeued(db, "UPDATE jobs SET state = 0, attempts = ?2, next_run_ns = 0 WHERE seq = ?1"),
        terminal(db,
                 "UPDATE jobs SET state = ?2, failure = ?3, attempts = ?4, output = ?5, "
                 "started_ns = CASE WHEN ?6 <> 0 THEN ?6 ELSE started_ns END, finished_ns = ?7, "
                 "next_run_ns = 0, expires_ns = CASE WHEN length(idempotency_key) > 0 "
                 "THEN max(?7 + ?8, submitted_ns + ?9) ELSE ?7 + ?8 END WHERE seq = ?1"),
        // DEAD rows do not expire; the troupe comes back to trim its dead letters.
        terminal_dead(db,
                      "UPDATE jobs SET state = 5, failure = ?3, attempts = ?4, output = ?5, "
                      "started_ns = CASE WHEN ?6 <> 0 THEN ?6 ELSE started_ns END, "
                      "finished_ns = ?7, next_run_ns = 0, expires_ns = NULL "
                      "WHERE seq = ?1 RETURNING troupe"),
        expire(db,
               "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs WHERE expires_ns IS NOT NULL "
               "AND expires_ns <= ?1 ORDER BY expires_ns LIMIT ?2) RETURNING state"),
        next_expiry(db, "SELECT min(expires_ns) FROM jobs WHERE expires_ns IS NOT NULL"),
        trim_dead(db,
                  "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs WHERE state = 5 AND "
                  "troupe = ?1 ORDER BY finished_ns DESC LIMIT -1 OFFSET ?2)"),
        dead_troupes(db, "SELECT DISTINCT troupe FROM jobs WHERE state = 5"),
        all_rows(db, "SELECT id, state, seq FROM jobs"),
        live_rows(db, "SELECT id, seq FROM jobs WHERE state < 3"),
        // seq last: the live rows' map is filled from it (kLiveSeqColumn).
        recover_open(
            db, std::string("SELECT ") + kColumns + ", seq FROM jobs WHERE state < 3 ORDER BY seq"),
        recover_terminal(db, std::string("SELECT ") + kColumns +
                                 " FROM jobs WHERE state >= 3 AND (expires_ns IS NULL OR "
                                 "expires_ns > ?1) ORDER BY seq") {}

  Statement begin, commit;
  Statement insert, started, retry_wait, requeued, terminal, terminal_dead;
  Statement expire, next_expiry, trim_dead, dead_troupes, all_rows, live_rows;
  Statement recover_open, recover_terminal;
};

/// core::Journal on SQLite. Executor: one writer thread, started at open,
/// owns every write to the database: it swaps out the entries appended
/// while its previous commit ran and commits them in one transaction
/// (group commit), then runs the barriers that commit covers, then (when
/// idle) expiry, the WAL's truncation and sampling. A checkpointer thread
/// with its own connection copies the WAL into the database as it grows.
/// Thread-safe as core::Journal promises: append() and after_durable() take
/// one mutex briefly and never touch the disk. recover() runs on the
/// caller's thread, serialized with the writer by the connection's mutex.
/// Owns the connections and the lock file until destroyed.
class SqliteJournal final : public core::Journal {
 public:
  explicit SqliteJournal(const SqliteJournalOptions& options)
      : options_(options),
        path_(options.path),
        result_ttl_ns_(clamp_ttl_ns(options.result_ttl)),
        idempotency_ttl_ns_(clamp_ttl_ns(options.idempotency_ttl)) {
    if (path_.empty()) throw StoreError("the store's path is empty");
    create_parent_directories(path_);
    lock_ = std::make_unique<detail::LockFile>(path_ + "-lock", path_);
    open_database();
    open_checkpointer();
    writer_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "troupe-journal");
      writer_loop();
    });
    checkpointer_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "troupe-checkpt");
      checkpointer_loop();
    });
  }

  ~SqliteJournal() override { close(); }

  bool durable() const override { return true; }

  void recover(const std::function<void(core::RecoveredJob&&)>& each) override {
    std::lock_guard db_lock(db_mutex_);
    if (!statements_) return;  // closed
    try {
      // The rows that can still change come with the read-back, unless
      // the scan at open had them.
      const bool fill_live_rows = !live_rows_loaded_;
      if (fill_live_rows) live_rows_.clear();
      read_back(statements_->recover_open, each, fill_live_rows);
      live_rows_loaded_ = true;
      statements_->recover_terminal.bind(1, wall_now_ns());
      read_back(statements_->recover_terminal, each, false);
    } catch (const SqliteError& error) {
      if (is_corrupt(error)) throw StoreError(corrupt_message(path_, error));
      throw StoreError("cannot read back the store " + path_ + ": " + detail::describe(error));
    }
  }

  std::uint64_t append(core::JournalEntry entry) override {
    bool wake = false;
    {
      std::lock_guard lock(mutex_);
      if (failure_ || stopping_) return 0;
      if (pending_.empty()) {
        first_arrival_ = std::chrono::steady_clock::now();
        wake = true;  // the writer waits only while nothing is pending
      }
      pending_.push_back(std::move(entry));
      barriers_.appended();
    }
    if (wake) wake_.notify_one();
    return 0;  // not shared: nobody asks durable_position()
  }

  void after_durable(core::DurableCallback done) override {
    std::unique_lock lock(mutex_);
    if (barriers_.after_durable(std::move(done), lock, failure_)) wake_.notify_one();
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
    if (std::this_thread::get_id() == writer_.get_id()) {
      // From a barrier or the failure handler: the writer cannot join
      // itself. It stops after the callback; the destructor (or a close()
      // from another thread) joins it and closes the file.
      std::lock_guard lock(mutex_);
      stopping_ = true;
      return;
    }
    std::lock_guard close_lock(close_mutex_);
    {
      std::lock_guard lock(mutex_);
      if (stopping_ && !writer_.joinable()) return;
      stopping_ = true;
    }
    wake_.notify_one();
    checkpoint_wake_.notify_all();
    if (writer_.joinable()) writer_.join();
    if (checkpointer_.joinable()) checkpointer_.join();
    checkpoint_db_.reset();
    std::lock_guard db_lock(db_mutex_);
    if (!failure() && db_) {
      // Leaves a small file behind: the WAL folded into the database.
      sqlite3_wal_checkpoint_v2(db_.get(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
    }
    statements_.reset();
    db_.reset();
    lock_.reset();
  }

 private:
  using Barrier = detail::BarrierQueue::Barrier;
  using Clock = std::chrono::steady_clock;

  void open_database() {
    sqlite3* raw = nullptr;
    int rc =
        sqlite3_open_v2(path_.c_str(), &raw,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    db_.reset(raw);
    if (rc != SQLITE_OK) {
      throw StoreError("cannot open the store " + path_ + ": " +
                       (raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
    }
    sqlite3* db = db_.get();
    sqlite3_extended_result_codes(db, 1);
    // Only this process writes (the lock file); a reader such as the sqlite3
    // shell may hold the file briefly.
    sqlite3_busy_timeout(db, kBusyTimeoutMs);
    try {
      int version = pragma_int("PRAGMA user_version");
      if (version > kSchemaVersion) {
        throw StoreError("the store " + path_ + " was written by a newer trouped (schema version " +
                         std::to_string(version) + "; this one reads up to " +
                         std::to_string(kSchemaVersion) +
                         "): run that version, or move the file aside");
      }
      Statement mode(db, "PRAGMA journal_mode = WAL");
      if (!mode.step() || mode.column_blob(0) != "wal") {
        throw StoreError("cannot put the store " + path_ + " in WAL mode");
      }
      mode.reset();
      detail::exec(
          db, options_.sync_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
      // Checkpoints run on the checkpointer's connection (and the writer's
      // between commits), never inside a commit. The hook (which the pragma
      // would replace) counts the WAL's pages after each commit.
      detail::exec(db, "PRAGMA wal_autocheckpoint = 0");
      sqlite3_wal_hook(db, &SqliteJournal::count_wal_pages, this);
      detail::exec(db, ("PRAGMA journal_size_limit = " + std::to_string(kWalSizeLimit)).c_str());
      if (options_.max_page_count > 0) {
        detail::exec(
            db, ("PRAGMA max_page_count = " + std::to_string(options_.max_page_count)).c_str());
      }
      if (version < kSchemaVersion) {
        detail::exec(db, "BEGIN IMMEDIATE");
        detail::exec(db, (version == 1 ? migration_from_1() : schema()).c_str());
        detail::exec(db, ("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str());
        detail::exec(db, "COMMIT");
      }
      statements_ = std::make_unique<Statements>(db);
      refresh_next_expiry();
      statements_->dead_troupes.each_row(
          [&](Statement& row) { dead_to_trim_.insert(row.column_blob(0)); });
      if (options_.observer != nullptr) {
        // One scan at open; from then on the entries move the counts and
        // the map of rows that can still change (else recover() or the
        // first commit fills that).
        statements_->all_rows.each_row([&](Statement& row) {
          core::JobId id{std::bit_cast<std::uint64_t>(row.column_int(0))};
          auto state = static_cast<JobState>(row.column_int(1));
          if (!core::is_terminal(state)) live_rows_.emplace(id.value, row.column_int(2));
          counts_.add(id, state);
        });
        live_rows_loaded_ = true;
      }
    } catch (const SqliteError& error) {
      statements_.reset();
      if (is_corrupt(error)) throw StoreError(corrupt_message(path_, error));
      throw StoreError("cannot open the store " + path_ + ": " + detail::describe(error));
    }
  }

  /// The checkpointer's own connection, on the file open_database() set up.
  void open_checkpointer() {
    sqlite3* raw = nullptr;
    int rc =
        sqlite3_open_v2(path_.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    checkpoint_db_.reset(raw);
    if (rc != SQLITE_OK) {
      throw StoreError("cannot open the store " + path_ + " for checkpoints: " +
                       (raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
    }
    sqlite3_extended_result_codes(raw, 1);
    try {
      // A checkpoint syncs the WAL before copying it (what sync normal
      // relies on) and the database after.
      detail::exec(
          raw, options_.sync_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
    } catch (const SqliteError& error) {
      throw StoreError("cannot open the store " + path_ +
                       " for checkpoints: " + detail::describe(error));
    }
  }

  static int count_wal_pages(void* self, sqlite3*, const char*, int pages) {
    static_cast<SqliteJournal*>(self)->wal_pages_ = pages;
    return SQLITE_OK;
  }

  int pragma_int(const char* sql) {
    Statement statement(db_.get(), sql);
    return statement.step() ? static_cast<int>(statement.column_int(0)) : 0;
  }

  /// Calls `each` per row of `query`; with `fill_live_rows`, adds each
  /// row to live_rows_ (its seq in kLiveSeqColumn).
  void read_back(Statement& query, const std::function<void(core::RecoveredJob&&)>& each,
                 bool fill_live_rows) {
    query.each_row([&](Statement& row) {
      core::RecoveredJob job;
      auto& request = job.request;
      request.id = from_sql(row.column_int(0));
      request.troupe = row.column_blob(1);
      job.state = static_cast<JobState>(row.column_int(2));
      job.attempts = static_cast<std::uint32_t>(row.column_int(3));
      request.payload = row.column_blob(4);
      request.key = row.column_blob(5);
      request.idempotency_key = row.column_blob(6);
      auto metadata = detail::decode_metadata(row.column_blob(7));
      if (!metadata) {
        throw SqliteError(SQLITE_CORRUPT, "recover",
                          "job " + request.id.to_string() + " has unreadable metadata");
      }
      request.metadata = std::move(*metadata);
      request.submitted_ns = row.column_int(8);
      request.deadline_ns = row.column_int(9);
      request.attempt_timeout_ns = row.column_int(10);
      job.failure = static_cast<core::FailureClass>(row.column_int(11));
      job.output = row.column_blob(12);
      job.started_ns = row.column_int(13);
      job.finished_ns = row.column_int(14);
      job.next_run_ns = row.column_int(15);
      if (fill_live_rows) live_rows_.emplace(request.id.value, row.column_int(kLiveSeqColumn));
      each(std::move(job));
    });
  }

  // ---- the writer thread ----

  void writer_loop() {
    std::vector<core::JournalEntry> batch;
    std::vector<Barrier> ready;
    std::unique_lock lock(mutex_);
    for (;;) {
      if (checkpoint_failure_) return fail(lock, *checkpoint_failure_);
      if (barriers_.take_ready(ready)) {
        lock.unlock();
        for (auto& barrier : ready) barrier.done(nullptr);
        ready.clear();
        lock.lock();
        barriers_.done_running();
        continue;
      }
      // After the barriers (their acks do not wait for it), before the next
      // commit (a load that never pauses has one pending).
      if (wal_restart_due_) {
        wal_restart_due_ = false;
        // The checkpointer's pass (if one runs) ends first; it starts no
        // other meanwhile.
        wal_restarting_ = true;
        wake_.wait(lock, [this] { return !checkpoint_running_; });
        lock.unlock();
        auto failed = restart_wal();
        lock.lock();
        wal_restarting_ = false;
        checkpoint_wake_.notify_one();
        if (failed) return fail(lock, std::move(*failed));
        continue;
      }
      if (!pending_.empty()) {
        batch.swap(pending_);
        std::uint64_t covered = barriers_.appended_count();
        Clock::time_point arrival = first_arrival_;
        lock.unlock();
        auto failed = commit(batch, arrival);
        batch.clear();
        lock.lock();
        if (failed) return fail(lock, std::move(*failed));
        barriers_.durable_up_to(covered);
        if (wal_pages_ >= kCheckpointPages && !checkpoint_requested_) {
          checkpoint_requested_ = true;
          checkpoint_wake_.notify_one();
        }
        continue;
      }
      if (stopping_) return;
      Clock::time_point due = maintenance_due();
      if (Clock::now() >= due) {
        lock.unlock();
        auto failed = maintain();
        lock.lock();
        if (failed) return fail(lock, std::move(*failed));
        continue;
      }
      wake_.wait_until(lock, due);
    }
  }

  /// The journal failed for good: drops what is pending, tells the handler,
  /// then every waiting barrier. `lock` holds mutex_.
  void fail(std::unique_lock<std::mutex>& lock, core::JournalFailure failure) {
    failure_ = failure;
    checkpoint_wake_.notify_all();
    pending_.clear();
    std::deque<Barrier> waiting = barriers_.take_all();
    auto handler = on_failure_;
    lock.unlock();
    if (handler) handler(failure);
    for (auto& barrier : waiting) barrier.done(&failure);
  }

  core::JournalFailure failure_of(const SqliteError& error) {
    return core::JournalFailure{"sqlite " + path_ + ": " + detail::describe(error)};
  }

  void rollback() {
    // May fail when SQLite rolled back already; the journal fails anyway.
    sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
  }

  std::optional<core::JournalFailure> commit(std::vector<core::JournalEntry>& batch,
                                             Clock::time_point arrival) {
    std::lock_guard db_lock(db_mutex_);
    std::size_t accepted = 0;
    std::int64_t now_ns = wall_now_ns();
    try {
      if (!live_rows_loaded_) load_live_rows();
      fold_.fold(batch);
      statements_->begin.run();
      for (std::size_t i = 0; i < batch.size(); ++i) {
        std::int32_t row = fold_.row_of(i);
        if (row == detail::EntryFold::kOnItsOwn) {
          std::visit([&](auto& e) { apply(e); }, batch[i]);
        } else if (row >= 0 && fold_.rows()[row].accept == i) {
          insert(std::get<core::JournalAccepted>(batch[i]), fold_.rows()[row], batch);
        }  // else folded into its job's INSERT, or a second accept (nothing)
        if (std::holds_alternative<core::JournalAccepted>(batch[i])) ++accepted;
      }
      expire_and_trim(now_ns);
      statements_->commit.run();
    } catch (const SqliteError& error) {
      rollback();
      return failure_of(error);
    }
    last_commit_ = Clock::now();
    wal_dirty_ = true;
    wal_restart_due_ = wal_pages_ >= kWalCapPages;
    ++commits_since_sample_;
    if (options_.observer != nullptr) {
      options_.observer->committed(last_commit_ - arrival, batch.size(), accepted);
      if (last_commit_ - last_sample_ >= kSampleEvery) sample();
    }
    return std::nullopt;
  }

  /// Fills live_rows_ with a scan of the table: for appends without a
  /// recover() or an observer's scan at open before them.
  void load_live_rows() {
    live_rows_.clear();
    statements_->live_rows.each_row([&](Statement& row) {
      live_rows_.emplace(std::bit_cast<std::uint64_t>(row.column_int(0)), row.column_int(1));
    });
    live_rows_loaded_ = true;
  }

  /// When a row written as `row` expires: nullopt while it is not
  /// terminal, and for DEAD rows (trimmed by count instead).
  std::optional<std::int64_t> expiry_of(const detail::FoldedRow& row,
                                        const core::JournalAccepted& a) const {
    if (!core::is_terminal(row.state) || row.state == JobState::kDead) return std::nullopt;
    std::int64_t expires = saturating_add(row.finished_ns, result_ttl_ns_);
    if (!a.idempotency_key.empty()) {
      expires = std::max(expires, saturating_add(a.submitted_ns, idempotency_ttl_ns_));
    }
    return expires;
  }

  static std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
    std::int64_t sum = 0;
    return __builtin_add_overflow(a, b, &sum) ? std::numeric_limits<std::int64_t>::max() : sum;
  }

  /// Writes an accepted job as `row` (its accept and the entries folded
  /// into it, in `batch`). An accept of a live job's id does nothing, and
  /// the entries folded into it update that row as they would have on
  /// their own. (An id of a terminal row is not looked for: trouped draws
  /// ids that no job it holds, live or kept, has; docs/store.md.)
  void insert(const core::JournalAccepted& e, const detail::FoldedRow& row,
              std::span<const core::JournalEntry> batch) {
    if (live_rows_.contains(e.id.value)) {
      for (std::int32_t j = fold_.next(row.accept); j >= 0; j = fold_.next(j)) {
        std::visit([&](auto& later) { apply(later); }, batch[j]);
      }
      return;
    }
    Statement& s = statements_->insert;
    metadata_buffer_ = detail::encode_metadata(e.metadata);
    s.bind(1, to_sql(e.id));
    s.bind_text(2, e.troupe);
    s.bind_blob(3, e.payload);
    s.bind_text(4, e.key);
    s.bind_text(5, e.idempotency_key);
    s.bind_blob(6, metadata_buffer_);
    s.bind(7, e.submitted_ns);
    s.bind(8, e.deadline_ns);
    s.bind(9, e.attempt_timeout_ns);
    s.bind(10, static_cast<std::int64_t>(row.state));
    s.bind(11, row.attempts);
    s.bind(12, static_cast<std::int64_t>(row.failure));
    s.bind_blob(13, row.output);
    s.bind(14, row.started_ns);
    s.bind(15, row.finished_ns);
    s.bind(16, row.next_run_ns);
    std::optional<std::int64_t> expires_ns = expiry_of(row, e);
    if (expires_ns) {
      s.bind(17, *expires_ns);
    } else {
      s.bind_null(17);
    }
    s.run();
    if (!core::is_terminal(row.state)) {
      live_rows_.emplace(e.id.value, sqlite3_last_insert_rowid(db_.get()));
    }
    if (counting()) counts_.accepted();
    for (std::int32_t j = fold_.next(row.accept); j >= 0; j = fold_.next(j)) {
      std::visit([&](auto& later) { wrote(later, e.troupe); }, batch[j]);
    }
    if (expires_ns) next_expiry_ns_ = std::min(next_expiry_ns_, *expires_ns);
  }

  /// What a written entry moves besides its row: the counts by state and
  /// the troupes whose dead letters to trim. `troupe` is the job's.
  void wrote(const core::JournalAccepted&, const std::string&) {}
  void wrote(const core::JournalStarted& e, const std::string&) {
    if (counting()) counts_.started(e.id);
  }
  void wrote(const core::JournalRetryWait& e, const std::string&) {
    if (counting()) counts_.retry_wait(e.id);
  }
  void wrote(const core::JournalRequeued& e, const std::string&) {
    if (counting()) counts_.requeued(e.id);
  }
  void wrote(const core::JournalTerminal& e, const std::string& troupe) {
    if (e.state == JobState::kDead) dead_to_trim_.insert(troupe);
    if (counting()) counts_.terminal(e.id, e.state);
  }

  /// Every accept is written by insert() (or is a second one: nothing).
  void apply(const core::JournalAccepted&) {}

  /// The row of a job that can still change; nullopt for a job the store
  /// does not hold, or holds terminal (never updated again).
  std::optional<std::int64_t> live_row(core::JobId id) const {
    auto it = live_rows_.find(id.value);
    if (it == live_rows_.end()) return std::nullopt;
    return it->second;
  }

  void apply(const core::JournalStarted& e) {
    auto seq = live_row(e.id);
    if (!seq) return;
    Statement& s = statements_->started;
    s.bind(1, *seq);
    s.bind(2, e.attempts);
    s.bind(3, e.started_ns);
    s.run();
    wrote(e, {});
  }

  void apply(const core::JournalRetryWait& e) {
    auto seq = live_row(e.id);
    if (!seq) return;
    Statement& s = statements_->retry_wait;
    s.bind(1, *seq);
    s.bind(2, e.attempts);
    s.bind(3, e.next_run_ns);
    s.bind_blob(4, e.error);
    s.bind(5, static_cast<std::int64_t>(e.failure));
    s.run();
    wrote(e, {});
  }

  void apply(const core::JournalRequeued& e) {
    auto seq = live_row(e.id);
    if (!seq) return;
    Statement& s = statements_->requeued;
    s.bind(1, *seq);
    s.bind(2, e.attempts);
    s.run();
    wrote(e, {});
  }

  void apply(const core::JournalTerminal& e) {
    auto seq = live_row(e.id);
    if (!seq) return;
    live_rows_.erase(e.id.value);  // never updated again
    bool dead = e.state == JobState::kDead;
    Statement& s = dead ? statements_->terminal_dead : statements_->terminal;
    s.bind(1, *seq);
    if (!dead) s.bind(2, static_cast<std::int64_t>(e.state));  // ?2 is unused by terminal_dead
    s.bind(3, static_cast<std::int64_t>(e.failure));
    s.bind(4, e.attempts);
    s.bind_blob(5, e.output);
    s.bind(6, e.started_ns);
    s.bind(7, e.finished_ns);
    if (!dead) {
      s.bind(8, result_ttl_ns_);
      s.bind(9, idempotency_ttl_ns_);
      s.run();
      wrote(e, {});
      // A lower bound of the row's expiry: the idempotency TTL can only
      // make it later.
      next_expiry_ns_ = std::min(next_expiry_ns_, saturating_add(e.finished_ns, result_ttl_ns_));
      return;
    }
    s.each_row([&](Statement& row) { wrote(e, row.column_blob(0)); });  // the updated row's troupe
  }

  /// Deletes up to kExpiryBatch expired rows when some are due, and the
  /// dead letters beyond the limit of each troupe that got new ones. Inside
  /// the caller's transaction.
  void expire_and_trim(std::int64_t now_ns) {
    if (now_ns >= next_expiry_ns_) {
      Statement& s = statements_->expire;
      s.bind(1, now_ns);
      s.bind(2, kExpiryBatch);
      std::uint64_t deleted = 0;
      s.each_row([&](Statement& row) {  // each deleted row's state
        ++deleted;
        if (counting()) counts_.deleted(static_cast<JobState>(row.column_int(0)), 1);
      });
      if (deleted == static_cast<std::uint64_t>(kExpiryBatch)) {
        next_expiry_ns_ = now_ns;  // more are due: the next round goes on
      } else {
        refresh_next_expiry();
      }
      if (deleted > 0) {
        ++commits_since_sample_;
        if (options_.observer != nullptr) options_.observer->expired(deleted);
      }
    }
    for (const auto& troupe : dead_to_trim_) {
      Statement& s = statements_->trim_dead;
      s.bind_text(1, troupe);
      s.bind(2, static_cast<std::int64_t>(options_.dead_letters_per_troupe));
      s.run();
      if (counting())
        counts_.deleted(JobState::kDead, static_cast<std::uint64_t>(sqlite3_changes64(db_.get())));
    }
    dead_to_trim_.clear();
  }

  void refresh_next_expiry() {
    next_expiry_ns_ = std::numeric_limits<std::int64_t>::max();
    statements_->next_expiry.each_row([&](Statement& row) {
      if (!row.column_null(0)) next_expiry_ns_ = row.column_int(0);
    });
  }

  /// When the idle writer next has something to do without new entries.
  Clock::time_point maintenance_due() const {
    Clock::time_point now = Clock::now();
    Clock::time_point due = now + 1h;
    if (!dead_to_trim_.empty()) return now;
    if (next_expiry_ns_ != std::numeric_limits<std::int64_t>::max()) {
      std::int64_t wait_ns = next_expiry_ns_ - wall_now_ns();
      due = std::min(due, now + std::chrono::nanoseconds(std::clamp<std::int64_t>(
                                    wait_ns, 0, std::chrono::nanoseconds(1h).count())));
    }
    if (wal_dirty_) due = std::min(due, last_commit_ + kIdleCheckpoint);
    if (options_.observer != nullptr && commits_since_sample_ > 0) {
      due = std::min(due, last_sample_ + kSampleEvery);
    }
    return due;
  }

  /// The idle writer's housekeeping: expiry and trimming in a transaction
  /// of their own, the WAL checkpoint, the rows sample.
  std::optional<core::JournalFailure> maintain() {
    std::lock_guard db_lock(db_mutex_);
    Clock::time_point now = Clock::now();
    std::int64_t now_ns = wall_now_ns();
    if (now_ns >= next_expiry_ns_ || !dead_to_trim_.empty()) {
      try {
        statements_->begin.run();
        expire_and_trim(now_ns);
        statements_->commit.run();
      } catch (const SqliteError& error) {
        rollback();
        return failure_of(error);
      }
      last_commit_ = now;
      wal_dirty_ = true;
      return std::nullopt;
    }
    if (wal_dirty_ && now >= last_commit_ + kIdleCheckpoint) {
      bool busy = false;
      if (auto failed = checkpoint(db_.get(), SQLITE_CHECKPOINT_TRUNCATE, &busy)) return failed;
      wal_dirty_ = busy;  // the next idle period tries again
      if (busy) last_commit_ = now;
    }
    if (options_.observer != nullptr && commits_since_sample_ > 0 &&
        now >= last_sample_ + kSampleEvery) {
      sample();
    }
    return std::nullopt;
  }

  /// The checkpointer thread: a PASSIVE checkpoint on its own connection
  /// each time the writer finds the WAL past kCheckpointPages. It takes no
  /// lock a commit waits for (SQLite's checkpoint lock only), so commits go
  /// on meanwhile. A failed checkpoint fails the journal, on the writer.
  void checkpointer_loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
      checkpoint_wake_.wait(lock, [this] {
        return (checkpoint_requested_ && !wal_restarting_) || stopping_ || failure_;
      });
      if (stopping_ || failure_) return;
      checkpoint_requested_ = false;
      checkpoint_running_ = true;
      lock.unlock();
      std::optional<core::JournalFailure> failed =
          checkpoint(checkpoint_db_.get(), SQLITE_CHECKPOINT_PASSIVE);
      lock.lock();
      checkpoint_running_ = false;
      if (wal_restarting_) wake_.notify_one();
      if (failed) {
        checkpoint_failure_ = std::move(failed);
        wake_.notify_one();
        return;
      }
    }
  }

  /// A checkpoint in `mode` on `db`. SQLITE_BUSY (`*busy`) is no failure:
  /// another checkpoint runs, or a reader (the sqlite3 shell) holds the
  /// WAL; a later one tries again. Anything else is a write error.
  std::optional<core::JournalFailure> checkpoint(sqlite3* db, int mode, bool* busy = nullptr) {
    int rc = sqlite3_wal_checkpoint_v2(db, nullptr, mode, nullptr, nullptr);
    if (busy != nullptr) *busy = rc == SQLITE_BUSY;
    if (rc == SQLITE_OK || rc == SQLITE_BUSY) return std::nullopt;
    return failure_of(SqliteError(sqlite3_extended_errcode(db), "checkpoint", sqlite3_errmsg(db)));
  }

  /// The WAL passed kWalCapPages: copies what the checkpointer has not and
  /// starts the WAL over, between two commits. Without waiting for a
  /// reader (the sqlite3 shell): the next commit tries again.
  std::optional<core::JournalFailure> restart_wal() {
    std::lock_guard db_lock(db_mutex_);
    sqlite3_busy_timeout(db_.get(), 0);
    auto failed = checkpoint(db_.get(), SQLITE_CHECKPOINT_RESTART);
    sqlite3_busy_timeout(db_.get(), kBusyTimeoutMs);
    return failed;
  }

  /// Reports rows by state and the bytes on disk. db_mutex_ held;
  /// observer set.
  void sample() {
    last_sample_ = Clock::now();
    commits_since_sample_ = 0;
    for (int state = 0; state < kStates; ++state) {
      options_.observer->rows(static_cast<JobState>(state),
                              counts_.count(static_cast<JobState>(state)));
    }
    options_.observer->store_bytes(bytes_on_disk());
  }

  bool counting() const { return options_.observer != nullptr; }

  std::uint64_t bytes_on_disk() const {
    std::uint64_t total = 0;
    for (const auto& file : {path_, path_ + "-wal"}) {
      struct stat st {};
      if (::stat(file.c_str(), &st) == 0) total += static_cast<std::uint64_t>(st.st_size);
    }
    return total;
  }

  const SqliteJournalOptions options_;
  const std::string path_;
  const std::int64_t result_ttl_ns_;
  const std::int64_t idempotency_ttl_ns_;

  std::unique_ptr<detail::LockFile> lock_;
  // Guards the connection and its statements: the writer's transactions and
  // recover() (which may run while the writer waits).
  std::mutex db_mutex_;
  std::unique_ptr<sqlite3, CloseDatabase> db_;
  std::unique_ptr<Statements> statements_;  // destroyed before db_

  // Writer-thread state (also touched at open, before the thread starts).
  std::int64_t next_expiry_ns_ = std::numeric_limits<std::int64_t>::max();  // wall clock
  std::set<std::string> dead_to_trim_;  // troupes with new DEAD rows
  std::string metadata_buffer_;         // bound until the insert is reset
  // The rows that can still change (non-terminal), job id -> seq: an
  // UPDATE finds its row by seq, with no index on id. Filled once from a
  // scan (at open with an observer, else in recover() or the first
  // commit), grown by each INSERT of a non-terminal row, shrunk at each
  // terminal entry. Under db_mutex_ (recover() may fill it).
  std::unordered_map<std::uint64_t, std::int64_t> live_rows_;
  bool live_rows_loaded_ = false;
  detail::EntryFold fold_;  // of the batch being committed
  Clock::time_point last_commit_{};
  Clock::time_point last_sample_{};
  bool wal_dirty_ = false;        // commits since the last idle checkpoint
  int wal_pages_ = 0;             // in the WAL after the last commit (count_wal_pages)
  bool wal_restart_due_ = false;  // the WAL passed kWalCapPages
  // The checkpointer's connection; its thread's only state.
  std::unique_ptr<sqlite3, CloseDatabase> checkpoint_db_;
  std::uint64_t commits_since_sample_ = 1;
  detail::RowCounts counts_;  // only with an observer

  mutable std::mutex mutex_;  // guards the members below
  std::condition_variable wake_;
  std::condition_variable checkpoint_wake_;
  bool checkpoint_requested_ = false;  // the WAL passed kCheckpointPages
  bool checkpoint_running_ = false;    // the checkpointer's pass
  bool wal_restarting_ = false;        // the writer waits for or runs restart_wal()
  std::optional<core::JournalFailure> checkpoint_failure_;
  std::vector<core::JournalEntry> pending_;
  Clock::time_point first_arrival_{};  // of pending_'s first entry
  detail::BarrierQueue barriers_;      // entries appended, committed, and the barriers
  bool stopping_ = false;
  std::optional<core::JournalFailure> failure_;
  std::function<void(const core::JournalFailure&)> on_failure_;

  std::mutex close_mutex_;  // one close() at a time
  std::thread writer_;
  std::thread checkpointer_;
};

}  // namespace

std::unique_ptr<core::Journal> open_sqlite_journal(const SqliteJournalOptions& options) {
  return std::make_unique<SqliteJournal>(options);
}

}  // namespace troupe::store
