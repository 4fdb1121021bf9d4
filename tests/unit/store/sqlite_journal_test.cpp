#include "store/sqlite_journal.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "faulty_vfs.h"
#include "journal_test_support.h"

namespace troupe::store {
namespace {

using namespace std::chrono_literals;
using core::JobId;
using core::JobState;
using test::kBound;
using test::now_ns;
using test::wait_durable;
namespace fs = std::filesystem;

constexpr std::int64_t kHour = 3600LL * 1'000'000'000;

core::JournalAccepted accepted(std::uint64_t id, std::string troupe = "t",
                               std::string payload = "p") {
  core::JournalAccepted a;
  a.id = JobId{id};
  a.troupe = std::move(troupe);
  a.payload = std::move(payload);
  a.submitted_ns = now_ns();
  return a;
}

std::vector<core::RecoveredJob> recover_all(core::Journal& journal) {
  std::vector<core::RecoveredJob> jobs;
  journal.recover([&](core::RecoveredJob&& job) { jobs.push_back(std::move(job)); });
  return jobs;
}

/// Counts what the journal reports, for waiting on it.
class Recorder : public core::JournalObserver {
 public:
  void committed(std::chrono::nanoseconds, std::size_t entries, std::size_t accepted) override {
    std::lock_guard lock(mutex_);
    ++commits_;
    entries_ += entries;
    accepted_ += accepted;
  }
  void expired(std::uint64_t rows) override {
    {
      std::lock_guard lock(mutex_);
      expired_ += rows;
    }
    changed_.notify_all();
  }
  void rows(JobState state, std::uint64_t count) override {
    {
      std::lock_guard lock(mutex_);
      rows_[state] = count;
    }
    changed_.notify_all();
  }
  /// True once the last report of every state is `expected`'s (0 for the
  /// states it leaves out); else the last reports.
  ::testing::AssertionResult wait_rows(const std::map<JobState, std::uint64_t>& expected) {
    std::unique_lock lock(mutex_);
    auto matches = [&] {
      for (int s = 0; s < 8; ++s) {
        auto state = static_cast<JobState>(s);
        auto want = expected.count(state) ? expected.at(state) : 0;
        auto it = rows_.find(state);
        if (it == rows_.end() || it->second != want) return false;
      }
      return true;
    };
    if (changed_.wait_for(lock, kBound, matches)) return ::testing::AssertionSuccess();
    auto failure = ::testing::AssertionFailure() << "rows by state:";
    for (const auto& [state, count] : rows_)
      failure << " " << core::to_string(state) << "=" << count;
    return failure;
  }
  /// True once `rows` rows expired in all.
  bool wait_expired(std::uint64_t rows) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, kBound, [&] { return expired_ >= rows; });
  }
  std::uint64_t commits() {
    std::lock_guard lock(mutex_);
    return commits_;
  }
  std::uint64_t entries() {
    std::lock_guard lock(mutex_);
    return entries_;
  }
  std::uint64_t accepted_entries() {
    std::lock_guard lock(mutex_);
    return accepted_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::uint64_t commits_ = 0, entries_ = 0, accepted_ = 0, expired_ = 0;
  std::map<JobState, std::uint64_t> rows_;
};

class SqliteJournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "troupe-store-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    options_.path = (dir_ / "jobs.db").string();
    options_.result_ttl = 1h;
    options_.idempotency_ttl = 24h;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<core::Journal> open() { return open_sqlite_journal(options_); }

  fs::path dir_;
  SqliteJournalOptions options_;
};

TEST_F(SqliteJournalTest, AcceptedJobReadsBackWithEveryField) {
  core::JournalAccepted a = accepted(0xfedcba9876543210ULL, "images", std::string("\0bin\xff", 5));
  a.key = "k1";
  a.idempotency_key = "idem";
  a.metadata = {{"trace", "abc"}, {"who", ""}};
  a.deadline_ns = a.submitted_ns + kHour;
  a.attempt_timeout_ns = 5'000'000'000;
  core::JournalAccepted empty = accepted(2, "images", "");
  {
    auto journal = open();
    EXPECT_TRUE(journal->durable());
    EXPECT_TRUE(recover_all(*journal).empty());
    journal->append(a);
    journal->append(empty);
    EXPECT_EQ(wait_durable(*journal), std::nullopt);
  }
  auto journal = open();
  auto jobs = recover_all(*journal);
  ASSERT_EQ(jobs.size(), 2u);
  const auto& r = jobs[0].request;
  EXPECT_EQ(r.id, a.id);
  EXPECT_EQ(r.troupe, a.troupe);
  EXPECT_EQ(r.payload, a.payload);
  EXPECT_EQ(r.key, a.key);
  EXPECT_EQ(r.idempotency_key, a.idempotency_key);
  EXPECT_EQ(r.metadata, a.metadata);
  EXPECT_EQ(r.submitted_ns, a.submitted_ns);
  EXPECT_EQ(r.deadline_ns, a.deadline_ns);
  EXPECT_EQ(r.attempt_timeout_ns, a.attempt_timeout_ns);
  EXPECT_EQ(jobs[0].state, JobState::kQueued);
  EXPECT_EQ(jobs[0].attempts, 0u);
  EXPECT_EQ(jobs[1].request.id, empty.id);
  EXPECT_EQ(jobs[1].request.payload, "");
}

TEST_F(SqliteJournalTest, CloseCommitsWhatIsPendingAndIgnoresLaterAppends) {
  {
    auto journal = open();
    for (std::uint64_t id = 1; id <= 100; ++id) journal->append(accepted(id));
    journal->close();
    journal->append(accepted(101));
    EXPECT_EQ(wait_durable(*journal), std::nullopt);  // nothing pending: inline
  }
  auto journal = open();
  EXPECT_EQ(recover_all(*journal).size(), 100u);
}

TEST_F(SqliteJournalTest, CloseFromABarrierStopsTheWriterWithoutJoiningItself) {
  auto journal = open();
  journal->append(accepted(1));
  auto closed = std::make_shared<std::promise<void>>();
  journal->after_durable([&, closed](const core::JournalFailure*) {
    journal->close();
    closed->set_value();
  });
  ASSERT_EQ(closed->get_future().wait_for(kBound), std::future_status::ready);
  journal->append(accepted(2));  // ignored: closed
  journal.reset();               // joins the writer
  journal = open();
  std::vector<std::uint64_t> ids;
  for (const auto& job : recover_all(*journal)) ids.push_back(job.request.id.value);
  EXPECT_EQ(ids, std::vector<std::uint64_t>{1});
}

TEST_F(SqliteJournalTest, BarrierWithNothingPendingRunsInline) {
  auto journal = open();
  bool called = false;
  journal->after_durable([&](const core::JournalFailure* failure) {
    EXPECT_EQ(failure, nullptr);
    called = true;
  });
  EXPECT_TRUE(called);
}

TEST_F(SqliteJournalTest, BarrierWaitsForTheFsyncOfItsCommit) {
  testing::FaultyVfs vfs;
  auto journal = open();
  std::atomic<int> called{0};
  testing::FaultyVfs::hold_syncs();
  journal->append(accepted(1));
  ASSERT_TRUE(testing::FaultyVfs::wait_for_held_sync(kBound));
  // The writer has taken the entry and waits in its fsync.
  journal->after_durable([&](const core::JournalFailure* failure) {
    EXPECT_EQ(failure, nullptr);
    called.fetch_add(1);
  });
  // Appended while the commit is in progress: the next barrier waits for
  // the next commit.
  journal->append(accepted(2));
  journal->after_durable([&](const core::JournalFailure* failure) {
    EXPECT_EQ(failure, nullptr);
    called.fetch_add(1);
  });
  EXPECT_EQ(called.load(), 0);  // the commit has not been fsynced
  testing::FaultyVfs::release_syncs();
  EXPECT_EQ(wait_durable(*journal), std::nullopt);
  EXPECT_EQ(called.load(), 2);
}

TEST_F(SqliteJournalTest, BarriersRunInOrderOnceTheirEntriesAreCommittedInGroups) {
  Recorder recorder;
  options_.observer = &recorder;
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  std::atomic<int> ok{0};
  {
    auto journal = open();
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        int last = -1;
        std::mutex m;
        std::condition_variable cv;
        int done = 0;
        for (int i = 0; i < kPerThread; ++i) {
          journal->append(accepted(static_cast<std::uint64_t>(t) << 32 | i));
          journal->after_durable([&, i](const core::JournalFailure* failure) {
            std::lock_guard lock(m);
            // Barrier order: this thread's barriers come back in its order.
            if (failure == nullptr && i == last + 1) ok.fetch_add(1);
            last = i;
            ++done;
            cv.notify_all();
          });
        }
        std::unique_lock lock(m);
        cv.wait_for(lock, kBound, [&] { return done == kPerThread; });
      });
    }
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(ok.load(), kThreads * kPerThread);
    EXPECT_EQ(recorder.entries(), static_cast<std::uint64_t>(kThreads * kPerThread));
    EXPECT_EQ(recorder.accepted_entries(), static_cast<std::uint64_t>(kThreads * kPerThread));
    // Entries that arrived while a commit ran went together.
    EXPECT_LT(recorder.commits(), static_cast<std::uint64_t>(kThreads * kPerThread));
  }
  auto journal = open();
  EXPECT_EQ(recover_all(*journal).size(), static_cast<std::size_t>(kThreads * kPerThread));
}

TEST_F(SqliteJournalTest, RecoverReturnsOpenJobsInAcceptanceOrderThenLiveTerminalOnes) {
  options_.result_ttl = 1h;
  options_.idempotency_ttl = 10h;
  std::int64_t now = now_ns();
  {
    auto journal = open();
    // Ids out of numeric order: acceptance order is the order of appends.
    for (std::uint64_t id : {50, 10, 40, 20, 30, 60, 70, 5}) journal->append(accepted(id));
    auto idem = accepted(80);
    idem.idempotency_key = "once";
    idem.submitted_ns = now - 3 * kHour;
    journal->append(idem);
    // 50: retry-waiting, then started again: running at the end.
    journal->append(core::JournalStarted{JobId{50}, 1, now});
    journal->append(
        core::JournalRetryWait{JobId{50}, 1, now + 1, "boom", core::FailureClass::kRetryable});
    journal->append(core::JournalStarted{JobId{50}, 2, now + 2});
    // 10: retry-waiting until now + 1 h.
    journal->append(core::JournalStarted{JobId{10}, 1, now});
    journal->append(
        core::JournalRetryWait{JobId{10}, 1, now + kHour, "timeout", core::FailureClass::kTimeout});
    // 40: succeeded just now (kept for result_ttl).
    journal->append(core::JournalStarted{JobId{40}, 1, now});
    journal->append(core::JournalTerminal{JobId{40}, JobState::kSucceeded,
                                          core::FailureClass::kNone, 1, "result", now, now + 3});
    // 20: started, then handed back by a drain: queued, attempt not counted.
    journal->append(core::JournalStarted{JobId{20}, 1, now});
    journal->append(core::JournalRequeued{JobId{20}, 0});
    // 60: failed two hours ago: expired.
    journal->append(core::JournalTerminal{JobId{60}, JobState::kFailed,
                                          core::FailureClass::kRetryable, 1, "err", now - 2 * kHour,
                                          now - 2 * kHour});
    // 70: dead two hours ago: dead letters do not expire by TTL.
    journal->append(core::JournalTerminal{JobId{70}, JobState::kDead, core::FailureClass::kCrash, 3,
                                          "crash", now - 2 * kHour, now - 2 * kHour});
    // 80: finished two hours ago, but its idempotency key holds it 10 h
    // from submission.
    journal->append(core::JournalTerminal{JobId{80}, JobState::kSucceeded,
                                          core::FailureClass::kNone, 1, "r", now - 2 * kHour,
                                          now - 2 * kHour});
    EXPECT_EQ(wait_durable(*journal), std::nullopt);
  }
  auto journal = open();
  auto jobs = recover_all(*journal);
  std::vector<std::uint64_t> ids;
  for (const auto& job : jobs) ids.push_back(job.request.id.value);
  EXPECT_EQ(ids, (std::vector<std::uint64_t>{50, 10, 20, 30, 5, 40, 70, 80}));
  ASSERT_EQ(jobs.size(), 8u);
  EXPECT_EQ(jobs[0].state, JobState::kRunning);
  EXPECT_EQ(jobs[0].attempts, 2u);
  EXPECT_EQ(jobs[0].started_ns, now + 2);
  EXPECT_EQ(jobs[1].state, JobState::kRetryWait);
  EXPECT_EQ(jobs[1].attempts, 1u);
  EXPECT_EQ(jobs[1].next_run_ns, now + kHour);
  EXPECT_EQ(jobs[1].output, "timeout");
  EXPECT_EQ(jobs[1].failure, core::FailureClass::kTimeout);
  EXPECT_EQ(jobs[2].state, JobState::kQueued);
  EXPECT_EQ(jobs[2].attempts, 0u);
  EXPECT_EQ(jobs[3].state, JobState::kQueued);
  EXPECT_EQ(jobs[5].state, JobState::kSucceeded);
  EXPECT_EQ(jobs[5].output, "result");
  EXPECT_EQ(jobs[5].finished_ns, now + 3);
  EXPECT_EQ(jobs[6].state, JobState::kDead);
  EXPECT_EQ(jobs[6].failure, core::FailureClass::kCrash);
  EXPECT_EQ(jobs[6].attempts, 3u);
  EXPECT_EQ(jobs[7].state, JobState::kSucceeded);
  EXPECT_EQ(jobs[7].request.idempotency_key, "once");
}

TEST_F(SqliteJournalTest, RowsByStateFollowTheEntriesAndSurviveAReopen) {
  Recorder recorder;
  options_.observer = &recorder;
  std::int64_t now = now_ns();
  const std::map<JobState, std::uint64_t> expected{{JobState::kQueued, 2},
                                                   {JobState::kRetryWait, 1},
                                                   {JobState::kSucceeded, 1},
                                                   {JobState::kCancelled, 1},
                                                   {JobState::kDead, 1}};
  {
    auto journal = open();
    for (std::uint64_t id = 1; id <= 6; ++id) journal->append(accepted(id));
    for (std::uint64_t id : {1, 2, 3}) journal->append(core::JournalStarted{JobId{id}, 1, now});
    journal->append(core::JournalRetryWait{JobId{2}, 1, now, "e", core::FailureClass::kRetryable});
    journal->append(core::JournalStarted{JobId{2}, 2, now});
    journal->append(core::JournalRequeued{JobId{3}, 0});
    journal->append(core::JournalTerminal{JobId{1}, JobState::kSucceeded, core::FailureClass::kNone,
                                          1, "r", now, now});
    journal->append(core::JournalTerminal{JobId{4}, JobState::kCancelled,
                                          core::FailureClass::kCancelled, 0, "", 0, now});
    journal->append(core::JournalTerminal{JobId{5}, JobState::kDead, core::FailureClass::kPermanent,
                                          1, "", 0, now});
    journal->append(core::JournalRetryWait{JobId{2}, 2, now, "e", core::FailureClass::kRetryable});
    // An entry for a job the store does not hold moves nothing.
    journal->append(core::JournalStarted{JobId{99}, 1, now});
    EXPECT_EQ(wait_durable(*journal), std::nullopt);
    EXPECT_TRUE(recorder.wait_rows(expected));
  }
  Recorder reopened;
  options_.observer = &reopened;
  auto journal = open();
  EXPECT_TRUE(reopened.wait_rows(expected));
}

TEST_F(SqliteJournalTest, ExpiredRowsAreDeletedAndReported) {
  Recorder recorder;
  options_.observer = &recorder;
  options_.result_ttl = 1ns;
  options_.idempotency_ttl = 0ns;
  auto journal = open();
  constexpr std::uint64_t kJobs = 2500;  // more than one deletion batch
  for (std::uint64_t id = 1; id <= kJobs; ++id) {
    journal->append(accepted(id));
    journal->append(core::JournalTerminal{JobId{id}, JobState::kSucceeded,
                                          core::FailureClass::kNone, 1, "r", now_ns(), now_ns()});
  }
  journal->append(accepted(kJobs + 1));  // not terminal: never expires
  EXPECT_EQ(wait_durable(*journal), std::nullopt);
  EXPECT_TRUE(recorder.wait_expired(kJobs));
  journal.reset();
  options_.observer = nullptr;
  journal = open();
  auto jobs = recover_all(*journal);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].request.id.value, kJobs + 1);
}

TEST_F(SqliteJournalTest, DeadLettersBeyondTheLimitPerTroupeAreTrimmedOldestFirst) {
  options_.dead_letters_per_troupe = 3;
  std::int64_t now = now_ns();
  {
    auto journal = open();
    for (std::uint64_t id = 1; id <= 6; ++id) {
      std::string troupe = id <= 5 ? "a" : "b";
      journal->append(accepted(id, troupe));
      // Finished in reverse order of id: 5 is the oldest dead letter.
      journal->append(core::JournalTerminal{JobId{id}, JobState::kDead,
                                            core::FailureClass::kRetryable, 3, "e", now,
                                            now - static_cast<std::int64_t>(id)});
    }
    // Trimmed in the transaction that writes the dead rows.
    EXPECT_EQ(wait_durable(*journal), std::nullopt);
  }
  auto journal = open();
  std::vector<std::uint64_t> dead;
  for (const auto& job : recover_all(*journal)) {
    if (job.state == JobState::kDead) dead.push_back(job.request.id.value);
  }
  EXPECT_EQ(dead, (std::vector<std::uint64_t>{1, 2, 3, 6}));
}

TEST_F(SqliteJournalTest, SteadyLoadReusesFreedPagesInsteadOfGrowingTheFile) {
  Recorder recorder;
  options_.observer = &recorder;
  options_.result_ttl = 1ns;
  options_.idempotency_ttl = 0ns;
  auto journal = open();
  constexpr std::uint64_t kPerRound = 2000;  // about 2.2 MB of rows a round
  const std::string payload(1024, 'x');
  // At most two rounds of rows are live at a time (a round's rows are
  // deleted during the next); with freed pages reused the file stays near
  // that, whatever the timing of checkpoints. Without reuse or deletion it
  // grows by a round's size every round.
  const std::uint64_t two_rounds = 2 * kPerRound * payload.size();
  std::uint64_t id = 0;
  for (int round = 1; round <= 10; ++round) {
    for (std::uint64_t i = 0; i < kPerRound; ++i) {
      ++id;
      journal->append(accepted(id, "t", payload));
      journal->append(core::JournalStarted{JobId{id}, 1, now_ns()});
      journal->append(core::JournalTerminal{JobId{id}, JobState::kSucceeded,
                                            core::FailureClass::kNone, 1, "done", now_ns(),
                                            now_ns()});
    }
    ASSERT_EQ(wait_durable(*journal), std::nullopt);
    ASSERT_TRUE(recorder.wait_expired(id)) << "round " << round;
    std::uint64_t db = fs::file_size(options_.path);
    std::error_code ec;  // the WAL may have just been truncated away
    std::uint64_t wal = fs::file_size(options_.path + "-wal", ec);
    EXPECT_LE(db, two_rounds * 3 / 2) << "round " << round << ": " << db << " bytes";
    // Checkpoints keep the WAL near wal_autocheckpoint (4 MB) plus one
    // commit, whatever the timing (the idle checkpoint truncates it).
    EXPECT_LE(wal, 16u << 20) << "round " << round;
    RecordProperty("db_bytes_round_" + std::to_string(round), std::to_string(db));
    RecordProperty("wal_bytes_round_" + std::to_string(round), std::to_string(ec ? 0 : wal));
  }
}

// ---- folding a job's entries into its INSERT ----

/// Every row of the store at `path` (the journal closed), each column
/// quoted, in seq order.
std::vector<std::string> table_rows(const std::string& path) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  std::vector<std::string> rows;
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, "SELECT * FROM jobs ORDER BY seq", -1, &stmt, nullptr),
            SQLITE_OK);
  while (stmt != nullptr && sqlite3_step(stmt) == SQLITE_ROW) {
    std::string row;
    for (int c = 0; c < sqlite3_column_count(stmt); ++c) {
      const auto* text = sqlite3_column_text(stmt, c);
      row += std::string(sqlite3_column_name(stmt, c)) + "=" +
             (text == nullptr ? "NULL" : reinterpret_cast<const char*>(text)) + " ";
    }
    rows.push_back(row);
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return rows;
}

/// Runs `sql` on the store at `path` (the journal closed); the first
/// column of the first row, or -1.
std::int64_t run_sql(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  std::int64_t result = -1;
  char* error = nullptr;
  EXPECT_EQ(sqlite3_exec(
                db, sql,
                [](void* out, int, char** values, char**) {
                  if (values[0] != nullptr)
                    *static_cast<std::int64_t*>(out) = std::atoll(values[0]);
                  return 0;
                },
                &result, &error),
            SQLITE_OK)
      << (error ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
  return result;
}

/// Counts the UPDATEs of jobs rows (a trigger that outlives the journal).
constexpr const char* kCountUpdates =
    "CREATE TABLE IF NOT EXISTS updates(n INTEGER);"
    "CREATE TRIGGER IF NOT EXISTS count_updates AFTER UPDATE ON jobs "
    "BEGIN INSERT INTO updates VALUES(1); END;";

TEST_F(SqliteJournalTest, EntriesInTheBatchOfTheirAcceptAreFoldedIntoOneInsertOfTheSameRow) {
  options_.dead_letters_per_troupe = 1;
  const std::int64_t now = now_ns();
  auto with_key = [&](std::uint64_t id, std::string troupe = "t") {
    auto a = accepted(id, std::move(troupe));
    a.idempotency_key = "k" + std::to_string(id);
    a.key = "same";
    a.metadata = {{"m", "v"}};
    a.deadline_ns = now + kHour;
    a.attempt_timeout_ns = 5;
    return a;
  };
  // Accepted in an earlier batch: 1 and 2.
  const std::vector<core::JournalEntry> earlier{accepted(1), accepted(2)};
  // One batch, entries of several jobs interleaved.
  const std::vector<core::JournalEntry> batch{
      with_key(3),
      accepted(4),
      core::JournalStarted{JobId{3}, 1, now + 1},
      core::JournalStarted{JobId{1}, 1, now + 2},  // accepted earlier: an UPDATE
      accepted(5),
      accepted(2),  // known already: the INSERT does nothing, the entries update
      core::JournalStarted{JobId{2}, 1, now + 3},
      core::JournalStarted{JobId{4}, 1, now + 4},
      core::JournalTerminal{JobId{3}, JobState::kSucceeded, core::FailureClass::kNone, 1, "r3", 0,
                            now + 5},
      core::JournalRetryWait{JobId{4}, 1, now + kHour, "e4", core::FailureClass::kRetryable},
      core::JournalStarted{JobId{5}, 1, now + 6},
      core::JournalRequeued{JobId{5}, 0},
      accepted(6, "d"),
      accepted(7, "d"),
      accepted(6, "d"),  // a second accept in the same batch does nothing
      core::JournalTerminal{JobId{6}, JobState::kDead, core::FailureClass::kPermanent, 1, "e6",
                            now + 7, now + 8},
      core::JournalTerminal{JobId{7}, JobState::kDead, core::FailureClass::kPermanent, 1, "e7",
                            now + 9, now + 10},  // the newer dead letter: 6 is trimmed
      core::JournalTerminal{JobId{1}, JobState::kFailed, core::FailureClass::kPermanent, 1, "e1", 0,
                            now + 11},
      core::JournalTerminal{JobId{2}, JobState::kSucceeded, core::FailureClass::kNone, 1, "r2",
                            now + 12, now + 13},
      with_key(8),
      core::JournalStarted{JobId{8}, 1, now + 14},
      core::JournalRetryWait{JobId{8}, 1, now + 15, "e8", core::FailureClass::kRetryable},
      core::JournalStarted{JobId{8}, 2, now + 16},
      core::JournalTerminal{JobId{8}, JobState::kCancelled, core::FailureClass::kCancelled, 2, "c8",
                            0, now + 17},
  };
  const std::map<JobState, std::uint64_t> expected_rows{
      {JobState::kQueued, 1}, {JobState::kRetryWait, 1}, {JobState::kSucceeded, 2},
      {JobState::kFailed, 1}, {JobState::kDead, 1},      {JobState::kCancelled, 1}};

  const core::JournalAccepted job_100 = accepted(100);  // holds a commit of the folded store

  // The reference: every entry committed on its own, as INSERT or UPDATE.
  const std::string one_by_one = (dir_ / "one-by-one.db").string();
  const std::string folded = (dir_ / "folded.db").string();
  for (const auto& path : {one_by_one, folded}) {
    options_.path = path;
    open().reset();
    ASSERT_EQ(run_sql(path, kCountUpdates), -1);
  }
  {
    Recorder recorder;
    options_.observer = &recorder;
    options_.path = one_by_one;
    auto journal = open();
    for (const auto& entry : earlier) journal->append(entry);
    journal->append(job_100);  // as below
    for (const auto& entry : batch) {
      journal->append(entry);
      ASSERT_EQ(wait_durable(*journal), std::nullopt);
    }
    auto with_100 = expected_rows;
    ++with_100[JobState::kQueued];
    EXPECT_TRUE(recorder.wait_rows(with_100));
  }
  {
    testing::FaultyVfs vfs;
    Recorder recorder;
    options_.observer = &recorder;
    options_.path = folded;
    auto journal = open();
    for (const auto& entry : earlier) journal->append(entry);
    ASSERT_EQ(wait_durable(*journal), std::nullopt);
    // A commit held in its fsync: what is appended meanwhile is one batch.
    testing::FaultyVfs::hold_syncs();
    journal->append(job_100);
    ASSERT_TRUE(testing::FaultyVfs::wait_for_held_sync(kBound));
    std::uint64_t commits = recorder.commits();
    for (const auto& entry : batch) journal->append(entry);
    testing::FaultyVfs::release_syncs();
    ASSERT_EQ(wait_durable(*journal), std::nullopt);
    EXPECT_EQ(recorder.commits(), commits + 2);
    EXPECT_EQ(recorder.entries(), earlier.size() + 1 + batch.size());
    EXPECT_EQ(recorder.accepted_entries(), earlier.size() + 1 + 8);
    auto with_100 = expected_rows;
    ++with_100[JobState::kQueued];
    EXPECT_TRUE(recorder.wait_rows(with_100));
  }
  // The job accepted earlier (1) and the known one accepted again (2) were
  // updated; the jobs accepted in the batch were written once each.
  EXPECT_EQ(run_sql(one_by_one, "SELECT count(*) FROM updates"), 16);
  EXPECT_EQ(run_sql(folded, "SELECT count(*) FROM updates"), 2 + 2);
  EXPECT_EQ(table_rows(folded), table_rows(one_by_one));
  EXPECT_EQ(table_rows(folded).size(), 8u);  // 6 trimmed
}

TEST_F(SqliteJournalTest, WalStaysBoundedUnderALoadThatNeverPauses) {
  auto journal = open();
  // 1 KiB payloads: a round of 500 accepts adds about 130 pages to the
  // WAL, the whole load about 60,000 (240 MiB), far past the cap.
  std::mt19937_64 rng(13);
  constexpr int kRounds = 480;
  constexpr int kPerRound = 500;
  std::mutex m;
  std::condition_variable cv;
  int durable_rounds = 0;
  for (int round = 0; round < kRounds; ++round) {
    // Rounds are pending when a commit ends: the writer never idles.
    {
      std::unique_lock lock(m);
      ASSERT_TRUE(cv.wait_for(lock, kBound, [&] { return durable_rounds >= round - 4; }));
    }
    for (int i = 0; i < kPerRound; ++i)
      journal->append(accepted(rng(), "t", std::string(1024, 'x')));
    journal->after_durable([&](const core::JournalFailure* failure) {
      EXPECT_EQ(failure, nullptr);
      std::lock_guard lock(m);
      ++durable_rounds;
      cv.notify_all();
    });
  }
  {
    std::unique_lock lock(m);
    ASSERT_TRUE(cv.wait_for(lock, kBound, [&] { return durable_rounds == kRounds; }));
  }
  // The WAL file keeps its largest size (up to journal_size_limit, 64 MiB):
  // 2,500 pages and a commit (of a few rounds), not the whole load.
  EXPECT_LE(fs::file_size(options_.path + "-wal"), 32u << 20);
}

// ---- faults ----

TEST_F(SqliteJournalTest, CommitsGoOnWhileACheckpointWaitsForItsFsync) {
  testing::FaultyVfs vfs;
  auto journal = open();
  struct Release {
    ~Release() { testing::FaultyVfs::release_syncs(); }  // before the journal closes
  } release;
  // A checkpoint syncs the database file; a commit syncs only the WAL.
  testing::FaultyVfs::hold_database_syncs();
  const std::string payload(4000, 'x');  // about a page a job
  std::uint64_t id = 0;
  for (; id < 1200; ++id) journal->append(accepted(id + 1, "t", payload));  // past 1,000 pages
  ASSERT_EQ(wait_durable(*journal), std::nullopt);
  ASSERT_TRUE(testing::FaultyVfs::wait_for_held_sync(kBound));  // a checkpoint runs
  for (int round = 0; round < 10; ++round) {
    journal->append(accepted(++id));
    ASSERT_EQ(wait_durable(*journal), std::nullopt) << "round " << round;
  }
  EXPECT_EQ(journal->failure(), std::nullopt);
}

TEST_F(SqliteJournalTest, FsyncFailureFailsTheJournalForGood) {
  testing::FaultyVfs vfs;
  auto journal = open();
  std::atomic<int> handler_calls{0};
  std::thread::id handler_thread;
  std::promise<void> handled;
  journal->on_failure([&](const core::JournalFailure& failure) {
    EXPECT_NE(failure.message.find(options_.path), std::string::npos) << failure.message;
    handler_thread = std::this_thread::get_id();
    if (handler_calls.fetch_add(1) == 0) handled.set_value();
  });
  journal->append(accepted(1));
  EXPECT_EQ(wait_durable(*journal), std::nullopt);
  EXPECT_FALSE(journal->failure());

  testing::FaultyVfs::fail_sync = true;
  journal->append(accepted(2));
  auto failure = wait_durable(*journal);
  ASSERT_TRUE(failure);
  EXPECT_NE(failure->find(options_.path), std::string::npos) << *failure;
  EXPECT_NE(failure->find("fsync"), std::string::npos) << *failure;
  ASSERT_TRUE(journal->failure());
  EXPECT_EQ(journal->failure()->message, *failure);
  // The handler runs on the writer once the failure is set; a barrier taken
  // meanwhile may be failed first, on the caller's thread.
  ASSERT_EQ(handled.get_future().wait_for(kBound), std::future_status::ready);
  EXPECT_EQ(handler_calls.load(), 1);
  EXPECT_NE(handler_thread, std::this_thread::get_id());  // the writer thread

  // For good: the disk works again, the journal does not.
  testing::FaultyVfs::fail_sync = false;
  journal->append(accepted(3));
  EXPECT_EQ(wait_durable(*journal), failure);
  EXPECT_EQ(handler_calls.load(), 1);
  journal.reset();

  journal = open();
  std::vector<std::uint64_t> ids;
  for (const auto& job : recover_all(*journal)) ids.push_back(job.request.id.value);
  // 1 was durable; 2 may or may not be (its fsync failed); 3 was never written.
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), 1u);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 3u), 0);
}

TEST_F(SqliteJournalTest, WriteFailureFailsEveryWaitingBarrier) {
  testing::FaultyVfs vfs;
  auto journal = open();
  journal->append(accepted(1));
  EXPECT_EQ(wait_durable(*journal), std::nullopt);
  testing::FaultyVfs::fail_write = true;
  journal->append(accepted(2));
  auto failure = wait_durable(*journal);
  ASSERT_TRUE(failure);
  EXPECT_NE(failure->find(options_.path), std::string::npos) << *failure;
  EXPECT_NE(failure->find("write"), std::string::npos) << *failure;
  testing::FaultyVfs::fail_write = false;
}

TEST_F(SqliteJournalTest, FullStoreFailsWithDiskFull) {
  options_.max_page_count = 64;  // 256 KiB at the default page size
  auto journal = open();
  const std::string payload(4096, 'x');
  std::optional<std::string> failure;
  for (std::uint64_t id = 1; id <= 1000 && !failure; ++id) {
    journal->append(accepted(id, "t", payload));
    failure = wait_durable(*journal);
  }
  ASSERT_TRUE(failure) << "the store never filled";
  EXPECT_NE(failure->find("disk full"), std::string::npos) << *failure;
  EXPECT_NE(failure->find(options_.path), std::string::npos) << *failure;
}

std::string open_error(const SqliteJournalOptions& options) {
  try {
    open_sqlite_journal(options);
  } catch (const StoreError& error) {
    return error.what();
  }
  return "";
}

TEST_F(SqliteJournalTest, SecondOpenOfTheSameStoreIsRefusedWithTheHoldersPid) {
  auto journal = open();
  std::string error = open_error(options_);
  EXPECT_NE(error.find("in use by another trouped"), std::string::npos) << error;
  EXPECT_NE(error.find("pid " + std::to_string(::getpid())), std::string::npos) << error;
  EXPECT_NE(error.find(options_.path), std::string::npos) << error;
  journal.reset();
  EXPECT_EQ(open_error(options_), "");  // the lock goes with the journal
}

TEST_F(SqliteJournalTest, GarbageFileIsReportedCorruptWithWhatToDo) {
  {
    std::ofstream file(options_.path, std::ios::binary);
    for (int i = 0; i < 8192; ++i) file.put(static_cast<char>((i * 7919) & 0xff));
  }
  std::string error = open_error(options_);
  EXPECT_NE(error.find(options_.path + " is corrupt"), std::string::npos) << error;
  EXPECT_NE(error.find("move it aside"), std::string::npos) << error;
  EXPECT_NE(error.find("restore a backup"), std::string::npos) << error;
}

TEST_F(SqliteJournalTest, CorruptPagesAreReportedAtOpenOrRecovery) {
  {
    auto journal = open();
    for (std::uint64_t id = 1; id <= 200; ++id)
      journal->append(accepted(id, "t", std::string(1000, 'p')));
    EXPECT_EQ(wait_durable(*journal), std::nullopt);
  }  // closing folds the WAL into the database file
  {
    // Garbage over every page but the first (the header and the schema).
    std::fstream file(options_.path, std::ios::binary | std::ios::in | std::ios::out);
    file.seekp(4096);
    for (int i = 0; i < 16 * 4096; ++i) file.put(static_cast<char>((i * 7919 + 13) & 0xff));
  }
  std::string error;
  try {
    auto journal = open();
    recover_all(*journal);
  } catch (const StoreError& e) {
    error = e.what();
  }
  EXPECT_NE(error.find(options_.path + " is corrupt"), std::string::npos) << error;
  EXPECT_NE(error.find("restore a backup"), std::string::npos) << error;
}

TEST_F(SqliteJournalTest, NewerSchemaIsRefused) {
  open()->close();
  ASSERT_EQ(run_sql(options_.path, "PRAGMA user_version = 3"), -1);
  std::string error = open_error(options_);
  EXPECT_NE(error.find("newer trouped (schema version 3; this one reads up to 2"),
            std::string::npos)
      << error;
}

/// The indexes of the jobs table other than the two partial ones.
constexpr const char* kOtherIndexes =
    "SELECT count(*) FROM pragma_index_list('jobs') WHERE name NOT IN ('jobs_expiry', "
    "'jobs_dead')";

TEST_F(SqliteJournalTest, StoreHasNoIndexOnTheRandomJobIds) {
  {
    auto journal = open();
    journal->append(accepted(1));
    EXPECT_EQ(wait_durable(*journal), std::nullopt);
  }
  // Each accept would dirty a random page of an index on id.
  EXPECT_EQ(run_sql(options_.path, kOtherIndexes), 0);
  EXPECT_EQ(run_sql(options_.path, "PRAGMA user_version"), 2);
}

TEST_F(SqliteJournalTest, LiveRowsOfAnEarlierRunAreUpdatedHoweverTheJournalIsOpened) {
  // The writer finds a row by seq from its map of live rows, filled by the
  // observer's scan at open, by recover(), or by the first commit.
  enum class Mode { kObserver, kRecover, kNeither };
  const std::int64_t now = now_ns();
  for (Mode mode : {Mode::kObserver, Mode::kRecover, Mode::kNeither}) {
    SCOPED_TRACE(static_cast<int>(mode));
    options_.path = (dir_ / ("mode" + std::to_string(static_cast<int>(mode)) + ".db")).string();
    options_.observer = nullptr;
    {
      auto journal = open();
      for (std::uint64_t id : {11, 12, 13}) journal->append(accepted(id));
      ASSERT_EQ(wait_durable(*journal), std::nullopt);
    }
    Recorder recorder;
    if (mode == Mode::kObserver) options_.observer = &recorder;
    {
      auto journal = open();
      if (mode == Mode::kRecover) {
        EXPECT_EQ(recover_all(*journal).size(), 3u);
      }
      journal->append(core::JournalStarted{JobId{11}, 1, now});
      journal->append(core::JournalTerminal{JobId{12}, JobState::kSucceeded,
                                            core::FailureClass::kNone, 1, "r12", now, now + 1});
      journal->append(core::JournalStarted{JobId{12}, 2, now + 2});  // terminal: nothing
      ASSERT_EQ(wait_durable(*journal), std::nullopt);
    }
    options_.observer = nullptr;
    auto journal = open();
    auto jobs = recover_all(*journal);
    ASSERT_EQ(jobs.size(), 3u);
    EXPECT_EQ(jobs[0].request.id, JobId{11});
    EXPECT_EQ(jobs[0].state, JobState::kRunning);
    EXPECT_EQ(jobs[1].request.id, JobId{13});
    EXPECT_EQ(jobs[1].state, JobState::kQueued);
    EXPECT_EQ(jobs[2].request.id, JobId{12});
    EXPECT_EQ(jobs[2].state, JobState::kSucceeded);
    EXPECT_EQ(jobs[2].attempts, 1u);
    EXPECT_EQ(jobs[2].output, "r12");
  }
}

TEST_F(SqliteJournalTest, SchemaVersion1StoreIsMigratedAndItsLiveRowsUpdated) {
  const std::int64_t now = now_ns();
  const std::string far = std::to_string(now + 10 * kHour);
  // A store as schema version 1 left it: a UNIQUE index on id.
  const std::string v1 =
      "CREATE TABLE jobs (seq INTEGER PRIMARY KEY, id INTEGER NOT NULL UNIQUE, troupe TEXT NOT "
      "NULL, state INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, payload BLOB NOT NULL, "
      "key TEXT NOT NULL DEFAULT '', idempotency_key TEXT NOT NULL DEFAULT '', metadata BLOB NOT "
      "NULL DEFAULT x'', submitted_ns INTEGER NOT NULL DEFAULT 0, started_ns INTEGER NOT NULL "
      "DEFAULT 0, finished_ns INTEGER NOT NULL DEFAULT 0, next_run_ns INTEGER NOT NULL DEFAULT 0, "
      "deadline_ns INTEGER NOT NULL DEFAULT 0, timeout_ns INTEGER NOT NULL DEFAULT 0, failure "
      "INTEGER NOT NULL DEFAULT 0, output BLOB NOT NULL DEFAULT x'', expires_ns INTEGER);"
      "CREATE INDEX jobs_expiry ON jobs(expires_ns) WHERE expires_ns IS NOT NULL;"
      "CREATE INDEX jobs_dead ON jobs(troupe, finished_ns) WHERE state = 5;"
      "INSERT INTO jobs(seq, id, troupe, state, attempts, payload, key, submitted_ns) VALUES"
      " (1, 70, 't', 0, 0, 'p70', 'k70', 11),"
      " (2, -30, 't', 1, 1, 'p30', '', 12);"
      "INSERT INTO jobs(seq, id, troupe, state, attempts, payload, output, finished_ns, "
      "expires_ns) VALUES (3, 50, 't', 3, 1, 'p50', 'r50', 13, " +
      far +
      "),"
      " (4, 90, 'd', 5, 2, 'p90', 'e90', 14, NULL);"
      "PRAGMA user_version = 1;";
  ASSERT_EQ(run_sql(options_.path, v1.c_str()), -1);
  ASSERT_EQ(run_sql(options_.path, kOtherIndexes), 1);  // sqlite_autoindex_jobs_1

  const JobId job_30{std::bit_cast<std::uint64_t>(std::int64_t{-30})};
  {
    auto journal = open();
    auto jobs = recover_all(*journal);
    std::vector<std::uint64_t> ids;
    for (const auto& job : jobs) ids.push_back(job.request.id.value);
    EXPECT_EQ(ids, (std::vector<std::uint64_t>{70, job_30.value, 50, 90}));
    ASSERT_EQ(jobs.size(), 4u);
    EXPECT_EQ(jobs[0].request.payload, "p70");
    EXPECT_EQ(jobs[0].request.key, "k70");
    EXPECT_EQ(jobs[0].request.submitted_ns, 11);
    EXPECT_EQ(jobs[1].state, JobState::kRunning);
    EXPECT_EQ(jobs[2].output, "r50");
    EXPECT_EQ(jobs[3].state, JobState::kDead);
    // The live rows read at open are updated by seq; terminal rows are
    // never updated again; an accept of a live id keeps its row.
    journal->append(core::JournalStarted{JobId{70}, 1, now});
    journal->append(core::JournalTerminal{job_30, JobState::kSucceeded, core::FailureClass::kNone,
                                          1, "r30", 0, now + 1});
    journal->append(core::JournalStarted{JobId{50}, 2, now + 2});
    journal->append(accepted(70, "t", "other"));
    journal->append(accepted(60));
    EXPECT_EQ(wait_durable(*journal), std::nullopt);
  }
  EXPECT_EQ(run_sql(options_.path, "PRAGMA user_version"), 2);
  EXPECT_EQ(run_sql(options_.path, kOtherIndexes), 0);
  EXPECT_EQ(run_sql(options_.path, "SELECT count(*) FROM jobs"), 5);
  EXPECT_EQ(run_sql(options_.path, "SELECT max(seq) FROM jobs WHERE id = 60"), 5);
  auto journal = open();
  auto jobs = recover_all(*journal);
  ASSERT_EQ(jobs.size(), 5u);
  EXPECT_EQ(jobs[0].request.id, JobId{70});
  EXPECT_EQ(jobs[0].state, JobState::kRunning);
  EXPECT_EQ(jobs[0].request.payload, "p70");
  EXPECT_EQ(jobs[1].request.id, JobId{60});
  EXPECT_EQ(jobs[2].request.id, job_30);
  EXPECT_EQ(jobs[2].state, JobState::kSucceeded);
  EXPECT_EQ(jobs[2].output, "r30");
  EXPECT_EQ(jobs[3].request.id, JobId{50});
  EXPECT_EQ(jobs[3].state, JobState::kSucceeded);
  EXPECT_EQ(jobs[3].attempts, 1u);
  EXPECT_EQ(jobs[4].request.id, JobId{90});
}

TEST_F(SqliteJournalTest, MissingDirectoriesAreCreatedPrivate) {
  options_.path = (dir_ / "a" / "b" / "jobs.db").string();
  open()->close();
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "a" / "b").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(SqliteJournalTest, DirectoryThatCannotBeCreatedIsReported) {
  std::ofstream(dir_ / "file") << "x";
  options_.path = (dir_ / "file" / "sub" / "jobs.db").string();
  std::string error = open_error(options_);
  EXPECT_NE(error.find("cannot create"), std::string::npos) << error;
  EXPECT_NE(error.find((dir_ / "file").string()), std::string::npos) << error;
}

}  // namespace
}  // namespace troupe::store
