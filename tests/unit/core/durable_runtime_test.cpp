// The runtime on a durable journal (issue 13): what it journals, when a
// submit may be acknowledged, what a failed journal does, recovery and the
// drain's hand-over. TestJournal stands in for the SQLite journal.

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <thread>
#include <unordered_map>

#include "core/job_entry.h"
#include "core/manual_clock.h"
#include "core/runtime.h"
#include "tests/unit/core/test_journal.h"
#include "tests/unit/core/test_support.h"

namespace troupe::core {
namespace {

using namespace std::chrono_literals;
using testing::builtin;
using testing::builtin_troupe;
using testing::TestJournal;
using Kind = BuiltinHandlerOptions::Kind;

template <class T>
bool is(const JournalEntry& e) {
  return std::holds_alternative<T>(e);
}

class DurableRuntimeTest : public ::testing::Test {
 protected:
  DurableRuntimeTest() { runtime_ = make_runtime(io_, clock_, observer_, {}, journal_); }
  ~DurableRuntimeTest() override { runtime_.reset(); }

  void run() {
    io_.restart();
    io_.poll();
  }
  void advance(Duration d) {
    clock_.advance(d);
    run();
  }

  std::variant<Accepted, Rejection> submit(const std::string& troupe, std::string payload = {},
                                           std::string key = {}, std::string idempotency = {}) {
    JobRequest r;
    r.troupe = troupe;
    r.payload = std::move(payload);
    r.key = std::move(key);
    r.idempotency_key = std::move(idempotency);
    return runtime_->submit(std::move(r));
  }
  JobId submit_ok(const std::string& troupe, std::string payload = {}, std::string key = {}) {
    auto result = submit(troupe, std::move(payload), std::move(key));
    EXPECT_TRUE(std::holds_alternative<Accepted>(result));
    return std::holds_alternative<Accepted>(result) ? std::get<Accepted>(result).id : JobId{};
  }
  JobState state_of(JobId id) {
    auto r = runtime_->get(id);
    EXPECT_TRUE(r.has_value());
    return r ? r->state : JobState::kQueued;
  }

  /// A journaled job as recovery reads it back.
  static RecoveredJob row(std::uint64_t id, const std::string& troupe, JobState state,
                          std::string payload = {}, std::string key = {}) {
    RecoveredJob r;
    r.request.id = JobId{id};
    r.request.troupe = troupe;
    r.request.payload = std::move(payload);
    r.request.key = std::move(key);
    r.request.submitted_ns = 1;
    r.state = state;
    return r;
  }

  /// Ids of the jobs whose attempts started, in journal order.
  std::vector<JobId> started() const {
    std::vector<JobId> out;
    for (auto& e : journal_.entries()) {
      if (is<JournalStarted>(e)) out.push_back(std::get<JournalStarted>(e).id);
    }
    return out;
  }

  ManualClock clock_;
  boost::asio::io_context io_;
  testing::RecordingObserver observer_;
  TestJournal journal_;
  std::unique_ptr<Runtime> runtime_;
};

TEST(MemoryJournal, IsNotDurableAndCompletesBarriersInline) {
  auto journal = make_memory_journal();
  EXPECT_FALSE(journal->durable());
  bool done = false;
  journal->after_durable([&](const JournalFailure* f) { done = f == nullptr; });
  EXPECT_TRUE(done);
  EXPECT_FALSE(journal->failure());
}

TEST_F(DurableRuntimeTest, EveryTransitionIsJournaledInOrder) {
  auto o = builtin_troupe("t", Kind::kFail, 1);
  o.retry.max_attempts = 2;
  o.retry.initial_backoff = 1s;
  runtime_->apply({o});
  run();
  const JobId id = submit_ok("t", "payload");
  run();
  auto e = journal_.entries_of(id);
  ASSERT_EQ(e.size(), 3u);
  ASSERT_TRUE(is<JournalAccepted>(e[0]));
  EXPECT_EQ(std::get<JournalAccepted>(e[0]).payload, "payload");
  EXPECT_EQ(std::get<JournalAccepted>(e[0]).troupe, "t");
  ASSERT_TRUE(is<JournalStarted>(e[1]));
  EXPECT_EQ(std::get<JournalStarted>(e[1]).attempts, 1u);
  ASSERT_TRUE(is<JournalRetryWait>(e[2]));
  const auto& wait = std::get<JournalRetryWait>(e[2]);
  EXPECT_EQ(wait.attempts, 1u);
  // The wall-clock time of the next attempt: now + the 1 s backoff.
  EXPECT_EQ(wait.next_run_ns, detail::to_ns(clock_.wall_now()) + std::int64_t{1'000'000'000});
  advance(1s);
  e = journal_.entries_of(id);
  ASSERT_EQ(e.size(), 5u);
  EXPECT_TRUE(is<JournalStarted>(e[3]));
  ASSERT_TRUE(is<JournalTerminal>(e[4]));
  EXPECT_EQ(std::get<JournalTerminal>(e[4]).state, JobState::kDead);
  EXPECT_EQ(std::get<JournalTerminal>(e[4]).attempts, 2u);
}

TEST_F(DurableRuntimeTest, ACancelledQueuedJobIsJournaledTerminal) {
  runtime_->apply({builtin_troupe("t", Kind::kSleep, 1)});
  run();
  submit_ok("t", "1h");
  const JobId queued = submit_ok("t", "1h");
  run();
  ASSERT_TRUE(runtime_->cancel(queued)->cancelled);
  auto e = journal_.entries_of(queued);
  ASSERT_EQ(e.size(), 2u);
  ASSERT_TRUE(is<JournalTerminal>(e[1]));
  EXPECT_EQ(std::get<JournalTerminal>(e[1]).state, JobState::kCancelled);
}

TEST_F(DurableRuntimeTest, ARefusedSubmitJournalsNothing) {
  auto o = builtin_troupe("t", Kind::kSleep, 1);
  o.mailbox_capacity = 1;
  runtime_->apply({o});
  run();
  submit_ok("t", "1h");
  run();
  submit_ok("t", "1h");
  const auto before = journal_.entries().size();
  auto refused = submit("t", "1h");
  ASSERT_TRUE(std::holds_alternative<Rejection>(refused));
  EXPECT_EQ(std::get<Rejection>(refused).reason, RejectReason::kFull);
  EXPECT_EQ(journal_.entries().size(), before);
}

TEST_F(DurableRuntimeTest, TheAcceptIsJournaledBeforeTheStartUnderConcurrentActors) {
  // Actors on four threads take jobs as soon as they are queued: each job's
  // accept must precede its start in the journal (it is appended under the
  // dispatcher's lock as the job is queued, before any actor can take it).
  auto o = builtin_troupe("t", Kind::kNoop, 4);
  o.mailbox_capacity = 100000;
  runtime_->apply({o});
  auto work = boost::asio::make_work_guard(io_);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back([this] { io_.run(); });
  constexpr int kJobs = 20000;
  for (int i = 0; i < kJobs; ++i) submit_ok("t");
  const auto until = std::chrono::steady_clock::now() + 30s;
  while (runtime_->troupe("t")->counters.succeeded < kJobs &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::yield();
  }
  work.reset();
  io_.stop();
  for (auto& t : threads) t.join();
  std::unordered_map<std::uint64_t, int> seen;  // 1: accepted, 2: started
  int out_of_order = 0;
  for (auto& e : journal_.entries()) {
    if (is<JournalAccepted>(e)) seen[std::get<JournalAccepted>(e).id.value] = 1;
    if (is<JournalStarted>(e) && seen[std::get<JournalStarted>(e).id.value] != 1) ++out_of_order;
  }
  EXPECT_EQ(runtime_->troupe("t")->counters.succeeded, std::uint64_t{kJobs});
  EXPECT_EQ(seen.size(), std::size_t{kJobs});
  EXPECT_EQ(out_of_order, 0);
}

TEST_F(DurableRuntimeTest, ABarrierCompletesOnlyWhenTheJournalCommits) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 1)});
  run();
  submit_ok("t");
  int acked = 0;
  runtime_->after_durable([&](const JournalFailure* f) {
    EXPECT_EQ(f, nullptr);
    ++acked;
  });
  EXPECT_EQ(acked, 0);
  EXPECT_EQ(journal_.commit(), 1u);
  EXPECT_EQ(acked, 1);
}

TEST_F(DurableRuntimeTest, AFailedJournalFailsBarriersAndRefusesSubmits) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 1)});
  run();
  submit_ok("t");
  std::string told;
  runtime_->on_journal_failure([&](const JournalFailure& f) { told = f.message; });
  std::string barrier;
  runtime_->after_durable([&](const JournalFailure* f) {
    ASSERT_NE(f, nullptr);
    barrier = f->message;
  });
  journal_.fail("sqlite /tmp/x.db: disk I/O error");
  EXPECT_EQ(told, "sqlite /tmp/x.db: disk I/O error");
  EXPECT_EQ(barrier, "sqlite /tmp/x.db: disk I/O error");
  auto refused = submit("t");
  ASSERT_TRUE(std::holds_alternative<Rejection>(refused));
  EXPECT_EQ(std::get<Rejection>(refused).reason, RejectReason::kStoreUnavailable);
  EXPECT_EQ(std::get<Rejection>(refused).store_failure, "sqlite /tmp/x.db: disk I/O error");
  // A barrier asked for after the failure fails at once.
  bool failed = false;
  runtime_->after_durable([&](const JournalFailure* f) { failed = f != nullptr; });
  EXPECT_TRUE(failed);
}

TEST_F(DurableRuntimeTest, RecoveredQueuedJobsRunInAcceptanceOrderPastTheMailboxCapacity) {
  auto o = builtin_troupe("t", Kind::kNoop, 2);
  o.mailbox_capacity = 1;  // capacity 2: recovery is not refused for it
  o.dispatch = DispatchStrategy::kKey;
  runtime_->apply({o});
  run();
  for (std::uint64_t id = 1; id <= 6; ++id) {
    journal_.rows.push_back(row(id, "t", JobState::kQueued, {}, "k"));
  }
  const auto report = runtime_->recover();
  EXPECT_EQ(report.queued, 6u);
  EXPECT_EQ(report.orphaned_total(), 0u);
  run();
  const std::vector<JobId> want{JobId{1}, JobId{2}, JobId{3}, JobId{4}, JobId{5}, JobId{6}};
  EXPECT_EQ(started(), want);
  for (auto id : want) EXPECT_EQ(state_of(id), JobState::kSucceeded);
  auto c = runtime_->troupe("t")->counters;
  EXPECT_EQ(c.submitted, 6u);
  EXPECT_EQ(c.submitted,
            c.succeeded + c.failed + c.dead + c.cancelled + c.aborted + c.left + c.in_flight);
}

TEST_F(DurableRuntimeTest, ARecoveredRunningJobAtMaxAttemptsEndsDeadAndIsJournaled) {
  auto o = builtin_troupe("t", Kind::kNoop, 1);
  o.retry.max_attempts = 3;
  runtime_->apply({o});
  run();
  auto r = row(7, "t", JobState::kRunning);
  r.attempts = 3;
  journal_.rows.push_back(r);
  const auto report = runtime_->recover();
  EXPECT_EQ(report.crashed, 1u);
  EXPECT_EQ(report.crashed_dead, 1u);
  run();
  auto record = runtime_->get(JobId{7});
  ASSERT_TRUE(record);
  EXPECT_EQ(record->state, JobState::kDead);
  EXPECT_EQ(record->failure_class, FailureClass::kCrash);
  EXPECT_TRUE(started().empty());  // it never ran again
  auto e = journal_.entries_of(JobId{7});
  ASSERT_EQ(e.size(), 1u);
  ASSERT_TRUE(is<JournalTerminal>(e[0]));
  EXPECT_EQ(std::get<JournalTerminal>(e[0]).state, JobState::kDead);
  EXPECT_EQ(std::get<JournalTerminal>(e[0]).failure, FailureClass::kCrash);
  auto dead = runtime_->dead_jobs("t", 10);
  ASSERT_TRUE(dead);
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ(dead->front().id, JobId{7});
  EXPECT_EQ(runtime_->troupe("t")->counters.dead, 1u);
}

TEST_F(DurableRuntimeTest, ARecoveredRunningJobBelowMaxAttemptsIsRetriedAfterItsBackoff) {
  auto o = builtin_troupe("t", Kind::kNoop, 1);
  o.retry.max_attempts = 3;
  o.retry.initial_backoff = 2s;
  runtime_->apply({o});
  run();
  auto r = row(8, "t", JobState::kRunning);
  r.attempts = 1;
  journal_.rows.push_back(r);
  const auto report = runtime_->recover();
  EXPECT_EQ(report.crashed, 1u);
  EXPECT_EQ(report.retry_waiting, 1u);
  run();
  EXPECT_EQ(state_of(JobId{8}), JobState::kRetryWait);
  auto e = journal_.entries_of(JobId{8});
  ASSERT_EQ(e.size(), 1u);
  ASSERT_TRUE(is<JournalRetryWait>(e[0]));
  EXPECT_EQ(std::get<JournalRetryWait>(e[0]).failure, FailureClass::kCrash);
  advance(2s);
  EXPECT_EQ(state_of(JobId{8}), JobState::kSucceeded);
  EXPECT_EQ(runtime_->get(JobId{8})->attempts, 2u);
}

TEST_F(DurableRuntimeTest, ARecoveredRetryWaitingJobKeepsItsNextRunTime) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 1)});
  run();
  auto r = row(9, "t", JobState::kRetryWait);
  r.attempts = 1;
  r.next_run_ns = detail::to_ns(clock_.wall_now()) + std::int64_t{5'000'000'000};
  journal_.rows.push_back(r);
  EXPECT_EQ(runtime_->recover().retry_waiting, 1u);
  run();
  advance(4s);
  EXPECT_EQ(state_of(JobId{9}), JobState::kRetryWait);
  advance(1s);
  EXPECT_EQ(state_of(JobId{9}), JobState::kSucceeded);
}

TEST_F(DurableRuntimeTest, RecoveredTerminalJobsAnswerGetJobIdempotencyKeysAndDeadLetters) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 1)});
  run();
  auto done = row(10, "t", JobState::kSucceeded);
  done.output = "result";
  done.attempts = 1;
  done.request.idempotency_key = "once";
  journal_.rows.push_back(done);
  auto dead = row(11, "t", JobState::kDead);
  dead.failure = FailureClass::kRetryable;
  dead.output = "it failed";
  journal_.rows.push_back(dead);
  journal_.rows.push_back(row(12, "gone", JobState::kQueued));
  journal_.rows.push_back(row(13, "gone", JobState::kSucceeded));
  const auto report = runtime_->recover();
  EXPECT_EQ(report.terminal, 2u);
  EXPECT_EQ(report.dead_letters, 1u);
  EXPECT_EQ(report.orphaned_total(), 2u);
  EXPECT_EQ(report.orphaned.at("gone"), 2u);

  auto record = runtime_->get(JobId{10});
  ASSERT_TRUE(record);
  EXPECT_EQ(record->state, JobState::kSucceeded);
  EXPECT_EQ(record->result, "result");
  EXPECT_FALSE(runtime_->get(JobId{12}));  // an unknown troupe's row is not loaded

  auto again = submit("t", {}, {}, "once");
  ASSERT_TRUE(std::holds_alternative<Accepted>(again));
  EXPECT_EQ(std::get<Accepted>(again).id, JobId{10});
  EXPECT_TRUE(std::get<Accepted>(again).duplicate);

  auto letters = runtime_->dead_jobs("t", 10);
  ASSERT_TRUE(letters);
  ASSERT_EQ(letters->size(), 1u);
  EXPECT_EQ(letters->front().id, JobId{11});
  // Terminal rows ended in an earlier process: in no counter of this one.
  auto c = runtime_->troupe("t")->counters;
  EXPECT_EQ(c.submitted, 0u);
  EXPECT_EQ(c.dead, 0u);
}

TEST_F(DurableRuntimeTest, DrainDeadlineLeavesWaitingJobsAndRequeuesRunningOnes) {
  auto o = builtin_troupe("t", Kind::kSleep, 1);
  o.retry.max_attempts = 3;
  runtime_->apply({o});
  run();
  const JobId running = submit_ok("t", "1h");
  const JobId queued = submit_ok("t", "1h");
  run();
  std::optional<DrainReport> report;
  runtime_->drain(1s, [&](DrainReport r) { report = r; });
  run();
  advance(1s);
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->deadline_reached);
  EXPECT_EQ(report->cancelled, 1u);
  EXPECT_EQ(report->aborted, 0u);
  EXPECT_EQ(report->left, 2u);
  EXPECT_EQ(report->finished, 0u);

  // The queued job: its accept only (it runs after the restart).
  auto q = journal_.entries_of(queued);
  ASSERT_EQ(q.size(), 1u);
  EXPECT_TRUE(is<JournalAccepted>(q[0]));
  // The running one: requeued with the interrupted attempt not counted.
  auto r = journal_.entries_of(running);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_TRUE(is<JournalStarted>(r[1]));
  ASSERT_TRUE(is<JournalRequeued>(r[2]));
  EXPECT_EQ(std::get<JournalRequeued>(r[2]).attempts, 0u);

  auto c = runtime_->troupe("t")->counters;
  EXPECT_EQ(c.aborted, 0u);
  EXPECT_EQ(c.left, 2u);
  EXPECT_EQ(c.in_flight, 0u);
  EXPECT_EQ(c.submitted,
            c.succeeded + c.failed + c.dead + c.cancelled + c.aborted + c.left + c.in_flight);
  EXPECT_FALSE(is_terminal(state_of(queued)));
  EXPECT_FALSE(is_terminal(state_of(running)));
}

}  // namespace
}  // namespace troupe::core
