// The PostgreSQL journal against a real server (tests/support's
// PostgresServer; label `cluster`): durability after the barrier, claims of
// released and expired work, fencing, cancels from another replica, an
// outage, and two replicas creating the schema at once.

#include "store/pg_journal.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "journal_test_support.h"
#include "store/pg_schema.h"
#include "tests/support/postgres_server.h"

namespace troupe::store {
namespace {

using namespace std::chrono_literals;
using core::JobId;
using core::JobState;
using test::kBound;
using test::now_ns;
using test::wait_durable;

using JobAnswer = core::StoreAnswer<std::optional<core::RecoveredJob>>;

/// Journal::find()'s answer, waited for with a bound.
JobAnswer lookup(core::Journal& journal, JobId id) {
  auto promise = std::make_shared<std::promise<JobAnswer>>();
  auto future = promise->get_future();
  journal.find(id, [promise](JobAnswer answer) { promise->set_value(std::move(answer)); });
  if (future.wait_for(kBound) != std::future_status::ready) {
    ADD_FAILURE() << "find not answered within " << kBound.count() << " s";
    return core::StoreUnavailable{"not answered"};
  }
  return future.get();
}

/// The row find() found (nullopt: the store has no such job); a failure
/// when the store did not answer.
std::optional<core::RecoveredJob> find(core::Journal& journal, JobId id) {
  JobAnswer answer = lookup(journal, id);
  if (const auto* down = std::get_if<core::StoreUnavailable>(&answer)) {
    ADD_FAILURE() << "find not answered: " << down->why;
    return std::nullopt;
  }
  return std::get<std::optional<core::RecoveredJob>>(std::move(answer));
}

core::JournalAccepted accepted(std::uint64_t id, std::string troupe = "t") {
  core::JournalAccepted a;
  a.id = JobId{id};
  a.troupe = std::move(troupe);
  a.payload = std::string("pay\0load", 8);
  a.key = "k";
  a.metadata = {{"trace", "abc"}};
  a.submitted_ns = now_ns();
  return a;
}

core::JournalTerminal succeeded(std::uint64_t id, std::string output = "out") {
  core::JournalTerminal t;
  t.id = JobId{id};
  t.state = JobState::kSucceeded;
  t.attempts = 1;
  t.output = std::move(output);
  t.started_ns = now_ns();
  t.finished_ns = now_ns();
  return t;
}

/// What a journal's cluster hooks saw; waits on it with a bound.
class Hooks {
 public:
  explicit Hooks(std::size_t room) : room_(room) {}

  core::ClusterHooks hooks() {
    return core::ClusterHooks{
        .room = [this](std::string_view) { return room_.load(); },
        .claimed = [this](core::RecoveredJob&& job) { record([&] { claimed_.push_back(job); }); },
        .lost = [this](JobId id) { record([&] { lost_.push_back(id); }); },
        .cancel = [this](JobId id) { record([&] { cancelled_.push_back(id); }); },
        .availability =
            [this](bool up, const std::string& why) {
              record([&] { availability_.push_back(up ? "up" : "down: " + why); });
            },
        .leadership = {},
        .permits = {},
        .demand = {},
        .tokens = {},
        .token_demand = {},
    };
  }

  /// Waits until `done` holds (under the lock); false after kBound.
  bool wait(const std::function<bool(Hooks&)>& done) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, kBound, [&] { return done(*this); });
  }
  /// Whether `now` holds already (under the lock), without waiting.
  bool holds(const std::function<bool(Hooks&)>& now) {
    std::lock_guard lock(mutex_);
    return now(*this);
  }

  std::atomic<std::size_t> room_;
  std::vector<core::RecoveredJob> claimed_;
  std::vector<JobId> lost_;
  std::vector<JobId> cancelled_;
  std::vector<std::string> availability_;

 private:
  void record(const std::function<void()>& change) {
    {
      std::lock_guard lock(mutex_);
      change();
    }
    changed_.notify_all();
  }
  std::mutex mutex_;
  std::condition_variable changed_;
};

class PgJournalTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = troupe::test::PostgresServer::start().release(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    // A database per test: each starts from no schema.
    database_ = "t" + std::to_string(++databases_);
    server_->create_database(database_);
  }

  PgJournalOptions options(std::string replica) {
    PgJournalOptions o;
    o.dsn = server_->dsn(database_);
    o.replica = std::move(replica);
    o.lease = 2s;
    o.heartbeat = 100ms;
    o.poll = 200ms;
    o.result_ttl = 1h;
    o.idempotency_ttl = 1h;
    return o;
  }

  /// Opens a journal with `hooks` set and claims started (recover()).
  std::unique_ptr<core::Journal> open(const PgJournalOptions& o, Hooks* hooks) {
    auto journal = open_pg_journal(o);
    if (hooks != nullptr) journal->set_cluster_hooks(hooks->hooks());
    journal->recover([](core::RecoveredJob&&) { ADD_FAILURE() << "a shared journal recovers"; });
    return journal;
  }

  /// Runs `sql` on a connection of the test's own.
  void sql(const std::string& text) {
    PGconn* conn = PQconnectdb(server_->dsn(database_).c_str());
    ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
    PGresult* result = PQexec(conn, text.c_str());
    EXPECT_TRUE(PQresultStatus(result) == PGRES_COMMAND_OK ||
                PQresultStatus(result) == PGRES_TUPLES_OK)
        << PQresultErrorMessage(result);
    PQclear(result);
    PQfinish(conn);
  }

  /// The first column of `text`'s answer as text, its rows joined by
  /// newlines (the last statement's, when it has several).
  std::string sql_value(const std::string& text) {
    PGconn* conn = PQconnectdb(server_->dsn(database_).c_str());
    EXPECT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
    PGresult* result = PQexec(conn, text.c_str());
    std::string value;
    if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) > 0) {
      for (int row = 0; row < PQntuples(result); ++row) {
        value += (row > 0 ? "\n" : "") + std::string(PQgetvalue(result, row, 0));
      }
    } else {
      ADD_FAILURE() << text << ": " << PQresultErrorMessage(result);
    }
    PQclear(result);
    PQfinish(conn);
    return value;
  }

  static troupe::test::PostgresServer* server_;
  static int databases_;
  std::string database_;
};

troupe::test::PostgresServer* PgJournalTest::server_ = nullptr;
int PgJournalTest::databases_ = 0;

TEST_F(PgJournalTest, AcceptAndTerminalAreDurableAfterTheBarrier) {
  auto writer = open(options("a"), nullptr);
  auto reader = open(options("b"), nullptr);
  EXPECT_TRUE(writer->shared());
  // Folded: accept and terminal in one commit.
  writer->append(accepted(1));
  writer->append(succeeded(1, "one"));
  // On their own: the terminal is a fenced update of a row written before.
  writer->append(accepted(2));
  ASSERT_EQ(wait_durable(*writer), std::nullopt);
  core::JournalStarted started{JobId{2}, 1, now_ns()};
  writer->append(started);
  writer->append(succeeded(2, "two"));
  ASSERT_EQ(wait_durable(*writer), std::nullopt);

  for (auto [id, output] : {std::pair<std::uint64_t, const char*>{1, "one"}, {2, "two"}}) {
    auto job = find(*reader, JobId{id});
    ASSERT_TRUE(job) << id;
    EXPECT_EQ(job->state, JobState::kSucceeded);
    EXPECT_EQ(job->output, output);
    EXPECT_EQ(job->attempts, 1u);
    EXPECT_EQ(job->request.troupe, "t");
    EXPECT_EQ(job->request.payload, std::string("pay\0load", 8));
    EXPECT_EQ(job->request.metadata, (core::Metadata{{"trace", "abc"}}));
  }
  EXPECT_FALSE(find(*reader, JobId{3}));
}

class CountingObserver : public core::JournalObserver {
 public:
  void committed(std::chrono::nanoseconds, std::size_t entries, std::size_t accepted) override {
    entries_ += entries;
    accepted_ += accepted;
  }
  std::atomic<std::size_t> entries_{0}, accepted_{0};
};

class ExpiryObserver : public core::JournalObserver {
 public:
  void expired(std::uint64_t rows) override { rows_ += rows; }
  std::atomic<std::uint64_t> rows_{0};
};

TEST_F(PgJournalTest, ABacklogOfExpiredRowsGoesInBatchesBackToBackNotOnePerHeartbeat) {
  open_pg_journal(options("schema"));
  // 2,500 rows finished long ago (2.5 batches) and one that is not expired.
  sql("INSERT INTO troupe_jobs (id, troupe, state, submitted_ns, finished_ns) SELECT g, 't', 3, "
      "1, 1 FROM generate_series(1, 2500) g");
  sql("INSERT INTO troupe_jobs (id, troupe, state, submitted_ns, finished_ns) VALUES (9999, "
      "'t', 3, " +
      std::to_string(now_ns()) + ", " + std::to_string(now_ns()) + ")");
  ExpiryObserver observer;
  PgJournalOptions o = options("a");
  o.heartbeat = 2s;  // retention runs at a heartbeat tick: the first after 2 s
  o.lease = 10s;
  o.observer = &observer;
  auto journal = open(o, nullptr);
  const auto until = std::chrono::steady_clock::now() + kBound;
  while (observer.rows_.load() < 2500 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(20ms);  // polling the observer's count
  }
  EXPECT_EQ(observer.rows_.load(), 2500u);
  EXPECT_EQ(sql_value("SELECT string_agg(id::text, ',') FROM troupe_jobs"), "9999");
  // All three batches in the first tick: the replica has renewed its lease
  // once (at 2 s), not three times (a batch per heartbeat: 6 s).
  EXPECT_EQ(sql_value("SELECT heartbeat_at < started_at + interval '4 seconds' FROM "
                      "troupe_replicas WHERE name = 'a'"),
            "t");
}

TEST_F(PgJournalTest, SeveralUpdatesOfAJobInOneCommitApplyInOrder) {
  CountingObserver observer;
  PgJournalOptions o = options("a");
  o.observer = &observer;
  auto journal = open(o, nullptr);
  journal->append(accepted(1));
  journal->append(accepted(2));
  journal->append(accepted(3));
  ASSERT_EQ(wait_durable(*journal), std::nullopt);
  // One commit: job 1 fails once, retries and succeeds; job 2 fails once;
  // job 3 fails once and runs again.
  journal->append(core::JournalStarted{JobId{3}, 1, now_ns()});
  journal->append(core::JournalRetryWait{JobId{3}, 1, 7, "e", core::FailureClass::kRetryable});
  journal->append(core::JournalStarted{JobId{3}, 2, 1234});
  journal->append(core::JournalStarted{JobId{1}, 1, now_ns()});
  journal->append(core::JournalStarted{JobId{2}, 1, now_ns()});
  journal->append(
      core::JournalRetryWait{JobId{1}, 1, now_ns(), "first try", core::FailureClass::kRetryable});
  journal->append(core::JournalRetryWait{JobId{2}, 1, 42, "boom", core::FailureClass::kRetryable});
  journal->append(core::JournalStarted{JobId{1}, 2, now_ns()});
  auto done = succeeded(1, "second try");
  done.attempts = 2;
  journal->append(done);
  ASSERT_EQ(wait_durable(*journal), std::nullopt);

  auto one = find(*journal, JobId{1});
  ASSERT_TRUE(one);
  EXPECT_EQ(one->state, JobState::kSucceeded);
  EXPECT_EQ(one->attempts, 2u);
  EXPECT_EQ(one->output, "second try");
  auto two = find(*journal, JobId{2});
  ASSERT_TRUE(two);
  EXPECT_EQ(two->state, JobState::kRetryWait);
  EXPECT_EQ(two->next_run_ns, 42);
  EXPECT_EQ(two->output, "boom");
  EXPECT_EQ(two->failure, core::FailureClass::kRetryable);
  auto three = find(*journal, JobId{3});
  ASSERT_TRUE(three);
  EXPECT_EQ(three->state, JobState::kRunning);
  EXPECT_EQ(three->attempts, 2u);
  EXPECT_EQ(three->started_ns, 1234);
  EXPECT_EQ(observer.entries_.load(), 12u);
  EXPECT_EQ(observer.accepted_.load(), 3u);
}

TEST_F(PgJournalTest, AJobReleasedByOneReplicaIsClaimedByTheOther) {
  Hooks first_hooks(0), second_hooks(10);
  auto first = open(options("first"), &first_hooks);
  auto second = open(options("second"), &second_hooks);
  // Handed back by a drain: claimable, and the other is told.
  first->append(accepted(1));
  ASSERT_EQ(wait_durable(*first), std::nullopt);
  first->append(core::JournalStarted{JobId{1}, 1, now_ns()});
  first->append(core::JournalRequeued{JobId{1}, 0});
  // Still owned at close: released.
  first->append(accepted(2));
  ASSERT_EQ(wait_durable(*first), std::nullopt);
  first->close();

  ASSERT_TRUE(second_hooks.wait([](Hooks& h) { return h.claimed_.size() == 2; }))
      << second_hooks.claimed_.size();
  EXPECT_EQ(second_hooks.claimed_[0].request.id, JobId{1});  // oldest first
  EXPECT_EQ(second_hooks.claimed_[0].state, JobState::kQueued);
  EXPECT_EQ(second_hooks.claimed_[1].request.id, JobId{2});
  EXPECT_EQ(second_hooks.claimed_[1].request.payload, std::string("pay\0load", 8));
  // The new owner's writes land.
  second->append(succeeded(2));
  ASSERT_EQ(wait_durable(*second), std::nullopt);
  EXPECT_EQ(find(*second, JobId{2})->state, JobState::kSucceeded);
  EXPECT_TRUE(second_hooks.lost_.empty());
}

TEST_F(PgJournalTest, AReplicaStartingWhileJobsWaitClaimsThemWithoutWaitingForThePoll) {
  Hooks writer_hooks(0), late_hooks(10);
  auto writer = open(options("writer"), &writer_hooks);
  writer->append(accepted(1));
  writer->append(core::JournalRequeued{JobId{1}, 0});
  ASSERT_EQ(wait_durable(*writer), std::nullopt);
  // Job 1 was announced before the late replica listened, and its poll is
  // off: only the claim it makes once its connection is up finds the job.
  PgJournalOptions o = options("late");
  o.poll = 1h;
  auto late = open(o, &late_hooks);
  ASSERT_TRUE(late_hooks.wait([](Hooks& h) { return h.claimed_.size() == 1; }))
      << "a job waiting when the replica started was not claimed";
  EXPECT_EQ(late_hooks.claimed_[0].request.id, JobId{1});
}

TEST_F(PgJournalTest, CloseFromABarrierReleasesAndTheDestructorFinishesAtOnce) {
  Hooks other_hooks(10);
  PgJournalOptions o = options("closing");
  o.lease = 1h;  // close() waits at most this long for a server that is gone
  auto journal = open(o, nullptr);
  auto other = open(options("other"), &other_hooks);
  journal->append(accepted(1));
  auto closed = std::make_shared<std::promise<void>>();
  journal->after_durable([&, closed](const core::JournalFailure*) {
    journal->close();  // on the journal's thread: starts the close
    closed->set_value();
  });
  ASSERT_EQ(closed->get_future().wait_for(kBound), std::future_status::ready);
  journal->append(accepted(2));  // ignored: closed
  ASSERT_TRUE(other_hooks.wait([](Hooks& h) { return h.claimed_.size() == 1; }));
  EXPECT_EQ(other_hooks.claimed_[0].request.id, JobId{1});
  auto destroyed = std::async(std::launch::async, [&] { journal.reset(); });
  EXPECT_EQ(destroyed.wait_for(kBound), std::future_status::ready);
  EXPECT_FALSE(find(*other, JobId{2}));
}

TEST_F(PgJournalTest, AnExpiredReplicaLosesItsJobsAndCannotOverwriteTheNewOwner) {
  Hooks victim_hooks(0), taker_hooks(10);
  PgJournalOptions victim_options = options("victim");
  victim_options.lease = 1h;  // renewed only by this test's SQL below
  victim_options.heartbeat = 1h;
  auto victim = open(victim_options, &victim_hooks);
  auto taker = open(options("taker"), &taker_hooks);
  victim->append(accepted(1));
  victim->append(core::JournalStarted{JobId{1}, 1, now_ns()});
  ASSERT_EQ(wait_durable(*victim), std::nullopt);

  // The victim's lease runs out (as if its heartbeats had stopped).
  sql("UPDATE troupe_replicas SET expires_at = now() - interval '1 second' WHERE name = 'victim'");
  ASSERT_TRUE(taker_hooks.wait([](Hooks& h) { return h.claimed_.size() == 1; }));
  EXPECT_EQ(taker_hooks.claimed_[0].request.id, JobId{1});
  EXPECT_EQ(taker_hooks.claimed_[0].state, JobState::kRunning);  // the runtime counts a crash
  EXPECT_EQ(taker_hooks.claimed_[0].attempts, 1u);

  // The victim wakes up and writes its result: fenced out, told it lost.
  const std::uint64_t stale = victim->append(succeeded(1, "stale"));
  ASSERT_EQ(wait_durable(*victim), std::nullopt);
  // Its position is answered, and the loss was told before it was: a
  // reader that compares positions (core::JournalLink::outcome_settled_locked)
  // never takes the stale outcome for settled.
  EXPECT_GT(stale, 0u);
  EXPECT_GE(victim->durable_position(), stale);
  ASSERT_TRUE(victim_hooks.holds([](Hooks& h) { return h.lost_.size() == 1; }))
      << "the position was answered before the loss was told";
  EXPECT_EQ(victim_hooks.lost_[0], JobId{1});
  auto row = find(*taker, JobId{1});
  ASSERT_TRUE(row);
  EXPECT_EQ(row->state, JobState::kRunning);
  EXPECT_EQ(row->output, "");

  taker->append(succeeded(1, "fresh"));
  ASSERT_EQ(wait_durable(*taker), std::nullopt);
  EXPECT_EQ(find(*victim, JobId{1})->output, "fresh");
  EXPECT_TRUE(taker_hooks.lost_.empty());
}

TEST_F(PgJournalTest, RowsNobodyAnnouncedAreClaimedByThePollAndTheOrphanSweep) {
  Hooks writer_hooks(0), taker_hooks(0);
  auto writer = open(options("writer"), &writer_hooks);
  auto taker = open(options("taker"), &taker_hooks);
  writer->append(accepted(1));
  writer->append(accepted(2));
  ASSERT_EQ(wait_durable(*writer), std::nullopt);
  // Behind the journals' backs, without a NOTIFY: job 1 unowned (only the
  // poll finds it), job 2 owned by an incarnation that does not exist (only
  // the orphan sweep frees it).
  sql("UPDATE troupe_jobs SET owner = NULL WHERE id = 1");
  sql("UPDATE troupe_jobs SET owner = 999999 WHERE id = 2");
  taker_hooks.room_ = 10;
  ASSERT_TRUE(taker_hooks.wait([](Hooks& h) { return h.claimed_.size() == 2; }))
      << taker_hooks.claimed_.size();
  EXPECT_EQ(taker_hooks.claimed_[0].request.id, JobId{1});
  EXPECT_EQ(taker_hooks.claimed_[1].request.id, JobId{2});
}

TEST_F(PgJournalTest, RowsAReplicaOwnsWithoutKnowingGoBackToTheStoreWhenItReconnects) {
  Hooks writer_hooks(0), owner_hooks(0), taker_hooks(10);
  auto writer = open(options("writer"), &writer_hooks);
  auto owner = open(options("owner"), &owner_hooks);
  writer->append(accepted(1));
  writer->append(accepted(2));
  ASSERT_EQ(wait_durable(*writer), std::nullopt);
  // As a claim whose answer was lost with the connection leaves them: owned
  // by a live incarnation that does not know it (nobody would run them).
  sql("UPDATE troupe_jobs SET owner = (SELECT incarnation FROM troupe_replicas WHERE name = "
      "'owner') WHERE id IN (1, 2)");
  auto taker = open(options("taker"), &taker_hooks);
  // The connections drop (a network cut); the journals reconnect.
  sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
      "'trouped'");
  ASSERT_TRUE(taker_hooks.wait([](Hooks& h) { return h.claimed_.size() == 2; }))
      << taker_hooks.claimed_.size() << " of the 2 rows the owner did not know were claimed";
  EXPECT_EQ(taker_hooks.claimed_[0].request.id, JobId{1});
  EXPECT_EQ(taker_hooks.claimed_[1].request.id, JobId{2});
  EXPECT_TRUE(owner_hooks.lost_.empty());
}

TEST_F(PgJournalTest, CancelEndsAnUnownedJobAndReachesTheOwnerOfAnOwnedOne) {
  Hooks owner_hooks(0), asker_hooks(0);
  auto owner = open(options("owner"), &owner_hooks);
  auto asker = open(options("asker"), &asker_hooks);
  owner->append(accepted(1));  // owned by `owner`
  owner->append(accepted(2));
  ASSERT_EQ(wait_durable(*owner), std::nullopt);
  owner->append(core::JournalRequeued{JobId{2}, 0});  // unowned, nobody has room
  ASSERT_EQ(wait_durable(*owner), std::nullopt);

  auto request_cancel = [&](JobId id) -> std::optional<core::RecoveredJob> {
    std::promise<JobAnswer> promise;
    auto future = promise.get_future();
    asker->request_cancel(id, [&](JobAnswer answer) { promise.set_value(std::move(answer)); });
    EXPECT_EQ(future.wait_for(kBound), std::future_status::ready);
    auto answer = future.get();
    EXPECT_TRUE(std::holds_alternative<std::optional<core::RecoveredJob>>(answer));
    auto* job = std::get_if<std::optional<core::RecoveredJob>>(&answer);
    return job != nullptr ? std::move(*job) : std::nullopt;
  };
  auto before = request_cancel(JobId{2});
  ASSERT_TRUE(before);
  EXPECT_EQ(before->state, JobState::kQueued);
  auto after = find(*asker, JobId{2});
  ASSERT_TRUE(after);
  EXPECT_EQ(after->state, JobState::kCancelled);
  EXPECT_EQ(after->failure, core::FailureClass::kCancelled);

  before = request_cancel(JobId{1});
  ASSERT_TRUE(before);
  EXPECT_EQ(before->state, JobState::kQueued);
  ASSERT_TRUE(owner_hooks.wait([](Hooks& h) { return h.cancelled_.size() == 1; }));
  EXPECT_EQ(owner_hooks.cancelled_[0], JobId{1});
  EXPECT_EQ(find(*asker, JobId{1})->state, JobState::kQueued);  // the owner ends it
  EXPECT_FALSE(request_cancel(JobId{3}));
}

TEST_F(PgJournalTest, AnOutageIsReportedAndABarrierTakenDuringItCompletesAfterIt) {
  Hooks hooks(0);
  auto journal = open(options("a"), &hooks);
  journal->append(accepted(1));
  ASSERT_EQ(wait_durable(*journal), std::nullopt);

  server_->stop();
  ASSERT_TRUE(hooks.wait([](Hooks& h) { return !h.availability_.empty(); }));
  EXPECT_EQ(hooks.availability_[0].rfind("down: postgres store", 0), 0u) << hooks.availability_[0];

  journal->append(core::JournalStarted{JobId{1}, 1, now_ns()});
  journal->append(succeeded(1, "after"));
  journal->append(accepted(2));
  std::promise<std::optional<std::string>> barrier;
  auto durable = barrier.get_future();
  journal->after_durable([&](const core::JournalFailure* failure) {
    barrier.set_value(failure ? std::optional<std::string>(failure->message) : std::nullopt);
  });
  EXPECT_EQ(durable.wait_for(300ms), std::future_status::timeout);  // it waits

  server_->restart();
  ASSERT_EQ(durable.wait_for(kBound), std::future_status::ready);
  EXPECT_EQ(durable.get(), std::nullopt);
  ASSERT_TRUE(hooks.wait([](Hooks& h) { return h.availability_.size() == 2; }));
  EXPECT_EQ(hooks.availability_[1], "up");
  auto other = open(options("b"), nullptr);
  auto job = find(*other, JobId{1});
  ASSERT_TRUE(job);
  EXPECT_EQ(job->state, JobState::kSucceeded);
  EXPECT_EQ(job->output, "after");
  EXPECT_TRUE(find(*other, JobId{2}));
  EXPECT_TRUE(hooks.lost_.empty());
}

// Issue 14, "lookups during an outage": a lookup the server does not answer
// is StoreUnavailable naming the problem, never "no such job"; once the
// server is back the same lookups answer, "no such job" included.
TEST_F(PgJournalTest, LookupsTheServerDoesNotAnswerAreUnavailableNotUnknown) {
  Hooks hooks(0);
  auto writer = open(options("writer"), nullptr);
  auto asker = open(options("asker"), &hooks);
  writer->append(accepted(1));
  ASSERT_EQ(wait_durable(*writer), std::nullopt);
  auto dead_jobs = [&](const std::string& troupe) {
    std::promise<core::StoreAnswer<std::vector<core::RecoveredJob>>> promise;
    auto future = promise.get_future();
    asker->dead_jobs(troupe, 10, [&](core::StoreAnswer<std::vector<core::RecoveredJob>> answer) {
      promise.set_value(std::move(answer));
    });
    EXPECT_EQ(future.wait_for(kBound), std::future_status::ready);
    return future.get();
  };
  auto request_cancel = [&](JobId id) {
    std::promise<JobAnswer> promise;
    auto future = promise.get_future();
    asker->request_cancel(id, [&](JobAnswer answer) { promise.set_value(std::move(answer)); });
    EXPECT_EQ(future.wait_for(kBound), std::future_status::ready);
    return future.get();
  };

  server_->stop();
  ASSERT_TRUE(hooks.wait([](Hooks& h) { return !h.availability_.empty(); }));
  for (JobId id : {JobId{1}, JobId{2}}) {  // known, unknown: the store cannot say
    for (JobAnswer answer : {lookup(*asker, id), request_cancel(id)}) {
      const auto* down = std::get_if<core::StoreUnavailable>(&answer);
      ASSERT_NE(down, nullptr) << id.value << ": answered as if the store had";
      EXPECT_EQ(down->why.rfind("postgres store: ", 0), 0u) << down->why;
    }
  }
  auto dead = dead_jobs("t");
  ASSERT_TRUE(std::holds_alternative<core::StoreUnavailable>(dead));
  EXPECT_NE(std::get<core::StoreUnavailable>(dead).why, "");

  server_->restart();
  ASSERT_TRUE(hooks.wait([](Hooks& h) { return h.availability_.size() == 2; }));
  auto job = find(*asker, JobId{1});
  ASSERT_TRUE(job);
  EXPECT_EQ(job->state, JobState::kQueued);
  EXPECT_FALSE(find(*asker, JobId{2}));  // answered: no such job
  dead = dead_jobs("t");
  ASSERT_TRUE(std::holds_alternative<std::vector<core::RecoveredJob>>(dead));
  EXPECT_TRUE(std::get<std::vector<core::RecoveredJob>>(dead).empty());
  // The cancel asked during the outage changed nothing.
  EXPECT_EQ(sql_value("SELECT count(*) FROM troupe_jobs WHERE cancel_requested"), "0");
}

TEST_F(PgJournalTest, CommitsInFlightWhenTheServerStopsAreWrittenAfterItReturns) {
  Hooks hooks(0);
  auto journal = open(options("a"), &hooks);
  // Appenders that keep accepting and waiting, across the outage: every
  // acknowledged job must be in the store afterwards.
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> next{1};
  std::mutex mutex;
  std::condition_variable acked;
  std::vector<std::uint64_t> acknowledged;
  std::vector<std::string> failures;
  std::vector<std::thread> appenders;
  for (int t = 0; t < 4; ++t) {
    appenders.emplace_back([&] {
      while (!stop) {
        std::uint64_t id = next++;
        journal->append(accepted(id));
        journal->append(core::JournalStarted{JobId{id}, 1, now_ns()});
        auto failure = wait_durable(*journal);
        std::lock_guard lock(mutex);
        if (failure) {
          failures.push_back(*failure);
          return;
        }
        acknowledged.push_back(id);
        acked.notify_all();
        journal->append(succeeded(id));
      }
    });
  }
  auto acknowledged_count = [&] {
    std::lock_guard lock(mutex);
    return acknowledged.size();
  };
  auto wait_for_more = [&](std::size_t than) {
    std::unique_lock lock(mutex);
    return acked.wait_for(lock, kBound, [&] { return acknowledged.size() > than + 20; });
  };
  EXPECT_TRUE(wait_for_more(0));
  server_->stop();
  ASSERT_TRUE(hooks.wait([](Hooks& h) { return !h.availability_.empty(); }));
  std::size_t before_restart = acknowledged_count();
  server_->restart();
  EXPECT_TRUE(wait_for_more(before_restart));
  stop = true;
  for (auto& t : appenders) t.join();
  ASSERT_EQ(wait_durable(*journal), std::nullopt);
  EXPECT_TRUE(failures.empty()) << failures.front();
  EXPECT_EQ(journal->failure(), std::nullopt);
  ASSERT_TRUE(hooks.wait([](Hooks& h) { return h.availability_.size() == 2; }));
  EXPECT_EQ(hooks.availability_[1], "up");
  auto reader = open(options("b"), nullptr);
  for (std::uint64_t id : acknowledged) {
    auto job = find(*reader, JobId{id});
    ASSERT_TRUE(job) << id;
    EXPECT_EQ(job->state, JobState::kSucceeded) << id;
  }
  EXPECT_TRUE(hooks.lost_.empty());
}

TEST_F(PgJournalTest, TwoReplicasCreatingTheSchemaAtOnceBothOpen) {
  for (int round = 0; round < 3; ++round) {
    SetUp();  // a fresh database each round
    std::vector<std::future<std::string>> opened;
    for (int i = 0; i < 2; ++i) {
      opened.push_back(std::async(std::launch::async, [&, i] {
        try {
          open_pg_journal(options("r" + std::to_string(i)));
          return std::string();
        } catch (const StoreError& error) {
          return std::string(error.what());
        }
      }));
    }
    for (auto& f : opened) EXPECT_EQ(f.get(), "");
  }
}

TEST_F(PgJournalTest, ASchemaFromANewerTroupedIsRefused) {
  open_pg_journal(options("a"));
  sql("UPDATE troupe_schema SET version = 99");
  try {
    open_pg_journal(options("a"));
    ADD_FAILURE() << "opened";
  } catch (const StoreError& error) {
    EXPECT_NE(std::string(error.what()).find("newer trouped"), std::string::npos) << error.what();
  }
}

TEST_F(PgJournalTest, ProbeSaysWhetherTheServerAnswers) {
  EXPECT_EQ(probe_postgres(server_->dsn(database_), 5s), "");
  EXPECT_NE(probe_postgres("host=127.0.0.1 port=1 dbname=x user=x", 2s), "");
  PgJournalOptions unreachable;
  unreachable.dsn = "host=127.0.0.1 port=1 user=x";
  EXPECT_THROW(open_pg_journal(unreachable), StoreError);
}

// ---- The cluster view (h19) ----

core::ClusterLookup cluster(core::Journal& journal) {
  auto promise = std::make_shared<std::promise<core::ClusterLookup>>();
  auto future = promise->get_future();
  journal.cluster([promise](core::ClusterLookup answer) { promise->set_value(std::move(answer)); });
  if (future.wait_for(kBound) != std::future_status::ready) {
    ADD_FAILURE() << "cluster not answered within " << kBound.count() << " s";
    return {};
  }
  return future.get();
}

TEST_F(PgJournalTest, TheClusterViewShowsEveryReplicaAndEachTroupesUnfinishedJobs) {
  const std::int64_t before = now_ns();
  // No heartbeats during the test: nobody reaps the victim's expired row.
  auto quiet = [&](std::string name) {
    PgJournalOptions o = options(std::move(name));
    o.lease = 1h;
    o.heartbeat = 1h;
    return o;
  };
  auto writer = open(quiet("writer"), nullptr);
  auto looker = open(quiet("looker"), nullptr);
  auto victim = open(quiet("victim"), nullptr);
  // Troupe t: 1 and 2 queued (2 unowned), 3 running, 4 waiting to retry,
  // 5 finished. Troupe u: 6 running. Troupe v: finished only.
  auto oldest = accepted(1);
  oldest.submitted_ns = 1'000'000;
  writer->append(oldest);
  for (std::uint64_t id : {2, 3, 4, 5}) writer->append(accepted(id));
  writer->append(accepted(6, "u"));
  writer->append(accepted(7, "v"));
  ASSERT_EQ(wait_durable(*writer), std::nullopt);
  writer->append(core::JournalStarted{JobId{3}, 1, now_ns()});
  writer->append(core::JournalStarted{JobId{4}, 1, now_ns()});
  writer->append(
      core::JournalRetryWait{JobId{4}, 1, now_ns(), "e", core::FailureClass::kRetryable});
  writer->append(core::JournalStarted{JobId{6}, 1, now_ns()});
  writer->append(succeeded(5));
  writer->append(succeeded(7));
  ASSERT_EQ(wait_durable(*writer), std::nullopt);
  sql("UPDATE troupe_jobs SET owner = NULL WHERE id = 2");
  sql("UPDATE troupe_replicas SET expires_at = now() - interval '1 second' WHERE name = 'victim'");

  core::ClusterLookup answer = cluster(*looker);
  ASSERT_EQ(answer.status, core::ClusterLookup::Status::kOk) << answer.error;
  const core::ClusterView& view = answer.view;
  EXPECT_GE(view.now_ns, before);
  EXPECT_LE(view.now_ns, now_ns());
  ASSERT_EQ(view.replicas.size(), 3u);
  EXPECT_EQ(view.replicas[0].name, "looker");
  EXPECT_EQ(view.replicas[1].name, "victim");
  EXPECT_EQ(view.replicas[2].name, "writer");
  for (const auto& replica : view.replicas) {
    EXPECT_NE(replica.incarnation, 0) << replica.name;
    EXPECT_GE(replica.started_ns, before) << replica.name;
    EXPECT_LE(replica.started_ns, replica.heartbeat_ns) << replica.name;
    EXPECT_LE(replica.heartbeat_ns, view.now_ns) << replica.name;
    EXPECT_EQ(replica.alive, replica.name != "victim") << replica.name;
    if (replica.alive) {
      EXPECT_GT(replica.expires_ns, view.now_ns) << replica.name;
    } else {
      EXPECT_LT(replica.expires_ns, view.now_ns) << replica.name;
    }
  }
  ASSERT_EQ(view.troupes.size(), 2u);  // v has nothing unfinished
  EXPECT_EQ(view.troupes[0].name, "t");
  EXPECT_EQ(view.troupes[0].queue_depth, 3u);  // 1, 2 (unowned) and 4 (retry wait)
  EXPECT_EQ(view.troupes[0].running, 1u);
  EXPECT_EQ(view.troupes[0].oldest_queued_ns, 1'000'000);
  EXPECT_EQ(view.troupes[1].name, "u");
  EXPECT_EQ(view.troupes[1].queue_depth, 0u);
  EXPECT_EQ(view.troupes[1].running, 1u);
  EXPECT_EQ(view.troupes[1].oldest_queued_ns, 0);

  // A store of one process has no cluster; an unreachable one says so.
  EXPECT_EQ(cluster(*core::make_memory_journal()).status, core::ClusterLookup::Status::kNotShared);
  server_->stop();
  core::ClusterLookup down = cluster(*looker);
  server_->restart();
  EXPECT_EQ(down.status, core::ClusterLookup::Status::kUnavailable);
  EXPECT_NE(down.error, "");
}

TEST_F(PgJournalTest, AVersion1SchemaGetsTheClusterViewIndexAndTheQueryUsesIt) {
  open_pg_journal(options("a"));
  // Back to version 1, as the first release left it.
  sql("DROP INDEX troupe_jobs_live");
  sql("DELETE FROM troupe_schema WHERE version > 1");
  open_pg_journal(options("a"));
  EXPECT_EQ(sql_value("SELECT max(version) FROM troupe_schema"),
            std::to_string(detail::pg::kSchemaVersion));
  EXPECT_EQ(sql_value("SELECT count(*) FROM pg_indexes WHERE indexname = 'troupe_jobs_live'"), "1");
  open_pg_journal(options("a"));  // idempotent
  EXPECT_EQ(sql_value("SELECT count(*) FROM troupe_schema WHERE version = 2"), "1");
  // The per-troupe count reads the unfinished rows from the index, not the
  // whole table (planned without sequential scans: the index must fit).
  std::string plan =
      sql_value(std::string("SET enable_seqscan = off; EXPLAIN ") + detail::pg::kClusterTroupes);
  EXPECT_NE(plan.find("troupe_jobs_live"), std::string::npos) << plan;
}

// ---- Idempotency keys across replicas (schema version 4, accept_keyed):
// several journals on one database stand for replicas. ----

core::JournalAccepted keyed(std::uint64_t id, std::string key, std::int64_t submitted_ns = 0) {
  core::JournalAccepted a = accepted(id);
  a.idempotency_key = std::move(key);
  if (submitted_ns != 0) a.submitted_ns = submitted_ns;
  return a;
}

/// accept_keyed()'s answer, waited for with a bound.
core::KeyedAccept accept_keyed(core::Journal& journal, core::JournalAccepted a) {
  auto promise = std::make_shared<std::promise<core::KeyedAccept>>();
  auto future = promise->get_future();
  journal.accept_keyed(
      std::move(a), [promise](core::KeyedAccept answer) { promise->set_value(std::move(answer)); });
  if (future.wait_for(kBound) != std::future_status::ready) {
    ADD_FAILURE() << "accept_keyed not answered within " << kBound.count() << " s";
    return {};
  }
  return future.get();
}

using Keyed = core::KeyedAccept::Status;

TEST_F(PgJournalTest, TwoReplicasRacingWithOneKeyAcceptItOnce) {
  auto a = open(options("a"), nullptr);
  auto b = open(options("b"), nullptr);
  constexpr int kKeys = 40;
  for (int k = 0; k < kKeys; ++k) {
    const std::string key = "key-" + std::to_string(k);
    const std::uint64_t id_a = 1000 + 2 * k;
    const std::uint64_t id_b = 1001 + 2 * k;
    // Both asked at once, from two threads, each replica with its own id.
    auto on_a = std::async(std::launch::async, [&] { return accept_keyed(*a, keyed(id_a, key)); });
    auto on_b = std::async(std::launch::async, [&] { return accept_keyed(*b, keyed(id_b, key)); });
    const core::KeyedAccept from_a = on_a.get();
    const core::KeyedAccept from_b = on_b.get();
    ASSERT_NE(from_a.status, Keyed::kUnavailable) << from_a.error;
    ASSERT_NE(from_b.status, Keyed::kUnavailable) << from_b.error;
    // Exactly one accepted; the other is told the winner's job.
    ASSERT_NE(from_a.status, from_b.status) << key;
    const bool a_won = from_a.status == Keyed::kAccepted;
    const core::KeyedAccept& lost = a_won ? from_b : from_a;
    EXPECT_EQ(lost.status, Keyed::kDuplicate);
    EXPECT_EQ(lost.existing.request.id, JobId{a_won ? id_a : id_b});
    EXPECT_EQ(lost.existing.request.idempotency_key, key);
    EXPECT_EQ(lost.existing.state, JobState::kQueued);
  }
  EXPECT_EQ(sql_value("SELECT count(*) FROM troupe_jobs"), std::to_string(kKeys));
  EXPECT_EQ(sql_value("SELECT count(DISTINCT idempotency_key) FROM troupe_jobs"),
            std::to_string(kKeys));
}

TEST_F(PgJournalTest, AKeyedRowIsOwnedHereAndTheJobsLaterWritesLandOnIt) {
  auto writer = open(options("a"), nullptr);
  ASSERT_EQ(accept_keyed(*writer, keyed(5, "k")).status, Keyed::kAccepted);
  EXPECT_EQ(sql_value("SELECT state FROM troupe_jobs WHERE id = 5"), "0");
  EXPECT_EQ(sql_value("SELECT owner IS NOT NULL FROM troupe_jobs WHERE id = 5"), "t");
  // The runtime then accepts the job with that id (its accept writes
  // nothing: the row is there), and its transitions are fenced updates.
  writer->append(keyed(5, "k"));
  writer->append(core::JournalStarted{JobId{5}, 1, now_ns()});
  writer->append(succeeded(5, "five"));
  ASSERT_EQ(wait_durable(*writer), std::nullopt);
  auto job = find(*writer, JobId{5});
  ASSERT_TRUE(job);
  EXPECT_EQ(job->state, JobState::kSucceeded);
  EXPECT_EQ(job->output, "five");
  EXPECT_EQ(job->request.payload, std::string("pay\0load", 8));
  EXPECT_EQ(job->request.metadata, (core::Metadata{{"trace", "abc"}}));
  // Finished, the key still names it.
  auto again = accept_keyed(*writer, keyed(6, "k"));
  EXPECT_EQ(again.status, Keyed::kDuplicate);
  EXPECT_EQ(again.existing.request.id, JobId{5});
  EXPECT_EQ(again.existing.state, JobState::kSucceeded);
  EXPECT_EQ(writer->failure(), std::nullopt);
}

TEST_F(PgJournalTest, AWithdrawnKeyedRowGoesAndItsKeyIsFreeAgain) {
  auto a = open(options("a"), nullptr);
  auto b = open(options("b"), nullptr);
  ASSERT_EQ(accept_keyed(*a, keyed(7, "k")).status, Keyed::kAccepted);
  a->withdraw_keyed(JobId{7});
  // The journal's rounds run in order on its one connection: a lookup
  // asked after the withdrawal sees the row gone.
  EXPECT_FALSE(find(*a, JobId{7}));
  const auto taken = accept_keyed(*b, keyed(8, "k"));
  EXPECT_EQ(taken.status, Keyed::kAccepted) << taken.error;
}

TEST_F(PgJournalTest, AKeyPastTheIdempotencyTtlNamesNoJobAndIsTakenAgain) {
  PgJournalOptions o = options("a");
  o.idempotency_ttl = 1h;
  auto journal = open(o, nullptr);
  const std::int64_t two_hours_ago = now_ns() - std::int64_t{2} * 3600 * 1'000'000'000;
  ASSERT_EQ(accept_keyed(*journal, keyed(9, "k", two_hours_ago)).status, Keyed::kAccepted);
  journal->append(keyed(9, "k"));
  journal->append(succeeded(9));
  ASSERT_EQ(wait_durable(*journal), std::nullopt);
  // Submitted over an hour ago: the key is free; the old row keeps its result.
  const auto fresh = accept_keyed(*journal, keyed(10, "k"));
  EXPECT_EQ(fresh.status, Keyed::kAccepted) << fresh.error;
  EXPECT_EQ(find(*journal, JobId{9})->state, JobState::kSucceeded);
  EXPECT_EQ(find(*journal, JobId{9})->request.idempotency_key, "");
  // Within the hour: still taken.
  EXPECT_EQ(accept_keyed(*journal, keyed(11, "k")).existing.request.id, JobId{10});
}

TEST_F(PgJournalTest, AKeyedAcceptInABatchWhoseKeyIsTakenWritesNothingAndTheJournalGoesOn) {
  Hooks hooks(0);
  auto journal = open(options("a"), &hooks);
  ASSERT_EQ(accept_keyed(*journal, keyed(12, "k")).status, Keyed::kAccepted);
  // A keyed job accepted without accept_keyed (its key taken): no row; its
  // later write finds none, and the job is lost here.
  journal->append(keyed(13, "k"));
  ASSERT_EQ(wait_durable(*journal), std::nullopt);
  journal->append(core::JournalStarted{JobId{13}, 1, now_ns()});
  ASSERT_EQ(wait_durable(*journal), std::nullopt);
  EXPECT_EQ(journal->failure(), std::nullopt);
  EXPECT_FALSE(find(*journal, JobId{13}));
  EXPECT_TRUE(hooks.wait([](Hooks& h) { return h.lost_ == std::vector<JobId>{JobId{13}}; }));
}

TEST_F(PgJournalTest, AVersion3SchemaGetsTheKeyIndexKeepingTheOldestOfRowsSharingAKey) {
  {
    auto journal = open(options("a"), nullptr);
    journal->append(accepted(1));
    journal->append(accepted(2));
    journal->append(accepted(3));
    ASSERT_EQ(wait_durable(*journal), std::nullopt);
  }
  // Back to version 3, with two rows sharing a key (as replicas wrote them
  // before version 4).
  sql("DROP INDEX troupe_jobs_idempotency; DELETE FROM troupe_schema WHERE version > 3");
  sql("UPDATE troupe_jobs SET idempotency_key = 'dup' WHERE id IN (1, 2)");
  sql("UPDATE troupe_jobs SET idempotency_key = 'own' WHERE id = 3");
  auto journal = open(options("a"), nullptr);
  EXPECT_EQ(sql_value("SELECT max(version) FROM troupe_schema"),
            std::to_string(detail::pg::kSchemaVersion));
  EXPECT_EQ(sql_value("SELECT id FROM troupe_jobs WHERE idempotency_key = 'dup'"), "1");
  EXPECT_EQ(sql_value("SELECT id FROM troupe_jobs WHERE idempotency_key = 'own'"), "3");
  EXPECT_EQ(
      sql_value("SELECT count(*) FROM pg_indexes WHERE indexname = 'troupe_jobs_idempotency'"),
      "1");
  EXPECT_EQ(accept_keyed(*journal, keyed(4, "dup")).existing.request.id, JobId{1});
}

// ---- Same-key order (schema version 5): the rows of a key-ordered troupe
// (`dispatch: key`) are given to one replica at a time per key, in order.
// Journals on one database stand for replicas; a writer with no room
// accepts rows unowned (accepted and handed over, as a troupe does with a
// keyed job). ----

/// The claims of several journals, in the order they were made: which
/// journal took which row. Each journal's room is set by the test.
class KeyClaims {
 public:
  core::ClusterHooks hooks(const std::string& name, std::size_t room) {
    {
      std::lock_guard lock(mutex_);
      room_[name] = room;
    }
    core::ClusterHooks h;
    h.room = [this, name](std::string_view) {
      std::lock_guard lock(mutex_);
      return room_[name];
    };
    h.claimed = [this, name](core::RecoveredJob&& job) {
      {
        std::lock_guard lock(mutex_);
        claims_.emplace_back(name, job.request.id.value);
      }
      changed_.notify_all();
    };
    return h;
  }
  void set_room(const std::string& name, std::size_t room) {
    std::lock_guard lock(mutex_);
    room_[name] = room;
  }
  /// Waits until row `id` was claimed; its claimer ("" after kBound).
  std::string await(std::uint64_t id) {
    std::unique_lock lock(mutex_);
    std::string by;
    changed_.wait_for(lock, kBound, [&] {
      by = claimer_locked(id);
      return !by.empty();
    });
    return by;
  }
  /// (journal, row) in claim order.
  std::vector<std::pair<std::string, std::uint64_t>> claims() const {
    std::lock_guard lock(mutex_);
    return claims_;
  }

 private:
  std::string claimer_locked(std::uint64_t id) const {
    for (const auto& [name, claimed] : claims_) {
      if (claimed == id) return name;
    }
    return "";
  }
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, std::size_t> room_;
  std::vector<std::pair<std::string, std::uint64_t>> claims_;
};

class PgKeyOrderTest : public PgJournalTest {
 protected:
  /// A journal hosting troupe "t" in key order; no poll backstop: it claims
  /// when notified.
  std::unique_ptr<core::Journal> open_in_key_order(const std::string& replica, std::size_t room) {
    PgJournalOptions o = options(replica);
    o.poll = 1h;
    auto journal = open_pg_journal(o);
    journal->set_cluster_hooks(claims_.hooks(replica, room));
    journal->coordinate({core::CoordinatedTroupe{.name = "t", .key_order = true}});
    journal->recover([](core::RecoveredJob&&) {});
    return journal;
  }

  /// Row `id` of troupe "t" with job key `key`, accepted and handed over by
  /// `writer` (claimable, the hosts told at its commit).
  static void hand_over(core::Journal& writer, std::uint64_t id, std::string key) {
    core::JournalAccepted a = accepted(id);
    a.key = std::move(key);
    writer.append(std::move(a));
    writer.append(core::JournalRequeued{JobId{id}, 0});
  }

  /// The rows `journal` claimed, in order.
  std::vector<std::uint64_t> claimed_by(const std::string& journal) const {
    std::vector<std::uint64_t> out;
    for (const auto& [name, id] : claims_.claims()) {
      if (name == journal) out.push_back(id);
    }
    return out;
  }

  KeyClaims claims_;
};

TEST_F(PgKeyOrderTest, AKeysRowsGoToOneReplicaAtATimeInSubmissionOrder) {
  auto writer = open(options("writer"), nullptr);
  auto a = open_in_key_order("a", 2);
  auto b = open_in_key_order("b", 10);
  // Key x's rows 1, 2 and 4, key y's row 3, an unkeyed row 5, in one commit.
  // Whoever claims x's first rows holds x: its later rows go nowhere else
  // while they are unfinished there, whatever the room elsewhere.
  for (auto [id, key] :
       {std::pair<std::uint64_t, const char*>{1, "x"}, {2, "x"}, {3, "y"}, {4, "x"}, {5, ""}}) {
    hand_over(*writer, id, key);
  }
  ASSERT_EQ(wait_durable(*writer), std::nullopt);
  for (std::uint64_t id = 1; id <= 5; ++id) ASSERT_NE(claims_.await(id), "") << id;
  const std::string holder = claims_.await(1);
  EXPECT_EQ(claims_.await(2), holder);
  EXPECT_EQ(claims_.await(4), holder);
  for (const std::string name : {"a", "b"}) {
    std::vector<std::uint64_t> x_rows;
    for (std::uint64_t id : claimed_by(name)) {
      if (id == 1 || id == 2 || id == 4) x_rows.push_back(id);
    }
    EXPECT_TRUE(std::is_sorted(x_rows.begin(), x_rows.end())) << name;
  }
  EXPECT_EQ(claims_.claims().size(), 5u);  // each row once

  // A new row of x, while the holder has no room: the other replica, told
  // of the commit, claims the unkeyed row behind it but not x's.
  const std::string other = holder == "a" ? "b" : "a";
  auto& holder_journal = holder == "a" ? a : b;
  claims_.set_room(holder, 0);
  claims_.set_room(other, 10);
  // A claim the holder sized before its room went (the first phase's last
  // batch may still be on its way) is answered before this lookup: rounds
  // on its connection are answered in order. Any claim after reads room 0.
  ASSERT_TRUE(find(*holder_journal, JobId{1}).has_value());
  hand_over(*writer, 6, "x");
  hand_over(*writer, 7, "");
  ASSERT_EQ(wait_durable(*writer), std::nullopt);
  ASSERT_EQ(claims_.await(7), other);
  EXPECT_EQ(claims_.claims().size(), 6u) << "row 6 of key x was claimed while x was held";

  // The holder ends x's rows: the key is free, and the replicas are told
  // (no poll here), so the other takes row 6.
  for (std::uint64_t id : {1, 2, 4}) holder_journal->append(succeeded(id));
  ASSERT_EQ(wait_durable(*holder_journal), std::nullopt);
  EXPECT_EQ(claims_.await(6), other);
}

TEST_F(PgKeyOrderTest, ARowThisReplicaAcceptedUnderAnIdempotencyKeyHoldsItsKeysLaterRowsBack) {
  auto writer = open(options("writer"), nullptr);
  auto a = open_in_key_order("a", 10);
  // a accepted row 10 of key x under an idempotency key (owned by a, not
  // yet handed over by its troupe); the writer hands over row 11 of x and
  // an unkeyed row 12: a claims 12 in the same claim, never 11 before 10.
  core::JournalAccepted first = keyed(10, "idem");
  first.key = "x";
  ASSERT_EQ(accept_keyed(*a, first).status, core::KeyedAccept::Status::kAccepted);
  hand_over(*writer, 11, "x");
  hand_over(*writer, 12, "");
  ASSERT_EQ(wait_durable(*writer), std::nullopt);
  ASSERT_EQ(claims_.await(12), "a");
  EXPECT_EQ(claimed_by("a"), std::vector<std::uint64_t>{12});
  // Handed over (as its troupe does): claimed back, then 11 after it.
  a->append(first);
  a->append(core::JournalRequeued{JobId{10}, 0});
  ASSERT_EQ(wait_durable(*a), std::nullopt);
  ASSERT_EQ(claims_.await(11), "a");
  EXPECT_EQ(claimed_by("a"), (std::vector<std::uint64_t>{12, 10, 11}));
}

TEST_F(PgKeyOrderTest, AVersion4SchemaGetsTheKeyOrderIndex) {
  { auto journal = open(options("a"), nullptr); }
  sql("DROP INDEX troupe_jobs_key_order; DELETE FROM troupe_schema WHERE version > 4");
  auto journal = open(options("a"), nullptr);
  EXPECT_EQ(sql_value("SELECT max(version) FROM troupe_schema"),
            std::to_string(detail::pg::kSchemaVersion));
  EXPECT_EQ(sql_value("SELECT count(*) FROM pg_indexes WHERE indexname = 'troupe_jobs_key_order'"),
            "1");
}

// ---- Coordination (schema version 2): singleton leases, max_concurrency
// permits. Several journals on one database stand for replicas. ----

/// What the coordination hooks of several journals saw, shared: a lease's
/// holders in the order they were granted, and every journal's permits.
class Coordination {
 public:
  /// The hooks of journal `name`; `demand` is what its troupe could use.
  core::ClusterHooks hooks(const std::string& name) {
    {
      std::lock_guard lock(mutex_);
      demand_[name] = 0;
      permits_[name] = 0;
    }
    core::ClusterHooks h;
    h.room = [](std::string_view) { return std::size_t{0}; };
    h.leadership = [this, name](std::string_view, std::int64_t term) {
      record([&] {
        holding_[name] = term;
        if (term != 0) {
          leader_ = name;
          grants_.push_back({name, term});
        } else if (leader_ == name) {
          leader_.clear();
        }
      });
    };
    h.permits = [this, name](std::string_view, std::uint32_t permits) -> std::uint32_t {
      std::uint32_t running = 0;
      record([&] {
        permits_[name] = permits;
        std::uint32_t sum = 0;
        for (const auto& [n, p] : permits_) sum += p;
        max_sum_ = std::max(max_sum_, sum);
        running = std::min(permits, demand_[name]);
      });
      return running;
    };
    h.demand = [this, name](std::string_view) -> std::size_t {
      std::lock_guard lock(mutex_);
      return demand_[name];
    };
    h.token_demand = h.demand;
    h.tokens = [this, name](std::string_view, std::uint32_t tokens) {
      record([&] {
        granted_[name] += tokens;
        largest_grant_ = std::max(largest_grant_, tokens);
        if (tokens > 0) ++grants_with_tokens_;
      });
    };
    return h;
  }

  void set_demand(const std::string& name, std::uint32_t demand) {
    std::lock_guard lock(mutex_);
    demand_[name] = demand;
  }

  bool wait(const std::function<bool(Coordination&)>& done) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, kBound, [&] { return done(*this); });
  }
  /// Runs `read` with the record locked (the journals may still report).
  void locked(const std::function<void(Coordination&)>& read) {
    std::lock_guard lock(mutex_);
    read(*this);
  }

  std::uint32_t sum() const {
    std::uint32_t sum = 0;
    for (const auto& [n, p] : permits_) sum += p;
    return sum;
  }

  std::string leader_;                           // the last told it holds the lease
  std::map<std::string, std::int64_t> holding_;  // journal -> term it holds (0: none)
  std::vector<std::pair<std::string, std::int64_t>> grants_;
  std::map<std::string, std::uint32_t> permits_;
  std::map<std::string, std::uint32_t> demand_;
  std::uint32_t max_sum_ = 0;
  std::map<std::string, std::uint64_t> granted_;  // journal -> rate tokens granted
  std::uint32_t largest_grant_ = 0;
  std::uint64_t grants_with_tokens_ = 0;

  std::uint64_t tokens() const {
    std::uint64_t sum = 0;
    for (const auto& [n, t] : granted_) sum += t;
    return sum;
  }

 private:
  void record(const std::function<void()>& change) {
    {
      std::lock_guard lock(mutex_);
      change();
    }
    changed_.notify_all();
  }
  mutable std::mutex mutex_;
  std::condition_variable changed_;
};

class PgCoordinationTest : public PgJournalTest {
 protected:
  std::unique_ptr<core::Journal> open_coordinated(const PgJournalOptions& o,
                                                  Coordination& coordination,
                                                  std::vector<core::CoordinatedTroupe> troupes) {
    auto journal = open_pg_journal(o);
    journal->set_cluster_hooks(coordination.hooks(o.replica));
    journal->coordinate(std::move(troupes));
    journal->recover([](core::RecoveredJob&&) {});
    return journal;
  }

  /// One value of the test's own query.
  std::int64_t query(const std::string& text) {
    PGconn* conn = PQconnectdb(server_->dsn(database_).c_str());
    EXPECT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
    PGresult* result = PQexec(conn, text.c_str());
    EXPECT_EQ(PQresultStatus(result), PGRES_TUPLES_OK) << PQresultErrorMessage(result);
    std::int64_t value = PQntuples(result) > 0 ? std::atoll(PQgetvalue(result, 0, 0)) : -1;
    PQclear(result);
    PQfinish(conn);
    return value;
  }
};

TEST_F(PgCoordinationTest, ASingletonLeaseHasOneHolderAndMovesWithAHigherTermWhenItExpires) {
  Coordination c;
  const std::vector<core::CoordinatedTroupe> singleton{{"s", true, 0}};
  // The first holder renews only when told (its heartbeat is an hour): its
  // lease runs out when this test says so.
  PgJournalOptions first = options("a");
  first.lease = 1h;
  first.heartbeat = 1h;
  auto a = open_coordinated(first, c, singleton);
  ASSERT_TRUE(c.wait([](Coordination& seen) { return seen.leader_ == "a"; }));
  EXPECT_EQ(c.grants_.back().second, 1);
  auto b = open_coordinated(options("b"), c, singleton);
  auto d = open_coordinated(options("d"), c, singleton);
  // b and d try at every heartbeat (100 ms): once each has had a few, the
  // lease is still a's.
  const auto until = std::chrono::steady_clock::now() + kBound;
  while (query("SELECT count(*) FROM troupe_replicas WHERE name IN ('b', 'd') AND heartbeat_at > "
               "started_at + interval '500 milliseconds'") < 2 &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(50ms);  // polling the store's view
  }
  EXPECT_EQ(query("SELECT count(*) FROM troupe_leases WHERE troupe = 's'"), 1);
  EXPECT_EQ(query("SELECT term FROM troupe_leases WHERE troupe = 's'"), 1);
  ASSERT_TRUE(
      c.wait([](Coordination& seen) { return seen.grants_.size() == 1 && seen.leader_ == "a"; }));

  // a stops renewing (as if it hung): the lease and its incarnation expire.
  sql("UPDATE troupe_leases SET expires_at = now() - interval '1 second'");
  sql("UPDATE troupe_replicas SET expires_at = now() - interval '1 second' WHERE name = 'a'");
  ASSERT_TRUE(c.wait([](Coordination& seen) { return seen.grants_.size() == 2; }));
  EXPECT_NE(c.grants_[1].first, "a");
  EXPECT_EQ(c.grants_[1].second, 2);  // the fencing term rose
  // a (hung, as far as the store knows) learns it lost the lease at its
  // next round.
  a->coordinate(singleton);
  ASSERT_TRUE(c.wait([](Coordination& seen) { return seen.holding_["a"] == 0; }));

  // The holder stops cleanly: its lease is free at once, and the other live
  // one takes it with the next term (a, declared dead, never does).
  const std::string holder = c.grants_[1].first;
  const std::string other = holder == "b" ? "d" : "b";
  (holder == "b" ? b : d).reset();
  ASSERT_TRUE(c.wait([](Coordination& seen) { return seen.grants_.size() >= 3; }));
  EXPECT_EQ(c.grants_[2].first, other);
  EXPECT_EQ(c.grants_[2].second, 3);

  for (std::size_t i = 1; i < c.grants_.size(); ++i) {
    EXPECT_GT(c.grants_[i].second, c.grants_[i - 1].second);
  }
}

TEST_F(PgCoordinationTest, AHolderThatCannotRenewGivesTheLeaseUpBeforeItExpires) {
  Coordination c;
  const std::vector<core::CoordinatedTroupe> singleton{{"s", true, 0}};
  PgJournalOptions o = options("a");
  o.lease = 1500ms;
  o.heartbeat = 100ms;
  auto a = open_coordinated(o, c, singleton);
  ASSERT_TRUE(c.wait([](Coordination& seen) { return seen.leader_ == "a"; }));
  server_->stop();
  // Renewed last before the server stopped: the store's lease ends by
  // `stopped` + lease at the latest, and the holder must give up before.
  const auto stopped = std::chrono::steady_clock::now();
  ASSERT_TRUE(c.wait([](Coordination& seen) { return seen.leader_.empty(); }));
  // Given up before the store's lease ran out: no one else held it meanwhile.
  EXPECT_LT(std::chrono::steady_clock::now() - stopped, 1500ms);
  server_->restart();
}

TEST_F(PgCoordinationTest, PermitsNeverExceedMaxConcurrencyAndIdleOnesGoWhereTheyAreNeeded) {
  Coordination c;
  const std::vector<core::CoordinatedTroupe> capped{{"p", false, 5}};
  auto a = open_coordinated(options("a"), c, capped);
  auto b = open_coordinated(options("b"), c, capped);
  auto d = open_coordinated(options("d"), c, capped);
  c.set_demand("a", 4);
  ASSERT_TRUE(c.wait([](Coordination& seen) { return seen.permits_["a"] == 4; }));
  c.set_demand("b", 10);
  c.set_demand("d", 10);
  ASSERT_TRUE(c.wait([](Coordination& seen) { return seen.sum() == 5; }));
  EXPECT_EQ(query("SELECT count(*) FROM troupe_permits WHERE troupe = 'p' AND owner IS NOT NULL"),
            5);
  // a's demand ends: its permits go back, and the others take them.
  c.set_demand("a", 0);
  ASSERT_TRUE(c.wait([](Coordination& seen) {
    return seen.permits_["a"] == 0 && seen.permits_["b"] + seen.permits_["d"] == 5;
  }));
  // d's ends too: b, with a backlog, holds them all.
  c.set_demand("d", 0);
  ASSERT_TRUE(c.wait([](Coordination& seen) { return seen.permits_["b"] == 5; }));
  EXPECT_LE(c.max_sum_, 5u);
  EXPECT_EQ(query("SELECT count(*) FROM troupe_permits WHERE troupe = 'p'"), 5);
}

// The cluster view names each singleton's lease holder (incarnation, term,
// expiry) and the permits each replica holds, as the tables have them.
TEST_F(PgCoordinationTest, TheClusterViewShowsLeaseHoldersAndPermitsPerReplica) {
  Coordination c;
  const std::vector<core::CoordinatedTroupe> troupes{{"p", false, 5}, {"s", true, 0}};
  auto a = open_coordinated(options("a"), c, troupes);
  ASSERT_TRUE(c.wait([](Coordination& seen) { return seen.leader_ == "a"; }));
  auto b = open_coordinated(options("b"), c, troupes);
  c.set_demand("a", 2);
  c.set_demand("b", 1);
  ASSERT_TRUE(c.wait(
      [](Coordination& seen) { return seen.permits_["a"] == 2 && seen.permits_["b"] == 1; }));
  // A lease nobody holds any more: its holder's incarnation is gone.
  sql("INSERT INTO troupe_leases (troupe, owner, term, expires_at) VALUES ('z', 424242, 7, "
      "now() + interval '1 hour')");
  const std::int64_t a_incarnation =
      query("SELECT incarnation FROM troupe_replicas WHERE name = 'a'");
  const std::int64_t b_incarnation =
      query("SELECT incarnation FROM troupe_replicas WHERE name = 'b'");

  core::ClusterLookup answer = cluster(*b);
  ASSERT_EQ(answer.status, core::ClusterLookup::Status::kOk) << answer.error;
  const auto& view = answer.view;
  ASSERT_EQ(view.troupes.size(), 3u);  // no unfinished jobs: listed for their leases, permits
  const auto& p = view.troupes[0];
  EXPECT_EQ(p.name, "p");
  EXPECT_FALSE(p.lease);
  ASSERT_EQ(p.permits.size(), 2u);
  EXPECT_EQ(p.permits[0].replica, "a");
  EXPECT_EQ(p.permits[0].incarnation, a_incarnation);
  EXPECT_EQ(p.permits[0].permits, 2u);
  EXPECT_EQ(p.permits[1].replica, "b");
  EXPECT_EQ(p.permits[1].incarnation, b_incarnation);
  EXPECT_EQ(p.permits[1].permits, 1u);
  const auto& s = view.troupes[1];
  EXPECT_EQ(s.name, "s");
  EXPECT_TRUE(s.permits.empty());
  ASSERT_TRUE(s.lease);
  EXPECT_EQ(s.lease->holder, "a");
  EXPECT_EQ(s.lease->incarnation, a_incarnation);
  EXPECT_EQ(s.lease->term, 1);
  EXPECT_TRUE(s.lease->held);
  EXPECT_GT(s.lease->expires_ns, view.now_ns);
  const auto& z = view.troupes[2];
  EXPECT_EQ(z.name, "z");
  ASSERT_TRUE(z.lease);
  EXPECT_FALSE(z.lease->held);
  EXPECT_EQ(z.lease->holder, "");
  EXPECT_EQ(z.lease->incarnation, 424242);
  EXPECT_EQ(z.lease->term, 7);

  // a stops: its lease is released and its permits are free; b takes the
  // lease over with the next term.
  a.reset();
  ASSERT_TRUE(c.wait([](Coordination& seen) { return seen.leader_ == "b"; }));
  answer = cluster(*b);
  ASSERT_EQ(answer.status, core::ClusterLookup::Status::kOk) << answer.error;
  ASSERT_GE(answer.view.troupes.size(), 2u);
  ASSERT_EQ(answer.view.troupes[0].name, "p");
  for (const auto& held : answer.view.troupes[0].permits) EXPECT_EQ(held.replica, "b");
  ASSERT_EQ(answer.view.troupes[1].name, "s");
  ASSERT_TRUE(answer.view.troupes[1].lease);
  EXPECT_EQ(answer.view.troupes[1].lease->holder, "b");
  EXPECT_EQ(answer.view.troupes[1].lease->term, 2);
  EXPECT_TRUE(answer.view.troupes[1].lease->held);
}

TEST_F(PgCoordinationTest, ASchemaOfVersionOneIsMigrated) {
  open_pg_journal(options("a"));
  sql("DROP TABLE troupe_leases; DROP TABLE troupe_permits; DROP TABLE troupe_rate_buckets; "
      "DELETE FROM troupe_schema WHERE version >= 2");
  auto journal = open_pg_journal(options("a"));
  EXPECT_EQ(query("SELECT max(version) FROM troupe_schema"), detail::pg::kSchemaVersion);
  EXPECT_EQ(query("SELECT count(*) FROM troupe_leases"), 0);
  EXPECT_EQ(query("SELECT count(*) FROM troupe_rate_buckets"), 0);
}

TEST_F(PgCoordinationTest, ASchemaOfVersionTwoGetsTheRateBuckets) {
  open_pg_journal(options("a"));
  sql("DROP TABLE troupe_rate_buckets; DELETE FROM troupe_schema WHERE version >= 3");
  auto journal = open_pg_journal(options("a"));
  EXPECT_EQ(query("SELECT max(version) FROM troupe_schema"), detail::pg::kSchemaVersion);
  EXPECT_EQ(query("SELECT count(*) FROM troupe_rate_buckets"), 0);
}

TEST_F(PgCoordinationTest, RateTokensAcrossReplicasNeverOutrunTheBucketAndComeInBlocks) {
  Coordination c;
  // 40 a second, a bucket of 8: blocks of 4 (a tenth of a second's worth).
  const std::vector<core::CoordinatedTroupe> limited{
      {.name = "r", .rate_per_second = 40, .rate_burst = 8}};
  const auto opened = std::chrono::steady_clock::now();  // no bucket before this
  auto a = open_coordinated(options("a"), c, limited);
  auto b = open_coordinated(options("b"), c, limited);
  auto d = open_coordinated(options("d"), c, limited);
  c.set_demand("a", 1'000'000);
  c.set_demand("b", 1'000'000);
  c.set_demand("d", 1'000'000);
  for (auto* j : {a.get(), b.get(), d.get()}) j->want_tokens("r");
  // Each check: what was granted so far is within the bucket's size plus
  // its rate over the time since the journals opened.
  std::uint64_t over = 0;
  auto within = [&](Coordination& seen) {
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - opened).count();
    if (static_cast<double>(seen.tokens()) > 8 + 40 * elapsed) ++over;
    return seen.tokens() >= 100;
  };
  ASSERT_TRUE(c.wait(within));
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - opened).count();
  EXPECT_EQ(over, 0u);
  // 100 tokens take at least (100 - 8) / 40 = 2.3 s however many ask.
  EXPECT_GE(elapsed, 2.3);
  // The journals still run (and are granted tokens): read under the lock.
  c.locked([&](Coordination& seen) {
    std::cout << "3 replicas took " << seen.tokens() << " tokens of a 40/s bucket in " << elapsed
              << " s, in " << seen.grants_with_tokens_ << " grants\n";
    EXPECT_LE(seen.largest_grant_, 4u);  // in blocks, never more
    for (const char* name : {"a", "b", "d"}) EXPECT_GT(seen.granted_[name], 0u) << name;
  });
  EXPECT_EQ(query("SELECT count(*) FROM troupe_rate_buckets"), 1);  // one bucket, shared
}

}  // namespace
}  // namespace troupe::store
