// The runtime on a durable journal (issue 13): what it journals, when a
// submit may be acknowledged, what a failed journal does, recovery and the
// drain's hand-over. TestJournal stands in for the SQLite journal.
// On a shared journal (issue 14, docs/cluster.md): the ClusterHooks the
// runtime sets (claims, lost jobs, remote cancels, the store's
// availability) and the any-replica lookups. SharedTestJournal stands in
// for the PostgreSQL journal (tests/store and the cluster test run that).

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <condition_variable>
#include <mutex>
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
using testing::SharedTestJournal;
using testing::TestJournal;
using Kind = BuiltinHandlerOptions::Kind;

template <class T>
bool is(const JournalEntry& e) {
  return std::holds_alternative<T>(e);
}

template <class J>
class RuntimeOnJournal : public ::testing::Test {
 protected:
  RuntimeOnJournal() { runtime_ = make_runtime(io_, clock_, observer_, {}, journal_); }
  ~RuntimeOnJournal() override { runtime_.reset(); }

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
  /// A submit whose caller waits (wait=true): each terminal record it is
  /// told goes into `ended`.
  JobId submit_waiting(const std::string& troupe, std::vector<JobRecord>& ended,
                       std::string payload = {}, std::string key = {}) {
    JobRequest r;
    r.troupe = troupe;
    r.payload = std::move(payload);
    r.key = std::move(key);
    auto result =
        runtime_->submit(std::move(r), [&ended](const JobRecord& e) { ended.push_back(e); });
    EXPECT_TRUE(std::holds_alternative<Accepted>(result));
    return std::holds_alternative<Accepted>(result) ? std::get<Accepted>(result).id : JobId{};
  }
  /// Job `id` was accepted into the store unowned (accept, then requeue with
  /// no attempt counted) and is not held here.
  void expect_handed_over(JobId id) {
    auto e = journal_.entries_of(id);
    ASSERT_EQ(e.size(), 2u);
    EXPECT_TRUE(is<JournalAccepted>(e[0]));
    ASSERT_TRUE(is<JournalRequeued>(e[1]));
    EXPECT_EQ(std::get<JournalRequeued>(e[1]).attempts, 0u);
    EXPECT_FALSE(runtime_->get(id).has_value());
  }
  JobState state_of(JobId id) {
    auto r = runtime_->get(id);
    EXPECT_TRUE(r.has_value());
    return r ? r->state : JobState::kQueued;
  }

  /// Troupe "t" of one `kind` actor, and one job submitted to it and run
  /// as far as it goes.
  JobId run_one(Kind kind, std::string payload = {}) {
    runtime_->apply({builtin_troupe("t", kind, 1)});
    run();
    const JobId id = submit_ok("t", std::move(payload));
    run();
    return id;
  }
  /// The store's row of job `id` of troupe "t" after another replica took
  /// it over and ended it: FAILED on its attempt 2, output "theirs".
  static RecoveredJob taken_over(JobId id, std::string payload) {
    auto r = row(id.value, "t", JobState::kFailed, std::move(payload));
    r.attempts = 2;
    r.output = "theirs";
    return r;
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

  /// find()'s answer (the test journals answer inline); nullopt when
  /// `done` was not called.
  std::optional<StoreAnswer<std::optional<JobRecord>>> find_now(JobId id) {
    std::optional<StoreAnswer<std::optional<JobRecord>>> answer;
    runtime_->find(id, [&](StoreAnswer<std::optional<JobRecord>> a) { answer = std::move(a); });
    return answer;
  }
  /// The record find() found; nullopt for any other answer.
  std::optional<JobRecord> found_now(JobId id) {
    auto answer = find_now(id);
    auto* found = answer ? std::get_if<std::optional<JobRecord>>(&*answer) : nullptr;
    return found != nullptr ? *found : std::nullopt;
  }
  /// What cancel_anywhere() reported; nullopt for any other answer.
  std::optional<CancelOutcome> cancelled_now(JobId id) {
    std::optional<CancelOutcome> outcome;
    runtime_->cancel_anywhere(id, [&](StoreAnswer<std::optional<CancelOutcome>> a) {
      if (auto* o = std::get_if<std::optional<CancelOutcome>>(&a)) outcome = std::move(*o);
    });
    return outcome;
  }
  /// The list dead_jobs_anywhere() gave (at most 10); nullopt for any other answer.
  std::optional<std::vector<JobRecord>> dead_now(const std::string& troupe) {
    std::optional<std::vector<JobRecord>> list;
    runtime_->dead_jobs_anywhere(
        troupe, 10, [&](StoreAnswer<std::optional<std::vector<JobRecord>>> a) {
          if (auto* l = std::get_if<std::optional<std::vector<JobRecord>>>(&a))
            list = std::move(*l);
        });
    return list;
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
  J journal_;
  std::unique_ptr<Runtime> runtime_;
};

using DurableRuntimeTest = RuntimeOnJournal<TestJournal>;
using SharedRuntimeTest = RuntimeOnJournal<SharedTestJournal>;

bool conserves(const TroupeCounters& c) {
  return c.submitted ==
         c.succeeded + c.failed + c.dead + c.cancelled + c.aborted + c.left + c.in_flight;
}

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

TEST_F(DurableRuntimeTest, AWaitingSubmitterIsToldTheEndOnlyOnceItIsDurable) {
  // wait=true promises a durable outcome: the runtime tells the submitter
  // (and a duplicate's waiter) once the terminal entry is committed; a
  // watcher is told at once, as the state changes.
  runtime_->apply({builtin_troupe("t", Kind::kEcho, 1)});
  run();
  std::vector<JobRecord> waited;
  JobRequest r;
  r.troupe = "t";
  r.payload = "out";
  r.idempotency_key = "k";
  auto accepted = runtime_->submit(JobRequest(r), [&](const JobRecord& e) { waited.push_back(e); });
  ASSERT_TRUE(std::holds_alternative<Accepted>(accepted));
  const JobId id = std::get<Accepted>(accepted).id;
  std::vector<JobRecord> watched;
  ASSERT_TRUE(std::holds_alternative<WatchId>(
      runtime_->watch(id, [&](const JobRecord& e) { watched.push_back(e); })));
  run();
  ASSERT_EQ(state_of(id), JobState::kSucceeded);
  ASSERT_FALSE(watched.empty());
  EXPECT_EQ(watched.back().state, JobState::kSucceeded);
  EXPECT_TRUE(waited.empty()) << "told an end that is not durable yet";
  // A duplicate's wait, asked before the commit, waits for it too.
  std::vector<JobRecord> duplicate_waited;
  ASSERT_TRUE(std::holds_alternative<Accepted>(
      runtime_->submit(JobRequest(r), [&](const JobRecord& e) { duplicate_waited.push_back(e); })));
  run();
  EXPECT_TRUE(duplicate_waited.empty());

  journal_.commit();
  run();
  ASSERT_EQ(waited.size(), 1u);
  EXPECT_EQ(waited[0].state, JobState::kSucceeded);
  EXPECT_EQ(waited[0].result, "out");
  ASSERT_EQ(duplicate_waited.size(), 1u);
  EXPECT_EQ(duplicate_waited[0].result, "out");
  EXPECT_FALSE(runtime_->journal_failure().has_value());
}

TEST_F(DurableRuntimeTest, AWaitingSubmitterOfAFailedJournalIsToldAndCanSeeTheFailure) {
  runtime_->apply({builtin_troupe("t", Kind::kEcho, 1)});
  run();
  std::vector<JobRecord> waited;
  std::optional<JournalFailure> seen;
  JobRequest r;
  r.troupe = "t";
  ASSERT_TRUE(
      std::holds_alternative<Accepted>(runtime_->submit(std::move(r), [&](const JobRecord& e) {
        waited.push_back(e);
        seen = runtime_->journal_failure();
      })));
  run();
  EXPECT_TRUE(waited.empty());
  journal_.fail("sqlite /tmp/x.db: disk I/O error");
  run();
  ASSERT_EQ(waited.size(), 1u);
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->message, "sqlite /tmp/x.db: disk I/O error");
}

TEST_F(DurableRuntimeTest, AWaitingSubmitterWhoseBarrierFailsLearnsItThoughTheJournalGoesOn) {
  // A shared journal that closes without reaching its store fails its
  // barriers but not itself: the end told behind such a barrier is not
  // durable, and the submitter must be able to tell.
  runtime_->apply({builtin_troupe("t", Kind::kEcho, 1)});
  run();
  std::optional<JournalFailure> seen;
  bool told = false;
  JobRequest r;
  r.troupe = "t";
  ASSERT_TRUE(
      std::holds_alternative<Accepted>(runtime_->submit(std::move(r), [&](const JobRecord&) {
        told = true;
        seen = runtime_->journal_failure();
      })));
  run();
  ASSERT_FALSE(told);
  journal_.fail_barriers("postgres store: closed while the store was unreachable");
  run();
  ASSERT_TRUE(told);
  ASSERT_TRUE(seen) << "told an end that is not durable as if it were";
  EXPECT_EQ(seen->message, "postgres store: closed while the store was unreachable");
  EXPECT_FALSE(journal_.failure().has_value());
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

// --- A shared journal (issue 14): the ClusterHooks and the any-replica
// lookups. ---

TEST_F(SharedRuntimeTest, TheRuntimeSetsEveryClusterHook) {
  EXPECT_TRUE(journal_.hooks.room);
  EXPECT_TRUE(journal_.hooks.claimed);
  EXPECT_TRUE(journal_.hooks.lost);
  EXPECT_TRUE(journal_.hooks.cancel);
  EXPECT_TRUE(journal_.hooks.availability);
  EXPECT_TRUE(journal_.hooks.leadership);
  EXPECT_TRUE(journal_.hooks.permits);
  EXPECT_TRUE(journal_.hooks.demand);
  EXPECT_TRUE(journal_.hooks.tokens);
  EXPECT_TRUE(journal_.hooks.token_demand);
}

TEST_F(SharedRuntimeTest, AClaimedQueuedJobRunsAndJournalsItsTransitions) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 1)});
  run();
  runtime_->recover();
  journal_.hooks.claimed(row(21, "t", JobState::kQueued, "p"));
  run();
  EXPECT_EQ(state_of(JobId{21}), JobState::kSucceeded);
  // Accepted by another replica: its accept is not journaled again here.
  auto e = journal_.entries_of(JobId{21});
  ASSERT_EQ(e.size(), 2u);
  ASSERT_TRUE(is<JournalStarted>(e[0]));
  EXPECT_EQ(std::get<JournalStarted>(e[0]).attempts, 1u);
  ASSERT_TRUE(is<JournalTerminal>(e[1]));
  EXPECT_EQ(std::get<JournalTerminal>(e[1]).state, JobState::kSucceeded);
  auto c = runtime_->troupe("t")->counters;
  EXPECT_EQ(c.submitted, 1u);
  EXPECT_EQ(c.succeeded, 1u);
  EXPECT_TRUE(conserves(c));
}

TEST_F(SharedRuntimeTest, AClaimedQueuedJobIsTakenPastAFullMailbox) {
  auto o = builtin_troupe("t", Kind::kSleep, 1);
  o.mailbox_capacity = 1;
  runtime_->apply({o});
  run();
  submit_ok("t", "1h");
  run();
  submit_ok("t", "1h");  // the mailbox is full now
  EXPECT_EQ(journal_.hooks.room("t"), 0u);
  // The journal saw room before a submit raced it: the claim is kept.
  journal_.hooks.claimed(row(22, "t", JobState::kQueued, "1h"));
  EXPECT_EQ(state_of(JobId{22}), JobState::kQueued);
  auto c = runtime_->troupe("t")->counters;
  EXPECT_EQ(c.submitted, 3u);
  EXPECT_EQ(c.in_flight, 3u);
  EXPECT_TRUE(journal_.entries_of(JobId{22}).empty());  // not handed back
}

TEST_F(SharedRuntimeTest, AClaimedRetryWaitingJobRunsAtItsNextRunTime) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 1)});
  run();
  auto r = row(23, "t", JobState::kRetryWait);
  r.attempts = 1;
  r.next_run_ns = detail::to_ns(clock_.wall_now()) + std::int64_t{5'000'000'000};
  journal_.hooks.claimed(std::move(r));
  run();  // the retry timer is armed on the troupe's strand
  advance(4s);
  EXPECT_EQ(state_of(JobId{23}), JobState::kRetryWait);
  EXPECT_TRUE(started().empty());
  advance(1s);
  EXPECT_EQ(state_of(JobId{23}), JobState::kSucceeded);
  auto e = journal_.entries_of(JobId{23});
  ASSERT_EQ(e.size(), 2u);
  ASSERT_TRUE(is<JournalStarted>(e[0]));
  EXPECT_EQ(std::get<JournalStarted>(e[0]).attempts, 2u);
  EXPECT_TRUE(is<JournalTerminal>(e[1]));
}

TEST_F(SharedRuntimeTest, AClaimedRunningJobCountsACrashAndIsRetried) {
  auto o = builtin_troupe("t", Kind::kNoop, 1);
  o.retry.max_attempts = 3;
  o.retry.initial_backoff = 2s;
  runtime_->apply({o});
  run();
  auto r = row(24, "t", JobState::kRunning);
  r.attempts = 1;  // its owner died while attempt 1 ran
  journal_.hooks.claimed(std::move(r));
  run();
  EXPECT_EQ(state_of(JobId{24}), JobState::kRetryWait);
  auto e = journal_.entries_of(JobId{24});
  ASSERT_EQ(e.size(), 1u);
  ASSERT_TRUE(is<JournalRetryWait>(e[0]));
  EXPECT_EQ(std::get<JournalRetryWait>(e[0]).failure, FailureClass::kCrash);
  EXPECT_EQ(std::get<JournalRetryWait>(e[0]).attempts, 1u);
  advance(2s);
  EXPECT_EQ(state_of(JobId{24}), JobState::kSucceeded);
  EXPECT_EQ(runtime_->get(JobId{24})->attempts, 2u);
  EXPECT_TRUE(conserves(runtime_->troupe("t")->counters));
}

TEST_F(SharedRuntimeTest, AClaimedRunningJobAtMaxAttemptsEndsDead) {
  auto o = builtin_troupe("t", Kind::kNoop, 1);
  o.retry.max_attempts = 2;
  runtime_->apply({o});
  run();
  auto r = row(25, "t", JobState::kRunning);
  r.attempts = 2;
  journal_.hooks.claimed(std::move(r));
  run();
  EXPECT_EQ(state_of(JobId{25}), JobState::kDead);
  EXPECT_TRUE(started().empty());
  auto e = journal_.entries_of(JobId{25});
  ASSERT_EQ(e.size(), 1u);
  ASSERT_TRUE(is<JournalTerminal>(e[0]));
  EXPECT_EQ(std::get<JournalTerminal>(e[0]).state, JobState::kDead);
  EXPECT_EQ(std::get<JournalTerminal>(e[0]).failure, FailureClass::kCrash);
  auto c = runtime_->troupe("t")->counters;
  EXPECT_EQ(c.dead, 1u);
  EXPECT_TRUE(conserves(c));
}

TEST_F(SharedRuntimeTest, AClaimedTerminalRowIsIgnored) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 1)});
  run();
  journal_.hooks.claimed(row(26, "t", JobState::kSucceeded));
  run();
  EXPECT_FALSE(runtime_->get(JobId{26}));
  EXPECT_TRUE(journal_.entries().empty());
  EXPECT_EQ(runtime_->troupe("t")->counters.submitted, 0u);
}

TEST_F(SharedRuntimeTest, AClaimThisProcessCannotTakeIsHandedBackAndCountedAsLeft) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 1)});
  run();
  auto other = row(27, "not-here", JobState::kRunning);
  other.attempts = 2;
  journal_.hooks.claimed(std::move(other));
  auto e = journal_.entries_of(JobId{27});
  ASSERT_EQ(e.size(), 1u);
  ASSERT_TRUE(is<JournalRequeued>(e[0]));
  EXPECT_EQ(std::get<JournalRequeued>(e[0]).attempts, 2u);

  std::optional<DrainReport> report;
  runtime_->drain(10s, [&](DrainReport r) { report = r; });
  run();
  ASSERT_TRUE(report);
  EXPECT_EQ(journal_.hooks.room("t"), 0u);
  auto late = row(28, "t", JobState::kRetryWait);
  late.attempts = 1;
  journal_.hooks.claimed(std::move(late));
  run();
  e = journal_.entries_of(JobId{28});
  ASSERT_EQ(e.size(), 1u);
  ASSERT_TRUE(is<JournalRequeued>(e[0]));
  EXPECT_EQ(std::get<JournalRequeued>(e[0]).attempts, 1u);
  EXPECT_TRUE(started().empty());
  auto c = runtime_->troupe("t")->counters;
  EXPECT_EQ(c.submitted, 1u);
  EXPECT_EQ(c.left, 1u);
  EXPECT_EQ(c.in_flight, 0u);
  EXPECT_TRUE(conserves(c));
}

TEST_F(SharedRuntimeTest, RoomIsTheFreeMailboxRoomOfAnOpenHostedTroupe) {
  auto o = builtin_troupe("t", Kind::kSleep, 1);
  o.mailbox_capacity = 3;
  runtime_->apply({o});
  run();
  EXPECT_EQ(journal_.hooks.room("t"), 3u);
  EXPECT_EQ(journal_.hooks.room("other"), 0u);
  submit_ok("t", "1h");
  run();  // taken by the actor: no longer in the mailbox
  EXPECT_EQ(journal_.hooks.room("t"), 3u);
  submit_ok("t", "1h");
  submit_ok("t", "1h");
  EXPECT_EQ(journal_.hooks.room("t"), 1u);
  runtime_->drain(1h, {});
  EXPECT_EQ(journal_.hooks.room("t"), 0u);
}

TEST_F(SharedRuntimeTest, ALostRunningJobIsCancelledAndNothingMoreIsJournaledForIt) {
  auto o = builtin_troupe("t", Kind::kSleep, 1);
  o.retry.max_attempts = 3;
  runtime_->apply({o});
  run();
  int terminal_calls = 0;
  auto sentinel = std::make_shared<int>(0);
  std::weak_ptr<int> callback_alive = sentinel;
  JobRequest request;
  request.troupe = "t";
  request.payload = "1h";
  auto accepted = runtime_->submit(std::move(request), [&terminal_calls, s = std::move(sentinel)](
                                                           const JobRecord&) { ++terminal_calls; });
  ASSERT_TRUE(std::holds_alternative<Accepted>(accepted));
  const JobId id = std::get<Accepted>(accepted).id;
  int watch_calls = 0;
  ASSERT_TRUE(std::holds_alternative<WatchId>(
      runtime_->watch(id, [&](const JobRecord&) { ++watch_calls; })));
  run();
  ASSERT_EQ(state_of(id), JobState::kRunning);
  const int watched_before = watch_calls;
  const auto journaled = journal_.entries_of(id).size();  // accepted, started

  journal_.hooks.lost(id);
  run();
  // The attempt was cancelled and its outcome discarded: no RetryWait, no
  // Terminal; no callback, no watch update. The waiter and the watch follow
  // the job through the store (it has no row for it yet).
  EXPECT_EQ(journal_.entries_of(id).size(), journaled);
  EXPECT_EQ(terminal_calls, 0);
  EXPECT_EQ(watch_calls, watched_before);
  EXPECT_FALSE(callback_alive.expired());
  auto c = runtime_->troupe("t")->counters;
  EXPECT_EQ(c.left, 1u);
  EXPECT_EQ(c.in_flight, 0u);
  EXPECT_EQ(c.cancelled + c.failed + c.dead + c.succeeded, 0u);
  EXPECT_TRUE(conserves(c));
  EXPECT_TRUE(observer_.of("t").illegal.empty());
  // The actor is free again: the next job runs.
  const JobId next = submit_ok("t", "1h");
  run();
  EXPECT_EQ(state_of(next), JobState::kRunning);
  // A late lost() of the same job does nothing more.
  journal_.hooks.lost(id);
  EXPECT_EQ(runtime_->troupe("t")->counters.left, 1u);
  // The new owner ends it: the waiter gets that outcome from the store, once.
  auto ended = row(id.value, "t", JobState::kSucceeded, "1h");
  ended.attempts = 2;
  journal_.rows_elsewhere[id.value] = ended;
  advance(RuntimeOptions{}.remote_watch_interval);
  EXPECT_EQ(terminal_calls, 1);
  EXPECT_EQ(watch_calls, watched_before + 1);
  EXPECT_TRUE(callback_alive.expired());
  advance(RuntimeOptions{}.remote_watch_interval);
  EXPECT_EQ(terminal_calls, 1);
}

TEST_F(SharedRuntimeTest, AnOutcomeTheStoreRefusedIsNotToldHereAndItsWaitersFollowTheStore) {
  // A replica paused past its lease finishes the attempt it ran; the store
  // gave the job to another replica meanwhile, so the fenced terminal write
  // matches no row and the journal reports the job lost before the commit's
  // barrier completes (store/pg_journal.cpp).
  runtime_->apply({builtin_troupe("t", Kind::kEcho, 1)});
  run();
  std::vector<JobRecord> waited;
  const JobId id = submit_waiting("t", waited, "here");
  std::vector<JobRecord> watched;
  ASSERT_TRUE(std::holds_alternative<WatchId>(
      runtime_->watch(id, [&](const JobRecord& r) { watched.push_back(r); })));
  run();
  ASSERT_EQ(state_of(id), JobState::kSucceeded);
  ASSERT_TRUE(is<JournalTerminal>(journal_.entries_of(id).back()));
  // Not told before the terminal write committed.
  EXPECT_TRUE(waited.empty());
  ASSERT_FALSE(watched.empty());
  EXPECT_NE(watched.back().state, JobState::kSucceeded);
  const std::size_t watched_before = watched.size();

  journal_.hooks.lost(id);  // the write found the job another replica's
  journal_.commit();
  run();
  EXPECT_TRUE(waited.empty()) << "the stale outcome was told";
  EXPECT_EQ(watched.size(), watched_before);

  // The store's outcome (the other replica's attempt) is what they get.
  const auto theirs = taken_over(id, "here");
  journal_.rows_elsewhere[id.value] = theirs;
  advance(RuntimeOptions{}.remote_watch_interval);
  ASSERT_EQ(waited.size(), 1u);
  EXPECT_EQ(waited[0].state, JobState::kFailed);
  EXPECT_EQ(waited[0].attempts, 2u);
  ASSERT_EQ(watched.size(), watched_before + 1);
  EXPECT_EQ(watched.back().state, JobState::kFailed);
  // GetJob asks the store too.
  ASSERT_TRUE(found_now(id).has_value());
  EXPECT_EQ(found_now(id)->state, JobState::kFailed);
}

TEST_F(SharedRuntimeTest, AnOutcomeTheStoreKeptIsToldOnceItsWriteCommitted) {
  runtime_->apply({builtin_troupe("t", Kind::kEcho, 1)});
  run();
  std::vector<JobRecord> waited;
  submit_waiting("t", waited, "mine");
  run();
  EXPECT_TRUE(waited.empty());
  journal_.commit();
  ASSERT_EQ(waited.size(), 1u);
  EXPECT_EQ(waited[0].state, JobState::kSucceeded);
  EXPECT_EQ(waited[0].result, "mine");
}

TEST_F(SharedRuntimeTest, AJobNobodyWaitsForAsksNoBarrierAndIsSettledByItsCommit) {
  // An async submit's job: nobody waits for its end, so its end asks the
  // journal for nothing; whoever asks about it later compares its terminal
  // write's position with what the store has answered.
  const JobId id = run_one(Kind::kEcho, "mine");
  ASSERT_EQ(state_of(id), JobState::kSucceeded);
  ASSERT_TRUE(is<JournalTerminal>(journal_.entries_of(id).back()));
  EXPECT_EQ(journal_.pending_barriers(), 0u) << "a barrier was asked for a job nobody waits for";

  // Asked before its write is answered: GetJob waits for it.
  std::optional<StoreAnswer<std::optional<JobRecord>>> early;
  runtime_->find(id, [&](StoreAnswer<std::optional<JobRecord>> a) { early = std::move(a); });
  EXPECT_FALSE(early) << "GetJob told an outcome the store may refuse";
  EXPECT_EQ(journal_.pending_barriers(), 1u);
  journal_.commit();
  ASSERT_TRUE(early);
  auto* answer = std::get_if<std::optional<JobRecord>>(&*early);
  ASSERT_TRUE(answer && *answer);
  EXPECT_EQ((*answer)->state, JobState::kSucceeded);

  // Once the write is answered, lookups are answered at once, no barrier.
  const auto found = found_now(id);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->result, "mine");
  std::vector<JobRecord> watched;
  ASSERT_TRUE(std::holds_alternative<WatchId>(
      runtime_->watch(id, [&](const JobRecord& r) { watched.push_back(r); })));
  ASSERT_EQ(watched.size(), 1u);
  EXPECT_EQ(watched[0].state, JobState::kSucceeded);
  EXPECT_EQ(journal_.pending_barriers(), 0u);
  EXPECT_EQ(journal_.finds, 0);
}

TEST_F(SharedRuntimeTest, AJobNobodyWaitsForWhoseWriteTheStoreRefusedIsAnsweredFromTheStore) {
  // Its end asked no barrier; the commit refuses its fenced terminal write
  // (another replica took it): the journal reports it lost before the
  // position is answered, and from then on the store has its outcome.
  const JobId id = run_one(Kind::kEcho, "here");
  ASSERT_EQ(state_of(id), JobState::kSucceeded);
  const auto theirs = taken_over(id, "here");
  journal_.rows_elsewhere[id.value] = theirs;
  journal_.hooks.lost(id);
  journal_.commit();
  const auto found = found_now(id);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->state, JobState::kFailed);
  EXPECT_EQ(found->attempts, 2u);
  EXPECT_EQ(journal_.finds, 1);
  std::vector<JobRecord> watched;
  ASSERT_TRUE(std::holds_alternative<WatchId>(
      runtime_->watch(id, [&](const JobRecord& r) { watched.push_back(r); })));
  advance(RuntimeOptions{}.remote_watch_interval);
  ASSERT_FALSE(watched.empty());
  for (const auto& w : watched) EXPECT_EQ(w.state, JobState::kFailed) << "told the refused outcome";
}

TEST_F(SharedRuntimeTest, AWatchOfALostJobPollsTheStoreAndEndsWithTheRuntime) {
  runtime_->apply({builtin_troupe("t", Kind::kSleep, 1)});
  run();
  const JobId id = submit_ok("t", "1h");
  auto sentinel = std::make_shared<int>(0);
  std::weak_ptr<int> watch_alive = sentinel;
  std::vector<JobState> seen;
  ASSERT_TRUE(std::holds_alternative<WatchId>(runtime_->watch(
      id, [&seen, s = std::move(sentinel)](const JobRecord& r) { seen.push_back(r.state); })));
  run();
  ASSERT_EQ(state_of(id), JobState::kRunning);

  // Another replica took the job over: the watch follows it in the store.
  auto elsewhere = row(id.value, "t", JobState::kRunning, "1h");
  elsewhere.attempts = 2;
  journal_.rows_elsewhere[id.value] = elsewhere;
  journal_.hooks.lost(id);
  run();
  const int finds = journal_.finds.load();
  EXPECT_GE(finds, 1);
  advance(RuntimeOptions{}.remote_watch_interval);
  EXPECT_GT(journal_.finds.load(), finds);  // polled again
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back(), JobState::kRunning);

  // The runtime goes while the watch still polls: the watch, its pending
  // timer and the callback it holds go with it.
  runtime_.reset();
  run();
  EXPECT_TRUE(watch_alive.expired());
}

TEST_F(SharedRuntimeTest, AJobLostAndClaimedBackRunsHereAgain) {
  const JobId running = run_one(Kind::kSleep, "1h");
  const JobId id = submit_ok("t", "0s");
  journal_.hooks.lost(id);
  // Its owner died meanwhile; the store hands it back to this process.
  journal_.hooks.claimed(row(id.value, "t", JobState::kQueued, "0s"));
  auto record = runtime_->get(id);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->state, JobState::kQueued);
  ASSERT_TRUE(runtime_->cancel(running)->cancelled);
  run();
  EXPECT_EQ(state_of(id), JobState::kSucceeded);
  auto e = journal_.entries_of(id);
  ASSERT_FALSE(e.empty());
  ASSERT_TRUE(is<JournalTerminal>(e.back()));
  EXPECT_EQ(std::get<JournalTerminal>(e.back()).state, JobState::kSucceeded);
  auto c = runtime_->troupe("t")->counters;
  EXPECT_EQ(c.submitted, 3u);
  EXPECT_EQ(c.left, 1u);
  EXPECT_EQ(c.in_flight, 0u);
  EXPECT_TRUE(conserves(c));
}

TEST_F(SharedRuntimeTest, ALostQueuedJobNeverRuns) {
  const JobId running = run_one(Kind::kSleep, "1h");
  const JobId queued = submit_ok("t", "1h");
  journal_.hooks.lost(queued);
  auto c = runtime_->troupe("t")->counters;
  EXPECT_EQ(c.left, 1u);
  EXPECT_EQ(c.in_flight, 1u);
  ASSERT_TRUE(runtime_->cancel(running)->cancelled);
  run();
  EXPECT_EQ(state_of(running), JobState::kCancelled);
  auto e = journal_.entries_of(queued);
  ASSERT_EQ(e.size(), 1u);  // its accept only: it never started here
  EXPECT_TRUE(is<JournalAccepted>(e[0]));
  c = runtime_->troupe("t")->counters;
  EXPECT_EQ(c.in_flight, 0u);
  EXPECT_TRUE(conserves(c));
  EXPECT_TRUE(observer_.of("t").illegal.empty());
}

TEST_F(SharedRuntimeTest, ALostRetryWaitingJobLeavesItsTimer) {
  auto o = builtin_troupe("t", Kind::kFail, 1);
  o.retry.max_attempts = 3;
  o.retry.initial_backoff = 1s;
  runtime_->apply({o});
  run();
  const JobId id = submit_ok("t");
  run();
  ASSERT_EQ(state_of(id), JobState::kRetryWait);
  const auto journaled = journal_.entries_of(id).size();
  journal_.hooks.lost(id);
  advance(5s);
  EXPECT_EQ(journal_.entries_of(id).size(), journaled);
  auto c = runtime_->troupe("t")->counters;
  EXPECT_EQ(c.left, 1u);
  EXPECT_EQ(c.in_flight, 0u);
  EXPECT_TRUE(conserves(c));
}

TEST_F(SharedRuntimeTest, TheCancelHookCancelsAsALocalCancel) {
  const JobId id = run_one(Kind::kSleep, "1h");
  journal_.hooks.cancel(id);
  run();
  EXPECT_EQ(state_of(id), JobState::kCancelled);
  auto e = journal_.entries_of(id);
  ASSERT_TRUE(is<JournalTerminal>(e.back()));
  EXPECT_EQ(std::get<JournalTerminal>(e.back()).state, JobState::kCancelled);
}

TEST_F(SharedRuntimeTest, WhileTheStoreIsDownSubmitsAreRefusedUntilItIsBack) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 1)});
  run();
  std::vector<std::pair<bool, std::string>> told;
  runtime_->on_store_availability(
      [&](bool up, const std::string& why) { told.emplace_back(up, why); });
  journal_.hooks.availability(false, "postgres 127.0.0.1:5432: connection refused");
  auto refused = submit("t");
  ASSERT_TRUE(std::holds_alternative<Rejection>(refused));
  EXPECT_EQ(std::get<Rejection>(refused).reason, RejectReason::kStoreUnavailable);
  EXPECT_EQ(std::get<Rejection>(refused).store_failure,
            "postgres 127.0.0.1:5432: connection refused");
  EXPECT_TRUE(journal_.entries().empty());
  journal_.hooks.availability(true, "");
  submit_ok("t");
  ASSERT_EQ(told.size(), 2u);
  EXPECT_EQ(told[0],
            std::make_pair(false, std::string("postgres 127.0.0.1:5432: connection refused")));
  EXPECT_EQ(told[1], std::make_pair(true, std::string()));
}

TEST_F(SharedRuntimeTest, AJobLostAfterItEndedHereIsLookedUpInTheStore) {
  const JobId id = run_one(Kind::kSleep, "1s");
  advance(1s);
  ASSERT_EQ(state_of(id), JobState::kSucceeded);
  // Its fenced terminal write found another owner: the store has the
  // outcome of the replica that took the job over.
  auto elsewhere = row(id.value, "t", JobState::kFailed, "1s");
  elsewhere.attempts = 2;
  journal_.rows_elsewhere[id.value] = elsewhere;
  journal_.hooks.lost(id);
  auto found = found_now(id);
  EXPECT_EQ(journal_.finds, 1);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->state, JobState::kFailed);
  EXPECT_EQ(found->attempts, 2u);
  // What ended here stays counted as it ended.
  auto c = runtime_->troupe("t")->counters;
  EXPECT_EQ(c.succeeded, 1u);
  EXPECT_EQ(c.left, 0u);
  EXPECT_TRUE(conserves(c));
}

TEST_F(SharedRuntimeTest, FindAsksTheStoreOnlyForJobsNotHeldHere) {
  const JobId here = run_one(Kind::kSleep, "1h");
  auto found = found_now(here);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->state, JobState::kRunning);
  EXPECT_EQ(journal_.finds, 0);

  auto elsewhere = row(31, "t", JobState::kRunning, "p", "k");
  elsewhere.attempts = 2;
  journal_.rows_elsewhere[31] = elsewhere;
  found = found_now(JobId{31});
  EXPECT_EQ(journal_.finds, 1);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->id, JobId{31});
  EXPECT_EQ(found->troupe, "t");
  EXPECT_EQ(found->state, JobState::kRunning);
  EXPECT_EQ(found->attempts, 2u);
  EXPECT_EQ(found->key, "k");

  auto unknown = find_now(JobId{32});
  ASSERT_TRUE(unknown);  // answered
  ASSERT_TRUE(std::holds_alternative<std::optional<JobRecord>>(*unknown));
  EXPECT_FALSE(std::get<std::optional<JobRecord>>(*unknown));  // the store has no such job
  EXPECT_EQ(journal_.finds, 2);

  // Lost to another replica: the store has the truth, not the stale record.
  journal_.hooks.lost(here);
  run();
  auto moved = row(here.value, "t", JobState::kSucceeded);
  moved.output = "done elsewhere";
  journal_.rows_elsewhere[here.value] = moved;
  found = found_now(here);
  EXPECT_EQ(journal_.finds, 3);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->state, JobState::kSucceeded);
  EXPECT_EQ(found->result, "done elsewhere");
}

TEST_F(SharedRuntimeTest, CancelAnywhereAsksTheStoreOnlyForJobsNotHeldHere) {
  runtime_->apply({builtin_troupe("t", Kind::kSleep, 1)});
  run();
  submit_ok("t", "1h");
  run();
  const JobId here = submit_ok("t", "1h");
  auto outcome = cancelled_now(here);
  ASSERT_TRUE(outcome);
  EXPECT_TRUE(outcome->cancelled);
  EXPECT_EQ(journal_.cancel_requests, 0);
  run();
  EXPECT_EQ(state_of(here), JobState::kCancelled);

  journal_.rows_elsewhere[33] = row(33, "t", JobState::kQueued);
  journal_.rows_elsewhere[34] = row(34, "t", JobState::kSucceeded);
  outcome = cancelled_now(JobId{33});
  EXPECT_EQ(journal_.cancel_requests, 1);
  ASSERT_TRUE(outcome);
  EXPECT_TRUE(outcome->cancelled);
  EXPECT_EQ(outcome->job.id, JobId{33});
  outcome = cancelled_now(JobId{34});
  ASSERT_TRUE(outcome);
  EXPECT_FALSE(outcome->cancelled);  // already terminal
  bool answered = false;
  runtime_->cancel_anywhere(JobId{35}, [&](StoreAnswer<std::optional<CancelOutcome>> o) {
    answered = true;
    ASSERT_TRUE(std::holds_alternative<std::optional<CancelOutcome>>(o));
    EXPECT_FALSE(std::get<std::optional<CancelOutcome>>(o));
  });
  EXPECT_TRUE(answered);
  EXPECT_EQ(journal_.cancel_requests, 3);
}

TEST_F(SharedRuntimeTest, DeadJobsAnywhereIsTheStoresListForAHostedTroupe) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 1)});
  run();
  auto dead = row(36, "t", JobState::kDead);
  dead.output = "it failed";
  journal_.dead_rows.push_back(dead);
  journal_.dead_rows.push_back(row(37, "other", JobState::kDead));
  auto list = dead_now("t");
  EXPECT_EQ(journal_.dead_lookups, 1);
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->front().id, JobId{36});
  EXPECT_EQ(list->front().error, "it failed");
  bool answered = false;
  runtime_->dead_jobs_anywhere(
      "other", 10, [&](StoreAnswer<std::optional<std::vector<JobRecord>>> l) {
        answered = true;
        ASSERT_TRUE(std::holds_alternative<std::optional<std::vector<JobRecord>>>(l));
        EXPECT_FALSE(std::get<std::optional<std::vector<JobRecord>>>(l));  // not hosted here
      });
  EXPECT_TRUE(answered);
  EXPECT_EQ(journal_.dead_lookups, 1);
}

// Issue 14, "lookups during an outage": a lookup the store did not answer is
// StoreUnavailable with the store's reason, never "no such job"; a job held
// here is answered from memory all the same.
TEST_F(SharedRuntimeTest, LookupsTheStoreDoesNotAnswerSaySoRatherThanNotFound) {
  const JobId here = run_one(Kind::kSleep, "1h");
  journal_.rows_elsewhere[51] = row(51, "t", JobState::kRunning);
  journal_.dead_rows.push_back(row(52, "t", JobState::kDead));
  const std::string why = "postgres store: connection to 127.0.0.1:5432 refused";
  journal_.unavailable = why;

  auto unanswered = [&](const auto& answer) -> std::string {
    if (!answer) return "not answered";
    const auto* down = std::get_if<StoreUnavailable>(&*answer);
    return down != nullptr ? down->why : "answered as if the store had";
  };
  for (JobId id : {JobId{51}, JobId{53}}) {  // held elsewhere, or unknown: only the store knows
    EXPECT_EQ(unanswered(find_now(id)), why) << id.value;
    std::optional<StoreAnswer<std::optional<CancelOutcome>>> cancel;
    runtime_->cancel_anywhere(
        id, [&](StoreAnswer<std::optional<CancelOutcome>> a) { cancel = std::move(a); });
    EXPECT_EQ(unanswered(cancel), why) << id.value;
  }
  std::optional<StoreAnswer<std::optional<std::vector<JobRecord>>>> dead;
  runtime_->dead_jobs_anywhere(
      "t", 10, [&](StoreAnswer<std::optional<std::vector<JobRecord>>> a) { dead = std::move(a); });
  EXPECT_EQ(unanswered(dead), why);
  EXPECT_EQ(journal_.finds, 2);
  EXPECT_EQ(journal_.cancel_requests, 2);
  EXPECT_EQ(journal_.dead_lookups, 1);

  // Held here: answered from memory, the store is not asked.
  auto found = found_now(here);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->state, JobState::kRunning);
  EXPECT_EQ(journal_.finds, 2);

  // A remote watch is accepted and reads again at the next tick, delivering
  // nothing until the store answers.
  std::vector<JobState> seen;
  ASSERT_TRUE(std::holds_alternative<WatchId>(
      runtime_->watch(JobId{51}, [&](const JobRecord& r) { seen.push_back(r.state); })));
  run();
  advance(RuntimeOptions{}.remote_watch_interval);
  EXPECT_EQ(journal_.finds, 4);
  EXPECT_TRUE(seen.empty());

  // The store is back: the same lookups answer again.
  journal_.unavailable.reset();
  found = found_now(JobId{51});
  ASSERT_TRUE(found);
  EXPECT_EQ(found->state, JobState::kRunning);
  auto none = find_now(JobId{53});
  ASSERT_TRUE(none && std::holds_alternative<std::optional<JobRecord>>(*none));
  EXPECT_FALSE(std::get<std::optional<JobRecord>>(*none));
  auto list = dead_now("t");
  ASSERT_TRUE(list);
  EXPECT_EQ(list->size(), 1u);
  advance(RuntimeOptions{}.remote_watch_interval);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen.front(), JobState::kRunning);
}

TEST_F(DurableRuntimeTest, AJournalOfOneProcessAnswersEveryLookupHere) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 1)});
  run();
  auto found = find_now(JobId{41});
  ASSERT_TRUE(found && std::holds_alternative<std::optional<JobRecord>>(*found));
  EXPECT_FALSE(std::get<std::optional<JobRecord>>(*found));
  bool answered = false;
  runtime_->cancel_anywhere(JobId{41}, [&](StoreAnswer<std::optional<CancelOutcome>> o) {
    answered = true;
    ASSERT_TRUE(std::holds_alternative<std::optional<CancelOutcome>>(o));
    EXPECT_FALSE(std::get<std::optional<CancelOutcome>>(o));
  });
  EXPECT_TRUE(answered);
}

TEST_F(SharedRuntimeTest, ClaimsRacingSubmitsAndADrainLoseNoJob) {
  // The journal's thread claims while a client submits and the daemon
  // drains, on io threads: every claimed job either ran here or went back
  // to the store, exactly once, and the counters conserve.
  auto o = builtin_troupe("t", Kind::kNoop, 2);
  o.mailbox_capacity = 100000;
  runtime_->apply({o});
  runtime_->recover();
  auto work = boost::asio::make_work_guard(io_);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) threads.emplace_back([this] { io_.run(); });
  constexpr std::uint64_t kClaims = 2000;
  constexpr int kSubmits = 2000;
  std::atomic<int> accepted{0};
  std::atomic<std::uint64_t> claims_made{0};
  std::atomic<bool> go{false};
  std::thread submitter([&] {
    while (!go.load()) std::this_thread::yield();
    for (int i = 0; i < kSubmits; ++i) {
      if (std::holds_alternative<Accepted>(submit("t"))) ++accepted;
    }
  });
  std::thread claimer([&] {
    while (!go.load()) std::this_thread::yield();
    for (std::uint64_t id = 1; id <= kClaims; ++id) {
      journal_.hooks.room("t");
      journal_.hooks.claimed(row(id, "t", JobState::kQueued));
      claims_made.store(id);
    }
  });
  go.store(true);
  const auto until = std::chrono::steady_clock::now() + 60s;
  while ((runtime_->troupe("t")->counters.submitted < 500 || claims_made.load() < 200) &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::yield();
  }
  std::mutex m;
  std::condition_variable cv;
  bool drained = false;
  runtime_->drain(60s, [&](DrainReport) {
    std::lock_guard lock(m);
    drained = true;
    cv.notify_all();
  });
  // The gates are closed once drain() returns: every later claim goes back.
  const std::uint64_t claimed_before = claims_made.load();
  submitter.join();
  claimer.join();
  {
    std::unique_lock lock(m);
    EXPECT_TRUE(cv.wait_until(lock, until, [&] { return drained; }));
  }
  work.reset();
  io_.stop();
  for (auto& t : threads) t.join();

  std::unordered_map<std::uint64_t, std::pair<int, int>> of;  // id -> (terminal, requeued)
  for (auto& e : journal_.entries()) {
    if (is<JournalTerminal>(e)) ++of[std::get<JournalTerminal>(e).id.value].first;
    if (is<JournalRequeued>(e)) ++of[std::get<JournalRequeued>(e).id.value].second;
  }
  std::uint64_t ran = 0;
  std::uint64_t handed_back = 0;
  for (std::uint64_t id = 1; id <= kClaims; ++id) {
    const auto [terminal, requeued] = of[id];
    EXPECT_EQ(terminal + requeued, 1) << "claimed job " << id;
    ran += static_cast<std::uint64_t>(terminal);
    handed_back += static_cast<std::uint64_t>(requeued);
  }
  // The first 200 claims were made before the drain began: they ran. Claim
  // claimed_before + 1 may have raced the drain; every later one began after
  // drain() returned.
  RecordProperty("claims_ran", std::to_string(ran));
  RecordProperty("claims_handed_back", std::to_string(handed_back));
  RecordProperty("submits_accepted", std::to_string(accepted.load()));
  EXPECT_GE(ran, 200u);
  EXPECT_GE(handed_back, kClaims - std::min(kClaims, claimed_before + 1));
  auto c = runtime_->troupe("t")->counters;
  EXPECT_EQ(c.submitted, kClaims + static_cast<std::uint64_t>(accepted.load()));
  EXPECT_EQ(c.left, handed_back);
  EXPECT_EQ(c.in_flight, 0u);
  EXPECT_EQ(c.succeeded, ran + static_cast<std::uint64_t>(accepted.load()));
  EXPECT_TRUE(conserves(c));
  EXPECT_TRUE(observer_.of("t").illegal.empty());
}

// ---- Coordinated troupes (`cluster:`): the runtime's side of the
// ClusterHooks leadership, permits and demand. ----

TEST_F(SharedRuntimeTest, ASingletonTroupeRunsOnlyWhileLedAndHandsItsJobsOverWhenTheLeaseGoes) {
  auto o = builtin_troupe("s", Kind::kSleep, 2);
  o.cluster.singleton = true;
  runtime_->apply({o});
  run();
  // Not led here: accepted into the store unowned (accept + requeue), never run.
  EXPECT_EQ(journal_.hooks.room("s"), 0u);
  const JobId elsewhere = submit_ok("s", "1h");
  run();
  expect_handed_over(elsewhere);
  // A claim that arrives while not led goes straight back.
  journal_.hooks.claimed(row(77, "s", JobState::kQueued, "1h"));
  EXPECT_TRUE(is<JournalRequeued>(journal_.entries_of(JobId{77}).back()));

  // Led: claims and submits run here.
  journal_.hooks.leadership("s", 3);
  EXPECT_GT(journal_.hooks.room("s"), 0u);
  journal_.hooks.claimed(row(78, "s", JobState::kQueued, "1h"));
  const JobId second = submit_ok("s", "1h");
  const JobId queued = submit_ok("s", "1h");
  run();
  EXPECT_EQ(state_of(JobId{78}), JobState::kRunning);
  EXPECT_EQ(state_of(second), JobState::kRunning);
  EXPECT_EQ(state_of(queued), JobState::kQueued);

  // The lease is lost: both running attempts are cancelled and requeued
  // without counting them, the queued job is released; nothing ends.
  journal_.hooks.leadership("s", 0);
  run();
  for (JobId id : {JobId{78}, second, queued}) {
    auto entries = journal_.entries_of(id);
    ASSERT_FALSE(entries.empty());
    ASSERT_TRUE(is<JournalRequeued>(entries.back())) << id.to_string();
    EXPECT_EQ(std::get<JournalRequeued>(entries.back()).attempts, 0u) << id.to_string();
    for (const auto& entry : entries) EXPECT_FALSE(is<JournalTerminal>(entry));
  }
  EXPECT_EQ(journal_.hooks.room("s"), 0u);
  auto c = runtime_->troupe("s")->counters;
  EXPECT_EQ(c.submitted, 5u);  // 2 submits and the claim handed back, 1 claim and 2 submits led
  EXPECT_EQ(c.left, 5u);
  EXPECT_EQ(c.in_flight, 0u);
  EXPECT_TRUE(conserves(c));
  EXPECT_TRUE(observer_.of("s").illegal.empty());
}

TEST_F(SharedRuntimeTest, AKeyedJobOfAKeyDispatchedTroupeGoesThroughTheStoreAndAWaitFollowsIt) {
  auto o = builtin_troupe("k", Kind::kNoop, 2);
  o.dispatch = DispatchStrategy::kKey;
  runtime_->apply({o, builtin_troupe("plain", Kind::kNoop, 1)});
  run();
  {
    // The store is told to claim its rows in key order; the other troupe
    // has nothing to coordinate.
    std::lock_guard lock(journal_.coordinated_mutex);
    ASSERT_EQ(journal_.coordinated.size(), 1u);
    EXPECT_EQ(journal_.coordinated[0].name, "k");
    EXPECT_TRUE(journal_.coordinated[0].key_order);
  }
  // With a key: accepted into the store unowned (accept + requeue), not run
  // here; the wait=true caller is answered once the store has it ended.
  std::vector<JobRecord> ended;
  const JobId keyed = submit_waiting("k", ended, {}, "a");
  run();
  expect_handed_over(keyed);
  // Without a key, and in a troupe not dispatched by key: run here.
  const JobId unkeyed = submit_ok("k");
  const JobId plain = submit_ok("plain", {}, "a");
  run();
  EXPECT_EQ(state_of(unkeyed), JobState::kSucceeded);
  EXPECT_EQ(state_of(plain), JobState::kSucceeded);
  EXPECT_TRUE(ended.empty());

  // The store gives the key's row to this replica: it runs here, and the
  // waiting caller gets its outcome as it ends (not at the store's next read).
  journal_.hooks.claimed(row(keyed.value, "k", JobState::kQueued, {}, "a"));
  run();
  EXPECT_EQ(state_of(keyed), JobState::kSucceeded);
  journal_.commit();  // its outcome is told once its terminal write committed
  run();
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].id, keyed);
  EXPECT_EQ(ended[0].state, JobState::kSucceeded);
  auto c = runtime_->troupe("k")->counters;
  EXPECT_EQ(c.submitted, 3u);  // accepted and handed over, unkeyed, claimed
  EXPECT_EQ(c.left, 1u);
  EXPECT_TRUE(conserves(c));
}

TEST_F(SharedRuntimeTest, AWaitOnASingletonLedElsewhereIsAnsweredWhenTheStoreHasItEnded) {
  auto o = builtin_troupe("s", Kind::kNoop, 1);
  o.cluster.singleton = true;
  runtime_->apply({o});
  run();
  std::vector<JobRecord> ended;
  const JobId id = submit_waiting("s", ended);
  run();
  // The holder runs it; this replica reads its end from the store.
  auto done = row(id.value, "s", JobState::kSucceeded);
  done.output = "r";
  journal_.rows_elsewhere[id.value] = done;
  advance(RuntimeOptions{}.remote_watch_interval);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].id, id);
  EXPECT_EQ(ended[0].state, JobState::kSucceeded);
  EXPECT_EQ(ended[0].result, "r");
}

TEST_F(SharedRuntimeTest, ACappedTroupeRunsAtMostThePermitsItHolds) {
  auto o = builtin_troupe("c", Kind::kSleep, 4);
  o.cluster.max_concurrency = 3;
  runtime_->apply({o});
  run();
  std::vector<JobId> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(submit_ok("c", "1h"));
  run();
  EXPECT_TRUE(started().empty());             // no permit yet
  EXPECT_EQ(journal_.hooks.demand("c"), 4u);  // 5 queued, 4 actors

  EXPECT_EQ(journal_.hooks.permits("c", 2), 0u);
  run();
  EXPECT_EQ(started().size(), 2u);
  EXPECT_EQ(journal_.hooks.permits("c", 3), 2u);
  run();
  EXPECT_EQ(started().size(), 3u);
  // Lowered below what runs: no attempt stops, the running ones are reported.
  EXPECT_EQ(journal_.hooks.permits("c", 1), 3u);
  ASSERT_TRUE(runtime_->cancel(started()[0])->cancelled);
  run();
  EXPECT_EQ(started().size(), 3u);  // 2 still run, above the cap of 1
  EXPECT_EQ(journal_.hooks.demand("c"), 4u);
  EXPECT_EQ(journal_.hooks.permits("c", 4), 2u);
  run();
  EXPECT_EQ(started().size(), 5u);
}

TEST_F(SharedRuntimeTest, ARateLimitedTroupeStartsOneAttemptPerGrantedTokenAndAsksForMore) {
  auto o = builtin_troupe("r", Kind::kSleep, 4);
  o.cluster.rate_limit = RateLimitOptions{.enabled = true, .per_second = 10, .burst = 2};
  runtime_->apply({o, builtin_troupe("free", Kind::kSleep, 1)});
  run();
  {
    // The store is told the bucket's shape; a troupe without `cluster:` is
    // not coordinated.
    ASSERT_EQ(journal_.coordinated.size(), 1u);
    EXPECT_EQ(journal_.coordinated[0].name, "r");
    EXPECT_EQ(journal_.coordinated[0].rate_per_second, 10.0);
    EXPECT_EQ(journal_.coordinated[0].rate_burst, 2u);
  }
  for (int i = 0; i < 5; ++i) submit_ok("r", "1h");
  run();
  EXPECT_TRUE(started().empty());                                    // no token yet
  EXPECT_EQ(journal_.tokens_wanted, std::vector<std::string>{"r"});  // asked once
  EXPECT_EQ(journal_.hooks.token_demand("r"), 5u);

  journal_.hooks.tokens("r", 2);
  run();
  EXPECT_EQ(started().size(), 2u);  // one start per token
  EXPECT_EQ(journal_.hooks.token_demand("r"), 3u);
  EXPECT_EQ(journal_.tokens_wanted.size(), 2u);  // out again: asked again

  journal_.hooks.tokens("r", 0);  // the bucket is empty: nothing starts
  run();
  EXPECT_EQ(started().size(), 2u);
  EXPECT_EQ(journal_.tokens_wanted.size(), 3u);

  // More than the actors can use: the rest is kept for later starts.
  journal_.hooks.tokens("r", 4);
  run();
  EXPECT_EQ(started().size(), 4u);  // 4 actors busy, 1 queued, 2 tokens held
  EXPECT_EQ(journal_.hooks.token_demand("r"), 0u);
  EXPECT_EQ(journal_.tokens_wanted.size(), 3u);

  // A troupe without a cluster rate limit neither waits nor asks.
  submit_ok("free", "1h");
  run();
  EXPECT_EQ(started().size(), 5u);
  EXPECT_EQ(journal_.hooks.token_demand("free"), 0u);
  EXPECT_EQ(journal_.tokens_wanted.size(), 3u);
}

// ---- Idempotency keys across replicas (issue 14): submit_anywhere asks the
// store (Journal::accept_keyed) before a keyed job exists here. ----

JobRequest keyed(const std::string& troupe, const std::string& key, std::string payload = {}) {
  JobRequest r;
  r.troupe = troupe;
  r.payload = std::move(payload);
  r.idempotency_key = key;
  return r;
}

using Outcome = std::optional<std::variant<Accepted, Rejection>>;

/// A job accepted here under idempotency key "k" ended here (its terminal
/// write appended, not committed yet); then a watch, a GetJob and a
/// duplicate submit's wait=true ask about it: what they are told.
class SharedRuntimeAskedAfterTheEndTest : public SharedRuntimeTest {
 protected:
  void end_here_then_ask(std::string payload) {
    runtime_->apply({builtin_troupe("t", Kind::kEcho, 1)});
    run();
    Outcome accepted;
    runtime_->submit_anywhere(keyed("t", "k", std::move(payload)), {},
                              [&](auto r) { accepted = r; });
    run();
    ASSERT_TRUE(journal_.answer_keyed(KeyedAccept{KeyedAccept::Status::kAccepted, {}, {}}));
    ASSERT_TRUE(accepted && std::holds_alternative<Accepted>(*accepted));
    id = std::get<Accepted>(*accepted).id;
    run();
    ASSERT_EQ(state_of(id), JobState::kSucceeded);
    ASSERT_TRUE(is<JournalTerminal>(journal_.entries_of(id).back()));

    ASSERT_TRUE(std::holds_alternative<WatchId>(
        runtime_->watch(id, [this](const JobRecord& r) { watched.push_back(r); })));
    runtime_->find(id, [this](StoreAnswer<std::optional<JobRecord>> a) { found = a; });
    runtime_->submit_anywhere(
        keyed("t", "k"), [this](const JobRecord& r) { waited.push_back(r); },
        [this](auto r) { duplicate = r; });
    run();
    ASSERT_TRUE(duplicate && std::holds_alternative<Accepted>(*duplicate));
    EXPECT_TRUE(std::get<Accepted>(*duplicate).duplicate);
  }

  /// The watch and the duplicate's wait were each told one outcome: this.
  void expect_both_told_once(JobState state, std::uint32_t attempts) {
    for (const auto* told : {&watched, &waited}) {
      ASSERT_EQ(told->size(), 1u);
      EXPECT_EQ(told->back().state, state);
      EXPECT_EQ(told->back().attempts, attempts);
    }
  }

  JobId id;
  std::vector<JobRecord> watched;
  std::vector<JobRecord> waited;  // the duplicate submit's wait=true
  std::optional<StoreAnswer<std::optional<JobRecord>>> found;
  Outcome duplicate;
};

TEST_F(SharedRuntimeAskedAfterTheEndTest, TheyAreToldTheOutcomeOnlyOnceTheStoreKeptIt) {
  // A replica paused past its lease wakes and finishes the attempt it ran:
  // until the fenced terminal write is answered, the outcome here may be
  // one the store refuses. A watch, a GetJob and a duplicate submit's wait
  // that come in that moment wait for the answer (a WatchJob used to end
  // at once with the stale outcome: Cluster.AWatchEnds...).
  ASSERT_NO_FATAL_FAILURE(end_here_then_ask("here"));
  EXPECT_TRUE(watched.empty()) << "a watch was told an outcome the store may refuse";
  EXPECT_FALSE(found) << "GetJob answered an outcome the store may refuse";
  EXPECT_TRUE(waited.empty());

  // The write found the job another replica's; the store has its outcome.
  const auto theirs = taken_over(id, "here");
  journal_.rows_elsewhere[id.value] = theirs;
  journal_.hooks.lost(id);
  journal_.commit();
  run();
  ASSERT_TRUE(found);
  auto* answer = std::get_if<std::optional<JobRecord>>(&*found);
  ASSERT_TRUE(answer && *answer);
  EXPECT_EQ((*answer)->state, JobState::kFailed);
  EXPECT_EQ((*answer)->attempts, 2u);
  advance(RuntimeOptions{}.remote_watch_interval);
  ASSERT_NO_FATAL_FAILURE(expect_both_told_once(JobState::kFailed, 2u));

  // A later duplicate asks the store: the record here is not the job's.
  Outcome later;
  std::vector<JobRecord> later_waited;
  runtime_->submit_anywhere(
      keyed("t", "k"), [&](const JobRecord& r) { later_waited.push_back(r); },
      [&](auto r) { later = r; });
  run();
  EXPECT_FALSE(later) << "a duplicate was answered from the stale record here";
  ASSERT_EQ(journal_.keyed_waiting().size(), 1u);
  ASSERT_TRUE(journal_.answer_keyed(KeyedAccept{KeyedAccept::Status::kDuplicate, theirs, {}}));
  run();
  ASSERT_TRUE(later && std::holds_alternative<Accepted>(*later));
  EXPECT_EQ(std::get<Accepted>(*later).id, id);
  ASSERT_EQ(later_waited.size(), 1u);
  EXPECT_EQ(later_waited[0].state, JobState::kFailed);
  EXPECT_EQ(later_waited[0].attempts, 2u);
}

TEST_F(SharedRuntimeAskedAfterTheEndTest, TheyAreToldItsOutcomeOnceTheWriteCommitted) {
  ASSERT_NO_FATAL_FAILURE(end_here_then_ask("mine"));
  // While the store is down, a GetJob says so rather than wait for it.
  journal_.hooks.availability(false, "postgres 127.0.0.1:5432: connection refused");
  const auto during = find_now(id);
  ASSERT_TRUE(during);
  auto* down = std::get_if<StoreUnavailable>(&*during);
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->why, "postgres 127.0.0.1:5432: connection refused");
  journal_.hooks.availability(true, "");
  journal_.commit();
  run();
  ASSERT_TRUE(found);
  auto* answer = std::get_if<std::optional<JobRecord>>(&*found);
  ASSERT_TRUE(answer && *answer);
  EXPECT_EQ((*answer)->state, JobState::kSucceeded);
  EXPECT_EQ((*answer)->result, "mine");
  ASSERT_NO_FATAL_FAILURE(expect_both_told_once(JobState::kSucceeded, 1u));
  EXPECT_EQ(journal_.finds, 0) << "the outcome here was the store's: no lookup needed";
}

TEST_F(SharedRuntimeTest, AKeyedSubmitExistsOnlyOnceTheStoreAcceptedItsKey) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 1)});
  run();
  Outcome answer;
  runtime_->submit_anywhere(keyed("t", "k", "p"), {}, [&](auto r) { answer = r; });
  run();
  // The store is asked first: nothing is accepted, journaled or run here meanwhile.
  EXPECT_FALSE(answer);
  const auto waiting = journal_.keyed_waiting();
  ASSERT_EQ(waiting.size(), 1u);
  EXPECT_EQ(waiting[0].troupe, "t");
  EXPECT_EQ(waiting[0].idempotency_key, "k");
  EXPECT_EQ(waiting[0].payload, "p");
  EXPECT_TRUE(journal_.entries().empty());
  EXPECT_EQ(runtime_->troupe("t")->counters.submitted, 0u);

  const JobId id = waiting[0].id;
  ASSERT_TRUE(journal_.answer_keyed(KeyedAccept{KeyedAccept::Status::kAccepted, {}, {}}));
  ASSERT_TRUE(answer);
  ASSERT_TRUE(std::holds_alternative<Accepted>(*answer));
  EXPECT_EQ(std::get<Accepted>(*answer).id, id);  // the id its row was committed with
  EXPECT_FALSE(std::get<Accepted>(*answer).duplicate);
  run();
  EXPECT_EQ(state_of(id), JobState::kSucceeded);
  const auto e = journal_.entries_of(id);
  ASSERT_FALSE(e.empty());
  ASSERT_TRUE(is<JournalAccepted>(e[0]));
  EXPECT_EQ(std::get<JournalAccepted>(e[0]).idempotency_key, "k");

  // Again on this replica: answered from its own jobs, the store not asked.
  answer.reset();
  runtime_->submit_anywhere(keyed("t", "k"), {}, [&](auto r) { answer = r; });
  ASSERT_TRUE(answer);
  ASSERT_TRUE(std::holds_alternative<Accepted>(*answer));
  EXPECT_EQ(std::get<Accepted>(*answer).id, id);
  EXPECT_TRUE(std::get<Accepted>(*answer).duplicate);
  EXPECT_TRUE(journal_.keyed_waiting().empty());
  const auto c = runtime_->troupe("t")->counters;
  EXPECT_EQ(c.submitted, 1u);
  EXPECT_EQ(c.succeeded, 1u);
  EXPECT_TRUE(conserves(c));
}

TEST_F(SharedRuntimeTest, AKeyAnotherReplicaHoldsAnswersItsJobAndNothingRunsHere) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 1)});
  run();
  Outcome answer;
  std::vector<JobRecord> ended;
  runtime_->submit_anywhere(
      keyed("t", "k"), [&](const JobRecord& r) { ended.push_back(r); },
      [&](auto r) { answer = r; });
  auto existing = row(77, "t", JobState::kSucceeded);
  existing.request.idempotency_key = "k";
  existing.attempts = 1;
  existing.output = "done there";
  ASSERT_TRUE(journal_.answer_keyed(KeyedAccept{KeyedAccept::Status::kDuplicate, existing, {}}));
  ASSERT_TRUE(answer);
  ASSERT_TRUE(std::holds_alternative<Accepted>(*answer));
  EXPECT_EQ(std::get<Accepted>(*answer).id, JobId{77});
  EXPECT_TRUE(std::get<Accepted>(*answer).duplicate);
  run();
  // wait=true gets the original's end, as a duplicate of a local job does.
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].id, JobId{77});
  EXPECT_EQ(ended[0].state, JobState::kSucceeded);
  EXPECT_EQ(ended[0].result, "done there");
  // The job that lost never existed here: no entry, no count, nothing withdrawn.
  EXPECT_TRUE(journal_.entries().empty());
  EXPECT_TRUE(journal_.withdrawn().empty());
  const auto c = runtime_->troupe("t")->counters;
  EXPECT_EQ(c.submitted, 0u);
  EXPECT_EQ(c.rejected, 0u);
  EXPECT_TRUE(conserves(c));
}

TEST_F(SharedRuntimeTest, ADuplicateOfAJobRunningElsewhereAnswersAWaitWhenItEnds) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 1)});
  run();
  Outcome answer;
  std::vector<JobRecord> ended;
  runtime_->submit_anywhere(
      keyed("t", "k"), [&](const JobRecord& r) { ended.push_back(r); },
      [&](auto r) { answer = r; });
  auto existing = row(78, "t", JobState::kRunning);
  existing.request.idempotency_key = "k";
  existing.attempts = 1;
  journal_.rows_elsewhere[78] = existing;
  ASSERT_TRUE(journal_.answer_keyed(KeyedAccept{KeyedAccept::Status::kDuplicate, existing, {}}));
  ASSERT_TRUE(answer);
  EXPECT_EQ(std::get<Accepted>(*answer).id, JobId{78});
  EXPECT_TRUE(std::get<Accepted>(*answer).duplicate);
  run();
  EXPECT_TRUE(ended.empty());  // still running there

  existing.state = JobState::kSucceeded;
  existing.output = "r";
  journal_.rows_elsewhere[78] = existing;
  advance(RuntimeOptions{}.remote_watch_interval);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].id, JobId{78});
  EXPECT_EQ(ended[0].state, JobState::kSucceeded);
  EXPECT_TRUE(started().empty());
}

TEST_F(SharedRuntimeTest, AKeyedJobRefusedAfterTheStoreAcceptedItIsWithdrawn) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 1)});
  run();
  Outcome answer;
  runtime_->submit_anywhere(keyed("t", "k"), {}, [&](auto r) { answer = r; });
  ASSERT_EQ(journal_.keyed_waiting().size(), 1u);
  const JobId id = journal_.keyed_waiting()[0].id;
  // The troupe closes while the store decides.
  std::optional<DrainReport> report;
  runtime_->drain(10s, [&](DrainReport r) { report = r; });
  run();
  ASSERT_TRUE(journal_.answer_keyed(KeyedAccept{KeyedAccept::Status::kAccepted, {}, {}}));
  ASSERT_TRUE(answer);
  ASSERT_TRUE(std::holds_alternative<Rejection>(*answer));
  EXPECT_EQ(std::get<Rejection>(*answer).reason, RejectReason::kDraining);
  // Its row goes; nothing of it stays here.
  EXPECT_EQ(journal_.withdrawn(), std::vector<JobId>{id});
  EXPECT_TRUE(journal_.entries_of(id).empty());
  EXPECT_FALSE(runtime_->get(id));
  const auto c = runtime_->troupe("t")->counters;
  EXPECT_EQ(c.submitted, 0u);
  EXPECT_TRUE(conserves(c));
}

TEST_F(SharedRuntimeTest, AKeyedSubmitTheStoreDoesNotAnswerIsRefusedAsUnavailable) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 1)});
  run();
  Outcome answer;
  runtime_->submit_anywhere(keyed("t", "k"), {}, [&](auto r) { answer = r; });
  ASSERT_TRUE(journal_.answer_keyed(
      KeyedAccept{KeyedAccept::Status::kUnavailable, {}, "postgres store: gone"}));
  ASSERT_TRUE(answer);
  ASSERT_TRUE(std::holds_alternative<Rejection>(*answer));
  EXPECT_EQ(std::get<Rejection>(*answer).reason, RejectReason::kStoreUnavailable);
  EXPECT_EQ(std::get<Rejection>(*answer).store_failure, "postgres store: gone");
  EXPECT_TRUE(journal_.entries().empty());
  EXPECT_EQ(runtime_->troupe("t")->counters.submitted, 0u);
}

TEST_F(SharedRuntimeTest, SubmitAnywhereWithoutAKeyIsSubmit) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 1)});
  run();
  Outcome answer;
  runtime_->submit_anywhere(keyed("t", ""), {}, [&](auto r) { answer = r; });
  ASSERT_TRUE(answer);
  ASSERT_TRUE(std::holds_alternative<Accepted>(*answer));
  EXPECT_TRUE(journal_.keyed_waiting().empty());
}

TEST_F(SharedRuntimeTest, AKeyedSubmitOfASingletonLedElsewhereAsksTheStoreThenHandsTheJobOver) {
  auto o = builtin_troupe("s", Kind::kSleep, 1);
  o.cluster.singleton = true;
  runtime_->apply({o});
  run();
  ASSERT_EQ(journal_.hooks.room("s"), 0u);  // not led here: no room, yet it accepts
  Outcome answer;
  runtime_->submit_anywhere(keyed("s", "k", "1h"), {}, [&](auto r) { answer = r; });
  ASSERT_EQ(journal_.keyed_waiting().size(), 1u);  // the key is settled by the store
  const JobId id = journal_.keyed_waiting()[0].id;
  ASSERT_TRUE(journal_.answer_keyed(KeyedAccept{KeyedAccept::Status::kAccepted, {}, {}}));
  ASSERT_TRUE(answer);
  ASSERT_TRUE(std::holds_alternative<Accepted>(*answer));
  EXPECT_EQ(std::get<Accepted>(*answer).id, id);
  run();
  // Handed over to the holder through the store, never run here.
  const auto e = journal_.entries_of(id);
  ASSERT_EQ(e.size(), 2u);
  EXPECT_TRUE(is<JournalAccepted>(e[0]));
  EXPECT_TRUE(is<JournalRequeued>(e[1]));
  EXPECT_TRUE(started().empty());
  EXPECT_TRUE(journal_.withdrawn().empty());
}

TEST_F(SharedRuntimeTest, AKeyedSubmitToAFullTroupeIsRefusedWithoutAskingTheStore) {
  auto o = builtin_troupe("t", Kind::kSleep, 1);
  o.mailbox_capacity = 1;
  runtime_->apply({o});
  run();
  submit_ok("t", "1h");  // runs
  run();
  submit_ok("t", "1h");  // fills the mailbox
  ASSERT_EQ(journal_.hooks.room("t"), 0u);
  Outcome answer;
  runtime_->submit_anywhere(keyed("t", "k", "1h"), {}, [&](auto r) { answer = r; });
  ASSERT_TRUE(answer);
  ASSERT_TRUE(std::holds_alternative<Rejection>(*answer));
  EXPECT_EQ(std::get<Rejection>(*answer).reason, RejectReason::kFull);
  EXPECT_TRUE(journal_.keyed_waiting().empty());
  EXPECT_EQ(runtime_->troupe("t")->counters.rejected, 1u);
}

TEST_F(DurableRuntimeTest, OnAJournalOfOneProcessAKeyIsCheckedHereAlone) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 1)});
  run();
  Outcome first;
  Outcome second;
  runtime_->submit_anywhere(keyed("t", "k"), {}, [&](auto r) { first = r; });
  runtime_->submit_anywhere(keyed("t", "k"), {}, [&](auto r) { second = r; });
  ASSERT_TRUE(first && second);  // inline
  ASSERT_TRUE(std::holds_alternative<Accepted>(*first));
  ASSERT_TRUE(std::holds_alternative<Accepted>(*second));
  EXPECT_EQ(std::get<Accepted>(*second).id, std::get<Accepted>(*first).id);
  EXPECT_TRUE(std::get<Accepted>(*second).duplicate);
}

}  // namespace
}  // namespace troupe::core
