// The job lifecycle alone: every transition through it, illegal ones
// refused and counted, dead letters bounded in count and bytes.
#include "core/job_lifecycle.h"

#include <gtest/gtest.h>

#include "core/manual_clock.h"
#include "tests/unit/core/test_support.h"

namespace troupe::core::detail {
namespace {

using namespace std::chrono_literals;

const std::string kTroupe = "t";

class Host final : public LifecycleHost {
 public:
  void job_ended(const Job&) override { ++ended; }
  void watch_ended(WatchId) override {}
  void drain_ended(bool running) override { ++(running ? drain_running : drain_waiting); }
  void drain_left(bool) override {}
  int ended = 0, drain_running = 0, drain_waiting = 0;
};

class JobLifecycleTest : public ::testing::Test {
 protected:
  JobPtr accept(std::string payload = "p") {
    EXPECT_TRUE(lifecycle_.admit());
    auto job = std::make_shared<Job>();
    job->id = JobId{++next_id_};
    job->troupe_name = &kTroupe;
    job->payload = std::move(payload);
    job->listeners = std::make_unique<JobListeners>();
    job->listeners->on_terminal.push_back([this](const JobRecord&) { ++callbacks_; });
    lifecycle_.accepted(job);
    return job;
  }
  AttemptEnd failed(bool retry) {
    AttemptEnd e;
    e.failure = FailureClass::kRetryable;
    e.retry = retry;
    e.retryable = true;
    e.output = std::string(100, 'e');
    return e;
  }

  ManualClock clock_;
  std::unique_ptr<JobStore> store_ = std::make_unique<InMemoryJobStore>(JobStoreOptions{}, clock_);
  testing::RecordingTroupeObserver observer_;
  Host host_;
  JobLifecycle lifecycle_{clock_, *store_, observer_, host_};
  std::uint64_t next_id_ = 0;
  int callbacks_ = 0;
};

TEST_F(JobLifecycleTest, ASecondTerminalStateIsRefusedCountedAndReported) {
  auto job = accept();
  std::uint32_t attempt = 0;
  bool watched = false;
  ASSERT_TRUE(lifecycle_.start(job, nullptr, 1, attempt, watched));
  EXPECT_EQ(lifecycle_.attempt_ended(job, failed(false), 2), JobState::kDead);
  // Defect 1's shape: the job ended, then something tries to end it again.
  EXPECT_EQ(lifecycle_.attempt_ended(job, failed(false), 3), JobState::kRunning);
  EXPECT_FALSE(lifecycle_.abort_waiting(job, "late"));
  EXPECT_FALSE(lifecycle_.requeue(job, 4));
  EXPECT_EQ(job->state.load(), JobState::kDead);
  const auto c = lifecycle_.counters();
  EXPECT_EQ(c.dead, 1u);
  EXPECT_EQ(c.in_flight, 0u);
  EXPECT_EQ(c.submitted, c.succeeded + c.failed + c.dead + c.cancelled + c.aborted + c.in_flight);
  EXPECT_EQ(c.illegal_transitions, 1u);
  EXPECT_EQ(callbacks_, 1);
  std::lock_guard lock(observer_.mutex);
  ASSERT_EQ(observer_.illegal.size(), 1u);
  EXPECT_EQ(observer_.illegal[0].first, JobState::kDead);
}

TEST_F(JobLifecycleTest, ACancelledRetryIsNeitherRequeuedNorAborted) {
  auto job = accept();
  std::uint32_t attempt = 0;
  bool watched = false;
  ASSERT_TRUE(lifecycle_.start(job, nullptr, 1, attempt, watched));
  ASSERT_EQ(lifecycle_.attempt_ended(job, failed(true), 2), JobState::kRetryWait);
  auto r = lifecycle_.cancel(job);
  EXPECT_TRUE(r.ended);
  lifecycle_.cancelled(job, r);
  EXPECT_FALSE(lifecycle_.requeue(job, 3));              // the retry timer lost the race
  EXPECT_FALSE(lifecycle_.abort_waiting(job, "drain"));  // so did the drain deadline
  const auto c = lifecycle_.counters();
  EXPECT_EQ(c.cancelled, 1u);
  EXPECT_EQ(c.aborted, 0u);
  EXPECT_EQ(c.in_flight, 0u);
  EXPECT_EQ(c.illegal_transitions, 0u);  // races lost by design are not bugs
  EXPECT_EQ(callbacks_, 1);
}

TEST_F(JobLifecycleTest, TheGateReportsEmptyOnlyAfterTheLastCallbackRan) {
  auto job = accept();
  bool empty = false;
  lifecycle_.gate().close([&] {
    empty = true;
    EXPECT_EQ(callbacks_, 1);
  });
  EXPECT_FALSE(lifecycle_.admit());
  EXPECT_FALSE(empty);
  EXPECT_TRUE(lifecycle_.abort_waiting(job, "aborted"));
  EXPECT_TRUE(empty);
  EXPECT_EQ(host_.drain_waiting, 1);
}

TEST_F(JobLifecycleTest, DeadLettersAreBoundedInBytesToo) {
  lifecycle_.set_dead_letter_limits(1000, 350);  // about three 110-byte jobs
  for (int i = 0; i < 5; ++i) {
    auto job = accept(std::string(10, 'p'));
    std::uint32_t attempt = 0;
    bool watched = false;
    ASSERT_TRUE(lifecycle_.start(job, nullptr, 1, attempt, watched));
    lifecycle_.attempt_ended(job, failed(false), 2);
  }
  EXPECT_EQ(lifecycle_.dead_letter_count(), 3u);
  auto dead = lifecycle_.dead_jobs(10);
  ASSERT_EQ(dead.size(), 3u);
  EXPECT_EQ(dead[0].id, JobId{5});  // newest first, oldest dropped
}

}  // namespace
}  // namespace troupe::core::detail
