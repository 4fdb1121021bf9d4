#include "core/runtime.h"

#include <gtest/gtest.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <map>
#include <set>

#include "core/manual_clock.h"
#include "tests/unit/core/test_support.h"

namespace troupe::core {
namespace {

using namespace std::chrono_literals;
using testing::builtin;
using testing::builtin_troupe;
using Kind = BuiltinHandlerOptions::Kind;

/// A runtime on a ManualClock, driven by io.poll() on the test thread:
/// deterministic, no sleeps.
class RuntimeTest : public ::testing::Test {
 protected:
  RuntimeTest() { runtime_ = make_runtime(io_, clock_, observer_, options_); }
  // The runtime goes first, while the io_context is not running (its
  // contract); pending handlers are discarded with the io_context.
  ~RuntimeTest() override { runtime_.reset(); }

  void run() {
    io_.restart();
    io_.poll();
  }
  void advance(Duration d) {
    clock_.advance(d);
    run();
  }

  JobId submit_ok(const std::string& troupe, std::string payload = {}, std::string key = {}) {
    JobRequest r;
    r.troupe = troupe;
    r.payload = std::move(payload);
    r.key = std::move(key);
    auto result = runtime_->submit(std::move(r), [this](const JobRecord& rec) {
      std::lock_guard lock(mutex_);
      terminal_.push_back(rec);
    });
    EXPECT_TRUE(std::holds_alternative<Accepted>(result))
        << (std::holds_alternative<Rejection>(result)
                ? to_string(std::get<Rejection>(result).reason)
                : "");
    return std::holds_alternative<Accepted>(result) ? std::get<Accepted>(result).id : JobId{};
  }

  Rejection submit_rejected(const std::string& troupe, std::string payload = {}) {
    JobRequest r;
    r.troupe = troupe;
    r.payload = std::move(payload);
    auto result = runtime_->submit(std::move(r));
    EXPECT_TRUE(std::holds_alternative<Rejection>(result));
    return std::holds_alternative<Rejection>(result) ? std::get<Rejection>(result) : Rejection{};
  }

  JobState state_of(JobId id) {
    auto r = runtime_->get(id);
    EXPECT_TRUE(r.has_value());
    return r ? r->state : JobState::kQueued;
  }

  std::vector<JobRecord> terminals() {
    std::lock_guard lock(mutex_);
    return terminal_;
  }

  ManualClock clock_;
  boost::asio::io_context io_;
  testing::RecordingObserver observer_;
  RuntimeOptions options_;
  std::unique_ptr<Runtime> runtime_;
  std::mutex mutex_;
  std::vector<JobRecord> terminal_;
};

TEST_F(RuntimeTest, FixedTroupeRunsNoopJobsToSuccess) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 4)});
  run();
  std::vector<JobId> ids;
  for (int i = 0; i < 40; ++i) ids.push_back(submit_ok("t"));
  run();
  for (auto id : ids) EXPECT_EQ(state_of(id), JobState::kSucceeded);
  auto s = runtime_->troupe("t");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->actors, 4u);
  EXPECT_EQ(s->mode, TroupeMode::kFixed);
  EXPECT_EQ(s->handler, "builtin:noop");
  EXPECT_EQ(s->counters.submitted, 40u);
  EXPECT_EQ(s->counters.succeeded, 40u);
  EXPECT_EQ(s->counters.in_flight, 0u);
  EXPECT_EQ(terminals().size(), 40u);
  EXPECT_EQ(observer_.of("t").submitted.load(), 40);
}

TEST_F(RuntimeTest, EchoReturnsThePayloadAsResult) {
  runtime_->apply({builtin_troupe("t", Kind::kEcho)});
  const JobId id = submit_ok("t", "hello");
  run();
  auto r = runtime_->get(id);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->state, JobState::kSucceeded);
  EXPECT_EQ(r->result, "hello");
  EXPECT_EQ(r->attempts, 1u);
  EXPECT_EQ(r->troupe, "t");
}

TEST_F(RuntimeTest, JobIdsAreUnique) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 2)});
  std::set<std::uint64_t> ids;
  for (int i = 0; i < 1000; ++i) {
    ids.insert(submit_ok("t").value);
    if (i % 10 == 0) run();
  }
  EXPECT_EQ(ids.size(), 1000u);
}

// Issue 15: ids are not a prefix plus a counter that a client could walk.
// Each bit is set in about half of 1,000 random ids (a fixed bit, as in a
// shared prefix or a counter's high bits, is set in none or all).
TEST_F(RuntimeTest, JobIdsAreRandomInEveryBit) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 2)});
  std::array<int, 64> set{};
  for (int i = 0; i < 1000; ++i) {
    const std::uint64_t id = submit_ok("t").value;
    for (int b = 0; b < 64; ++b) set[b] += static_cast<int>((id >> b) & 1);
    if (i % 10 == 0) run();
  }
  for (int b = 0; b < 64; ++b) {
    EXPECT_GT(set[b], 350) << "bit " << b;  // 9.5 standard deviations from 500
    EXPECT_LT(set[b], 650) << "bit " << b;
  }
}

TEST_F(RuntimeTest, UnknownTroupeIsRejectedAndCounted) {
  auto r = submit_rejected("nope");
  EXPECT_EQ(r.reason, RejectReason::kUnknownTroupe);
  JobRequest keyed;
  keyed.troupe = "nope";
  keyed.idempotency_key = "k";  // the other submit path
  EXPECT_TRUE(std::holds_alternative<Rejection>(runtime_->submit(keyed)));
  EXPECT_EQ(observer_.unknown_troupe.load(), 2);
}

TEST_F(RuntimeTest, FullTroupeRejectsAtOnceWithARetryHint) {
  auto o = builtin_troupe("t", Kind::kSleep, 1);
  o.mailbox_capacity = 2;
  runtime_->apply({o});
  run();
  submit_ok("t", "1s");
  run();  // the actor takes it
  submit_ok("t", "1s");
  submit_ok("t", "1s");
  auto r = submit_rejected("t", "1s");
  EXPECT_EQ(r.reason, RejectReason::kFull);
  EXPECT_GT(r.retry_after.count(), 0);
  EXPECT_EQ(runtime_->troupe("t")->counters.rejected, 1u);
  EXPECT_EQ(runtime_->troupe("t")->mailbox_depth, 2u);
}

TEST_F(RuntimeTest, NoJobWaitsBehindASlowOneWhileAnotherActorIsIdle) {
  runtime_->apply({builtin_troupe("t", Kind::kSleep, 2)});
  run();
  const JobId slow = submit_ok("t", "10s");
  run();
  const JobId fast = submit_ok("t", "10ms");
  run();
  EXPECT_EQ(state_of(slow), JobState::kRunning);
  EXPECT_EQ(state_of(fast), JobState::kRunning);
  advance(10ms);
  EXPECT_EQ(state_of(fast), JobState::kSucceeded);
  EXPECT_EQ(state_of(slow), JobState::kRunning);
}

// The busy-actors figure the observer sees (troupe_actors_busy) follows
// actors as they are woken for a job and as they go idle again.
TEST_F(RuntimeTest, ObserverSeesBusyActorsRiseAndFall) {
  runtime_->apply({builtin_troupe("t", Kind::kSleep, 3)});
  run();
  auto& seen = observer_.of("t");
  EXPECT_EQ(seen.last_actors.load(), 3u);
  EXPECT_EQ(seen.last_busy.load(), 0u);
  submit_ok("t", "10ms");
  submit_ok("t", "20ms");
  run();
  EXPECT_EQ(seen.last_busy.load(), 2u);
  EXPECT_EQ(runtime_->troupe("t")->actors_busy, 2u);
  advance(10ms);
  EXPECT_EQ(seen.last_busy.load(), 1u);
  advance(10ms);
  EXPECT_EQ(seen.last_busy.load(), 0u);
  EXPECT_EQ(runtime_->troupe("t")->actors_busy, 0u);
}

TEST_F(RuntimeTest, JobsWithTheSameKeyRunInSubmissionOrderOnOneActor) {
  auto o = builtin_troupe("t", Kind::kSleep, 4);
  o.dispatch = DispatchStrategy::kKey;
  runtime_->apply({o});
  run();
  const JobId a = submit_ok("t", "50ms", "k");
  const JobId b = submit_ok("t", "1ms", "k");
  const JobId other = submit_ok("t", "1ms", "other");
  run();
  EXPECT_EQ(state_of(a), JobState::kRunning);
  EXPECT_EQ(state_of(b), JobState::kQueued);  // waits for a, though b is shorter
  advance(1ms);
  EXPECT_EQ(state_of(other), JobState::kSucceeded);  // another key is not held up
  EXPECT_EQ(state_of(b), JobState::kQueued);
  advance(49ms);
  EXPECT_EQ(state_of(a), JobState::kSucceeded);
  advance(1ms);
  EXPECT_EQ(state_of(b), JobState::kSucceeded);
  auto t = terminals();
  std::vector<JobId> order;
  for (auto& r : t) {
    if (r.key == "k") order.push_back(r.id);
  }
  EXPECT_EQ(order, (std::vector<JobId>{a, b}));
}

TEST_F(RuntimeTest, RoundRobinSpreadsJobsOverIdleActors) {
  auto o = builtin_troupe("t", Kind::kSleep, 3);
  o.dispatch = DispatchStrategy::kRoundRobin;
  runtime_->apply({o});
  run();
  for (int i = 0; i < 3; ++i) submit_ok("t", "1s");
  run();
  EXPECT_EQ(runtime_->troupe("t")->actors_busy, 3u);
  EXPECT_EQ(runtime_->troupe("t")->mailbox_depth, 0u);
}

TEST_F(RuntimeTest, ThrowingHandlerIsRestartedWithBackoffAndTheJobFollowsRetry) {
  auto o = builtin_troupe("t", Kind::kFail, 1);
  builtin(o)->fail_mode = BuiltinHandlerOptions::FailMode::kThrow;
  o.retry.max_attempts = 2;
  o.retry.initial_backoff = 10ms;
  o.supervisor.max_restarts = 5;
  o.supervisor.backoff_initial = 100ms;
  o.supervisor.backoff_max = 1s;
  runtime_->apply({o});
  run();
  const JobId id = submit_ok("t");
  run();
  auto r = runtime_->get(id);
  EXPECT_EQ(r->state, JobState::kRetryWait);
  EXPECT_EQ(r->failure_class, FailureClass::kCrash);
  EXPECT_NE(r->error.find("threw"), std::string::npos);
  EXPECT_EQ(runtime_->troupe("t")->counters.actor_restarts, 0u);  // still backing off
  // The restart backoff is 100ms with full jitter, the retry's 10ms: within
  // 100ms both have happened, in whichever order.
  advance(100ms);
  EXPECT_EQ(runtime_->troupe("t")->counters.actor_restarts, 1u);
  // Second attempt crashed as well: attempts used up -> DEAD, never replayed.
  r = runtime_->get(id);
  EXPECT_EQ(r->state, JobState::kDead);
  EXPECT_EQ(r->attempts, 2u);
  auto dead = runtime_->dead_jobs("t", 10);
  ASSERT_TRUE(dead);
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].id, id);
  EXPECT_EQ(observer_.of("t").restarts.load(), 1);
}

TEST_F(RuntimeTest, PastMaxRestartsTheSupervisorPausesTheActorAndTheTroupeIsDegraded) {
  auto o = builtin_troupe("t", Kind::kFail, 2);
  builtin(o)->fail_mode = BuiltinHandlerOptions::FailMode::kThrow;
  o.supervisor.max_restarts = 1;
  o.supervisor.backoff_initial = 10ms;  // a restart waits at most 10ms
  o.supervisor.backoff_max = 1s;        // a give-up pauses 1s, then 2s, ...
  runtime_->apply({o});
  run();
  // Every job crashes an actor; each may restart once, then the supervisor
  // gives up on it.
  for (int i = 0; i < 10 && runtime_->troupe("t")->actors_running > 0; ++i) {
    JobRequest r;
    r.troupe = "t";
    (void)runtime_->submit(std::move(r));
    run();
    advance(10ms);
  }
  auto s = runtime_->troupe("t");
  EXPECT_TRUE(s->degraded);
  EXPECT_EQ(s->actors, 2u);  // paused, not gone
  EXPECT_EQ(s->actors_running, 0u);
  EXPECT_NE(s->degraded_cause.find("restart limit exceeded"), std::string::npos)
      << s->degraded_cause;
  EXPECT_EQ(s->counters.actor_restarts, 2u);
  const Rejection r = submit_rejected("t");
  EXPECT_EQ(r.reason, RejectReason::kDegraded);
  EXPECT_GT(r.retry_after, 0ms);
  EXPECT_LE(r.retry_after, 1000ms);
  {
    std::lock_guard lock(observer_.of("t").mutex);
    EXPECT_EQ(observer_.of("t").degraded, std::vector<bool>{true});
    ASSERT_EQ(observer_.of("t").gave_up.size(), 2u);
    EXPECT_EQ(observer_.of("t").gave_up[0].retry_in, 1s);
  }
  // After the pause both run again: degraded clears, each recovery reported.
  advance(1s);
  s = runtime_->troupe("t");
  EXPECT_FALSE(s->degraded);
  EXPECT_EQ(s->actors_running, 2u);
  std::lock_guard lock(observer_.of("t").mutex);
  EXPECT_EQ(observer_.of("t").recovered.size(), 2u);
  EXPECT_EQ(observer_.of("t").degraded, (std::vector<bool>{true, false}));
}

// Issue 11, defect 3: a fixed troupe whose handler throws on every 5th call
// (retry 2 attempts, breaker off). Past max_restarts every actor used to stop
// for good: queued jobs sat with no terminal state, submits got
// RESOURCE_EXHAUSTED ("raise mailbox_capacity") and the troupe never
// recovered. Now the supervisor backs off and restarts; while no actor runs,
// submits are UNAVAILABLE (degraded, with the time of the next restart); every
// accepted job ends within the documented bound.
TEST_F(RuntimeTest, ACrashingFixedTroupeBacksOffRecoversAndEndsEveryJob) {
  auto o = builtin_troupe("t", Kind::kFail, 2);
  builtin(o)->fail_mode = BuiltinHandlerOptions::FailMode::kThrow;
  builtin(o)->fail_every = 5;
  o.retry.max_attempts = 2;
  o.retry.initial_backoff = 10ms;
  o.mailbox_capacity = 64;
  o.supervisor.max_restarts = 2;
  o.supervisor.window = 60s;
  o.supervisor.backoff_initial = 10ms;
  o.supervisor.backoff_max = 100ms;
  runtime_->apply({o});
  run();
  std::vector<JobId> ids;
  for (int i = 0; i < 100; ++i) ids.push_back(submit_ok("t"));
  run();
  bool saw_unavailable = false;
  // Bounded in fake time: each give-up pauses an actor at most 32 x
  // backoff_max (3.2s here), so 5 minutes is far past the bound.
  for (int step = 0; step < 3000; ++step) {
    auto s = runtime_->troupe("t");
    if (s->counters.in_flight == 0 && s->actors_running == 2) break;
    if (s->actors_running == 0) {
      const Rejection r = submit_rejected("t");
      EXPECT_EQ(r.reason, RejectReason::kDegraded);
      EXPECT_GT(r.retry_after, 0ms);
      saw_unavailable = true;
    }
    advance(100ms);
  }
  auto s = runtime_->troupe("t");
  EXPECT_EQ(s->counters.in_flight, 0u);
  for (const auto id : ids) EXPECT_TRUE(is_terminal(state_of(id))) << id.to_string();
  EXPECT_TRUE(saw_unavailable);
  // It recovered: both actors run again and take new work.
  EXPECT_EQ(s->actors_running, 2u);
  const JobId after = submit_ok("t");
  run();
  EXPECT_TRUE(is_terminal(state_of(after)));
  std::lock_guard lock(observer_.of("t").mutex);
  EXPECT_FALSE(observer_.of("t").gave_up.empty());
  EXPECT_FALSE(observer_.of("t").recovered.empty());
}

// Issue 11, defect 6: an exception thrown while the submit path held no lock
// (here: the observer's job_rejected) unlocked the troupe's mutex a second
// time on its way out. The troupe must stay usable (and ThreadSanitizer
// quiet).
TEST_F(RuntimeTest, AThrowingRejectionObserverLeavesTheTroupeUsable) {
  auto o = builtin_troupe("t", Kind::kSleep, 1);
  o.mailbox_capacity = 1;
  runtime_->apply({o});
  run();
  const JobId running = submit_ok("t", "1s");
  run();
  const JobId queued = submit_ok("t", "1s");
  observer_.of("t").throw_on_reject = true;
  JobRequest r;
  r.troupe = "t";
  EXPECT_THROW((void)runtime_->submit(std::move(r)), std::runtime_error);
  observer_.of("t").throw_on_reject = false;
  advance(1s);
  advance(1s);
  EXPECT_EQ(state_of(running), JobState::kSucceeded);
  EXPECT_EQ(state_of(queued), JobState::kSucceeded);
  const JobId later = submit_ok("t", "0s");
  run();
  EXPECT_EQ(state_of(later), JobState::kSucceeded);
}

TEST_F(RuntimeTest, DegradedClearsWhenAReloadBringsTheMinimumActorsBack) {
  auto crashing = builtin_troupe("t", Kind::kFail, 2);
  builtin(crashing)->fail_mode = BuiltinHandlerOptions::FailMode::kThrow;
  crashing.supervisor.strategy = SupervisorOptions::Strategy::kStop;
  runtime_->apply({crashing});
  run();
  const JobId first = submit_ok("t");
  const JobId second = submit_ok("t");
  run();
  EXPECT_EQ(state_of(first), JobState::kDead);
  EXPECT_EQ(state_of(second), JobState::kDead);
  ASSERT_TRUE(runtime_->troupe("t")->degraded);
  ASSERT_EQ(runtime_->troupe("t")->actors, 0u);

  // The operator fixes the handler and reloads: both actors are replaced.
  runtime_->apply({builtin_troupe("t", Kind::kEcho, 2)});
  run();
  auto s = runtime_->troupe("t");
  EXPECT_FALSE(s->degraded);
  EXPECT_EQ(s->actors, 2u);
  const JobId after = submit_ok("t", "back");
  run();
  EXPECT_EQ(state_of(after), JobState::kSucceeded);
  std::lock_guard lock(observer_.of("t").mutex);
  EXPECT_EQ(observer_.of("t").degraded, (std::vector<bool>{true, false}));
}

TEST_F(RuntimeTest, ADynamicTroupeIsDegradedBelowItsMinimumUntilAReloadRefillsIt) {
  // Dynamic, at least 2: one stopped actor of two degrades the troupe; a
  // reload that raises the floor to 3 replaces it and adds one more.
  auto o = builtin_troupe("t", Kind::kFail, 2);
  o.mode = TroupeMode::kDynamic;
  o.min_actors = 2;
  o.initial_actors = 2;
  o.max_actors = 4;
  builtin(o)->fail_mode = BuiltinHandlerOptions::FailMode::kThrow;
  builtin(o)->fail_every = 2;  // per actor: its second job crashes it
  o.supervisor.strategy = SupervisorOptions::Strategy::kStop;
  runtime_->apply({o});
  run();
  for (int i = 0; i < 3; ++i) submit_ok("t");
  run();
  auto s = runtime_->troupe("t");
  ASSERT_TRUE(s->degraded);
  ASSERT_EQ(s->actors, 1u);
  o.min_actors = 3;
  runtime_->apply({o});
  run();
  s = runtime_->troupe("t");
  EXPECT_EQ(s->actors, 3u);
  EXPECT_FALSE(s->degraded);
}

TEST_F(RuntimeTest, ResumeKeepsTheActorAndStopStopsIt) {
  auto resume = builtin_troupe("resume", Kind::kFail, 1);
  builtin(resume)->fail_mode = BuiltinHandlerOptions::FailMode::kThrow;
  builtin(resume)->fail_every = 2;
  resume.supervisor.strategy = SupervisorOptions::Strategy::kResume;
  auto stop = resume;
  stop.name = "stop";
  stop.supervisor.strategy = SupervisorOptions::Strategy::kStop;
  runtime_->apply({resume, stop});
  run();
  std::vector<JobId> r, s;
  for (int i = 0; i < 4; ++i) r.push_back(submit_ok("resume"));
  for (int i = 0; i < 4; ++i) s.push_back(submit_ok("stop"));
  run();
  EXPECT_EQ(state_of(r[0]), JobState::kSucceeded);
  EXPECT_EQ(state_of(r[1]), JobState::kDead);  // crashed, one attempt allowed
  EXPECT_EQ(state_of(r[2]), JobState::kSucceeded);
  EXPECT_FALSE(runtime_->troupe("resume")->degraded);
  EXPECT_EQ(state_of(s[0]), JobState::kSucceeded);
  EXPECT_EQ(state_of(s[1]), JobState::kDead);
  // No actor left to run them: they end at once, saying why.
  EXPECT_EQ(state_of(s[2]), JobState::kFailed);
  EXPECT_NE(runtime_->get(s[2])->error.find("no actor left"), std::string::npos);
  EXPECT_TRUE(runtime_->troupe("stop")->degraded);
  EXPECT_EQ(submit_rejected("stop").reason, RejectReason::kDegraded);
}

TEST_F(RuntimeTest, AStoppedActorsKeyedJobsMoveToAnotherActorInOrder) {
  auto o = builtin_troupe("t", Kind::kFail, 2);
  o.dispatch = DispatchStrategy::kKey;
  builtin(o)->fail_mode = BuiltinHandlerOptions::FailMode::kThrow;
  builtin(o)->fail_every = 2;  // per actor: its second job crashes it
  o.supervisor.strategy = SupervisorOptions::Strategy::kStop;
  runtime_->apply({o});
  run();
  const JobId a1 = submit_ok("t", "", "a");
  const JobId a2 = submit_ok("t", "", "a");
  const JobId a3 = submit_ok("t", "", "a");
  const JobId a4 = submit_ok("t", "", "a");
  run();
  EXPECT_EQ(state_of(a1), JobState::kSucceeded);
  EXPECT_EQ(state_of(a2), JobState::kDead);       // crashed its actor, which stopped
  EXPECT_EQ(state_of(a3), JobState::kSucceeded);  // moved, ran on the other actor
  EXPECT_EQ(state_of(a4), JobState::kDead);       // ... whose second job crashes it too
  auto s = runtime_->troupe("t");
  EXPECT_TRUE(s->degraded);
  EXPECT_EQ(s->actors, 0u);
  std::vector<JobId> order;
  for (auto& r : terminals()) order.push_back(r.id);
  EXPECT_EQ(order, (std::vector<JobId>{a1, a2, a3, a4}));
}

TEST_F(RuntimeTest, RetryableFailuresBackOffThenGoDead) {
  auto o = builtin_troupe("t", Kind::kFail, 1);
  o.retry.max_attempts = 3;
  o.retry.initial_backoff = 100ms;
  o.retry.multiplier = 2;
  runtime_->apply({o});
  run();
  const JobId id = submit_ok("t");
  run();
  EXPECT_EQ(state_of(id), JobState::kRetryWait);
  advance(99ms);
  EXPECT_EQ(state_of(id), JobState::kRetryWait);
  advance(1ms);
  EXPECT_EQ(state_of(id), JobState::kRetryWait);  // second attempt failed: now 200ms
  EXPECT_EQ(runtime_->get(id)->attempts, 2u);
  advance(200ms);
  auto r = runtime_->get(id);
  EXPECT_EQ(r->state, JobState::kDead);
  EXPECT_EQ(r->attempts, 3u);
  EXPECT_EQ(runtime_->troupe("t")->counters.dead, 1u);
  EXPECT_EQ(runtime_->troupe("t")->dead_letters, 1u);
}

TEST_F(RuntimeTest, PermanentFailureIsNotRetried) {
  auto o = builtin_troupe("t", Kind::kFail, 1);
  builtin(o)->fail_mode = BuiltinHandlerOptions::FailMode::kPermanent;
  o.retry.max_attempts = 5;
  runtime_->apply({o});
  run();
  const JobId id = submit_ok("t");
  run();
  auto r = runtime_->get(id);
  EXPECT_EQ(r->state, JobState::kFailed);
  EXPECT_EQ(r->attempts, 1u);
  EXPECT_EQ(r->failure_class, FailureClass::kPermanent);
}

TEST_F(RuntimeTest, RetrySucceedsOnALaterAttempt) {
  auto o = builtin_troupe("t", Kind::kFail, 1);
  builtin(o)->fail_every = 2;  // calls 2, 4, ... fail
  o.retry.max_attempts = 3;
  o.retry.initial_backoff = 10ms;
  runtime_->apply({o});
  run();
  const JobId first = submit_ok("t");
  const JobId second = submit_ok("t");
  run();
  EXPECT_EQ(state_of(first), JobState::kSucceeded);
  EXPECT_EQ(state_of(second), JobState::kRetryWait);
  advance(10ms);
  EXPECT_EQ(state_of(second), JobState::kSucceeded);
  EXPECT_EQ(runtime_->get(second)->attempts, 2u);
}

TEST_F(RuntimeTest, AttemptTimeoutCancelsTheHandlerAndCountsAsTimeout) {
  auto o = builtin_troupe("t", Kind::kSleep, 1);
  o.timeout = 100ms;
  runtime_->apply({o});
  run();
  const JobId id = submit_ok("t", "10s");
  JobRequest r;
  r.troupe = "t";
  r.payload = "10s";
  r.attempt_timeout = 20ms;
  auto second = std::get<Accepted>(runtime_->submit(std::move(r))).id;
  run();
  advance(100ms);
  auto rec = runtime_->get(id);
  EXPECT_EQ(rec->state, JobState::kDead);  // timeouts are retryable; one attempt allowed
  EXPECT_EQ(rec->failure_class, FailureClass::kTimeout);
  run();
  EXPECT_EQ(state_of(second), JobState::kRunning);
  advance(20ms);  // the request's own timeout wins over the troupe's
  EXPECT_EQ(runtime_->get(second)->failure_class, FailureClass::kTimeout);
}

TEST_F(RuntimeTest, DeadlinePassedBeforeStartFailsWithoutRunning) {
  runtime_->apply({builtin_troupe("t", Kind::kSleep, 1)});
  run();
  submit_ok("t", "1s");
  run();
  JobRequest r;
  r.troupe = "t";
  r.deadline = clock_.wall_now() + 500ms;
  const JobId id = std::get<Accepted>(runtime_->submit(std::move(r))).id;
  advance(1s);
  auto rec = runtime_->get(id);
  EXPECT_EQ(rec->state, JobState::kFailed);
  EXPECT_EQ(rec->attempts, 0u);
  EXPECT_NE(rec->error.find("deadline passed before the job started"), std::string::npos);
}

// The deadline is a start deadline, checked before every attempt (the first
// and each retry); an attempt that started in time runs to its end, bounded by
// its timeout, not by the deadline (docs/api.md).
TEST_F(RuntimeTest, DeadlineIsCheckedBeforeEveryAttemptNotWhileOneRuns) {
  auto flaky = builtin_troupe("flaky", Kind::kFail, 1);
  flaky.retry.max_attempts = 3;
  flaky.retry.initial_backoff = 1s;
  flaky.retry.jitter = false;
  runtime_->apply({builtin_troupe("t", Kind::kSleep, 1), flaky});
  run();

  JobRequest r;
  r.troupe = "t";
  r.payload = "1s";
  r.deadline = clock_.wall_now() + 500ms;
  const JobId ran_past = std::get<Accepted>(runtime_->submit(std::move(r))).id;
  run();
  EXPECT_EQ(state_of(ran_past), JobState::kRunning);
  advance(1s);
  EXPECT_EQ(state_of(ran_past), JobState::kSucceeded);

  JobRequest retried;
  retried.troupe = "flaky";
  retried.deadline = clock_.wall_now() + 500ms;
  const JobId id = std::get<Accepted>(runtime_->submit(std::move(retried))).id;
  run();
  EXPECT_EQ(state_of(id), JobState::kRetryWait);
  advance(1s);  // the retry is due after the deadline: not started
  auto rec = runtime_->get(id);
  EXPECT_EQ(rec->state, JobState::kFailed);
  EXPECT_EQ(rec->attempts, 1u);
  EXPECT_NE(rec->error.find("deadline passed before attempt 2 started"), std::string::npos)
      << rec->error;
}

TEST_F(RuntimeTest, CancelQueuedJobEndsItAtOnce) {
  runtime_->apply({builtin_troupe("t", Kind::kSleep, 1)});
  run();
  submit_ok("t", "1s");
  run();
  const JobId queued = submit_ok("t", "1s");
  auto out = runtime_->cancel(queued);
  ASSERT_TRUE(out);
  EXPECT_TRUE(out->cancelled);
  EXPECT_EQ(out->job.state, JobState::kCancelled);
  run();
  EXPECT_EQ(terminals().size(), 1u);  // on_terminal of the cancelled one
  advance(1s);
  EXPECT_EQ(terminals().size(), 2u);
  EXPECT_EQ(state_of(queued), JobState::kCancelled);
  auto again = runtime_->cancel(queued);
  EXPECT_FALSE(again->cancelled);
  EXPECT_FALSE(runtime_->cancel(JobId{12345}));
}

TEST_F(RuntimeTest, CancelRunningJobReachesTheHandler) {
  runtime_->apply({builtin_troupe("t", Kind::kSleep, 1)});
  run();
  const JobId id = submit_ok("t", "1h");
  run();
  EXPECT_EQ(state_of(id), JobState::kRunning);
  auto out = runtime_->cancel(id);
  EXPECT_TRUE(out->cancelled);
  run();  // the sleep handler completes on cancellation, without time passing
  EXPECT_EQ(state_of(id), JobState::kCancelled);
  EXPECT_EQ(runtime_->troupe("t")->counters.cancelled, 1u);
}

TEST_F(RuntimeTest, OpenBreakerRejectsSubmitsWithTimeUntilHalfOpen) {
  auto o = builtin_troupe("t", Kind::kFail, 1);
  o.circuit_breaker.enabled = true;
  o.circuit_breaker.consecutive_failures = 2;
  o.circuit_breaker.open_timeout = 30s;
  runtime_->apply({o});
  run();
  submit_ok("t");
  submit_ok("t");
  run();
  EXPECT_EQ(runtime_->troupe("t")->circuit, CircuitState::kOpen);
  auto r = submit_rejected("t");
  EXPECT_EQ(r.reason, RejectReason::kCircuitOpen);
  EXPECT_EQ(r.retry_after, 30000ms);
  std::lock_guard lock(observer_.of("t").mutex);
  EXPECT_EQ(observer_.of("t").circuit, std::vector<CircuitState>{CircuitState::kOpen});
}

TEST_F(RuntimeTest, HoldPolicyKeepsQueuedJobsWaitingWithoutUsingAttempts) {
  auto o = builtin_troupe("t", Kind::kFail, 1);
  builtin(o)->fail_every = 1;
  o.circuit_breaker.enabled = true;
  o.circuit_breaker.consecutive_failures = 1;
  o.circuit_breaker.open_timeout = 1s;
  o.circuit_breaker.policy = CircuitBreakerOptions::OpenPolicy::kHold;
  o.circuit_breaker.half_open_max_calls = 1;
  runtime_->apply({o});
  run();
  submit_ok("t");
  run();
  EXPECT_EQ(runtime_->troupe("t")->circuit, CircuitState::kOpen);
  const JobId held = submit_ok("t");  // hold: accepted, but not run
  run();
  EXPECT_EQ(state_of(held), JobState::kQueued);
  EXPECT_EQ(runtime_->get(held)->attempts, 0u);
  advance(1s);  // half-open: one probe runs (and fails: reopens)
  EXPECT_EQ(runtime_->get(held)->attempts, 1u);
  EXPECT_EQ(runtime_->troupe("t")->circuit, CircuitState::kOpen);
}

TEST_F(RuntimeTest, AJobsOwnTimeoutIsCappedByMaxTimeout) {
  auto o = builtin_troupe("t", Kind::kNoop, 1);
  o.timeout = 1s;
  runtime_->apply({o});
  run();
  const auto submit_with_timeout = [&](Duration timeout) {
    JobRequest r;
    r.troupe = "t";
    r.attempt_timeout = timeout;
    return runtime_->submit(std::move(r));
  };
  // Unset, max_timeout is the troupe's timeout.
  EXPECT_TRUE(std::holds_alternative<Accepted>(submit_with_timeout(1s)));
  auto over = submit_with_timeout(1001ms);
  ASSERT_TRUE(std::holds_alternative<Rejection>(over));
  EXPECT_EQ(std::get<Rejection>(over).reason, RejectReason::kTimeoutOverMax);
  EXPECT_EQ(std::get<Rejection>(over).limit, Duration(1s));
  // A reload raises it.
  o.max_timeout = 1h;
  runtime_->apply({o});
  run();
  EXPECT_TRUE(std::holds_alternative<Accepted>(submit_with_timeout(1h)));
  over = submit_with_timeout(1h + 1ns);
  ASSERT_TRUE(std::holds_alternative<Rejection>(over));
  EXPECT_EQ(std::get<Rejection>(over).limit, Duration(1h));
  EXPECT_EQ(runtime_->troupe("t")->counters.rejected, 2u);
}

TEST_F(RuntimeTest, RateLimitDelaysDispatchOnATimer) {
  auto o = builtin_troupe("t", Kind::kNoop, 1);
  o.rate_limit = {true, 10.0, 1};
  o.mailbox_capacity = 2;
  runtime_->apply({o});
  run();
  const JobId a = submit_ok("t");
  const JobId b = submit_ok("t");
  run();
  EXPECT_EQ(state_of(a), JobState::kSucceeded);
  EXPECT_EQ(state_of(b), JobState::kQueued);
  submit_ok("t");
  auto r = submit_rejected("t");  // queue full while throttled
  EXPECT_EQ(r.reason, RejectReason::kRateLimited);
  EXPECT_GT(r.retry_after.count(), 0);
  advance(100ms);
  EXPECT_EQ(state_of(b), JobState::kSucceeded);
}

TEST_F(RuntimeTest, AutoscalerGrowsOnDepthWithinCooldownAndMax) {
  auto o = builtin_troupe("t", Kind::kSleep, 1);
  o.mode = TroupeMode::kDynamic;
  o.min_actors = 1;
  o.initial_actors = 1;
  o.max_actors = 3;
  o.autoscale.interval = 1s;
  o.autoscale.high_threshold = 2.0;
  o.autoscale.cooldown = 5s;
  runtime_->apply({o});
  run();
  for (int i = 0; i < 12; ++i) submit_ok("t", "1h");
  run();
  EXPECT_EQ(runtime_->troupe("t")->actors, 1u);  // submits never scale
  advance(1s);
  EXPECT_EQ(runtime_->troupe("t")->actors, 2u);
  advance(1s);
  EXPECT_EQ(runtime_->troupe("t")->actors, 2u);  // cooldown
  advance(4s);
  EXPECT_EQ(runtime_->troupe("t")->actors, 3u);
  advance(10s);
  EXPECT_EQ(runtime_->troupe("t")->actors, 3u);  // max
  EXPECT_EQ(runtime_->troupe("t")->actors_busy, 3u);
}

TEST_F(RuntimeTest, AutoscalerShrinksAnIdlePoolToMin) {
  auto o = builtin_troupe("t", Kind::kNoop, 1);
  o.mode = TroupeMode::kDynamic;
  o.min_actors = 1;
  o.initial_actors = 3;
  o.max_actors = 3;
  o.autoscale.interval = 1s;
  o.autoscale.cooldown = 0s;
  runtime_->apply({o});
  run();
  EXPECT_EQ(runtime_->troupe("t")->actors, 3u);
  advance(1s);
  EXPECT_EQ(runtime_->troupe("t")->actors, 2u);
  advance(1s);
  EXPECT_EQ(runtime_->troupe("t")->actors, 1u);
  advance(1s);
  EXPECT_EQ(runtime_->troupe("t")->actors, 1u);
  const JobId id = submit_ok("t");
  run();
  EXPECT_EQ(state_of(id), JobState::kSucceeded);
}

TEST_F(RuntimeTest, AutoscalerDoesNotGrowWhileTheBreakerIsOpen) {
  auto o = builtin_troupe("t", Kind::kFail, 1);
  o.mode = TroupeMode::kDynamic;
  o.max_actors = 4;
  o.autoscale.interval = 1s;
  o.autoscale.high_threshold = 0.5;
  o.autoscale.cooldown = 0s;
  o.circuit_breaker.enabled = true;
  o.circuit_breaker.consecutive_failures = 1;
  o.circuit_breaker.open_timeout = 1h;
  o.circuit_breaker.policy = CircuitBreakerOptions::OpenPolicy::kHold;
  runtime_->apply({o});
  run();
  for (int i = 0; i < 8; ++i) submit_ok("t");
  run();
  EXPECT_EQ(runtime_->troupe("t")->circuit, CircuitState::kOpen);
  advance(1s);
  advance(1s);
  EXPECT_EQ(runtime_->troupe("t")->actors, 1u);
}

TEST_F(RuntimeTest, DrainLetsAcceptedJobsFinishAndRejectsNewOnes) {
  runtime_->apply({builtin_troupe("t", Kind::kSleep, 1)});
  run();
  const JobId a = submit_ok("t", "100ms");
  const JobId b = submit_ok("t", "100ms");
  run();
  std::optional<DrainReport> report;
  runtime_->drain(10s, [&](DrainReport r) { report = r; });
  run();
  EXPECT_EQ(submit_rejected("t").reason, RejectReason::kDraining);
  EXPECT_FALSE(report);
  advance(100ms);
  advance(100ms);
  ASSERT_TRUE(report);
  EXPECT_EQ(report->finished, 2u);
  EXPECT_EQ(report->aborted, 0u);
  EXPECT_FALSE(report->deadline_reached);
  EXPECT_EQ(state_of(a), JobState::kSucceeded);
  EXPECT_EQ(state_of(b), JobState::kSucceeded);
}

TEST_F(RuntimeTest, DrainDeadlineCancelsRunningAndAbortsTheRest) {
  auto o = builtin_troupe("t", Kind::kSleep, 1);
  o.retry.max_attempts = 3;
  runtime_->apply({o});
  run();
  const JobId running = submit_ok("t", "1h");
  const JobId queued = submit_ok("t", "1h");
  run();
  int calls = 0;
  DrainReport report;
  runtime_->drain(1s, [&](DrainReport r) {
    report = r;
    ++calls;
  });
  run();
  advance(1s);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(report.deadline_reached);
  EXPECT_EQ(report.cancelled, 1u);
  EXPECT_EQ(report.aborted, 1u);
  EXPECT_EQ(report.finished, 0u);
  EXPECT_EQ(state_of(running), JobState::kAborted);
  EXPECT_EQ(state_of(queued), JobState::kAborted);
  auto c = runtime_->troupe("t")->counters;
  EXPECT_EQ(c.aborted, 2u);
  EXPECT_EQ(c.in_flight, 0u);
}

TEST_F(RuntimeTest, DrainWithNothingInFlightCompletesAtOnce) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 1)});
  bool done = false;
  runtime_->drain(1s, [&](DrainReport) { done = true; });
  run();
  EXPECT_TRUE(done);
}

TEST_F(RuntimeTest, ApplyAddsUpdatesAndRemovesTroupes) {
  runtime_->apply({builtin_troupe("a", Kind::kSleep, 1), builtin_troupe("b", Kind::kNoop, 1)});
  run();
  const JobId a = submit_ok("a", "1s");
  run();
  auto b2 = builtin_troupe("b", Kind::kEcho, 3);
  runtime_->apply({b2});  // a removed (drains), b resized and its handler changed
  run();
  EXPECT_FALSE(runtime_->troupe("a"));
  EXPECT_EQ(submit_rejected("a").reason, RejectReason::kUnknownTroupe);
  EXPECT_EQ(runtime_->troupe("b")->actors, 3u);
  EXPECT_EQ(runtime_->troupe("b")->handler, "builtin:echo");
  const JobId b = submit_ok("b", "x");
  run();
  EXPECT_EQ(runtime_->get(b)->result, "x");
  EXPECT_EQ(state_of(a), JobState::kRunning);  // a's accepted job still finishes
  advance(1s);
  EXPECT_EQ(state_of(a), JobState::kSucceeded);
  EXPECT_EQ(observer_.removed, std::vector<std::string>{"a"});
  runtime_->apply({builtin_troupe("b", Kind::kEcho, 1)});
  run();
  EXPECT_EQ(runtime_->troupe("b")->actors, 1u);
  EXPECT_EQ(runtime_->troupes().size(), 1u);
}

TEST_F(RuntimeTest, ATroupeReaddedWhileItsOldGenerationDrainsIsANewGeneration) {
  const auto a = builtin_troupe("a", Kind::kSleep, 1);
  runtime_->apply({a});
  run();
  const JobId old_job = submit_ok("a", "1s");
  run();
  const auto old_generation = observer_.latest("a");
  runtime_->apply({});  // a drains: its job still runs
  run();
  runtime_->apply({a});  // and is back, as a new generation
  run();
  const auto new_generation = observer_.latest("a");
  ASSERT_NE(new_generation, old_generation);
  EXPECT_FALSE(old_generation->was_removed);
  advance(1s);  // the old generation's job ends: it has drained and goes
  EXPECT_EQ(state_of(old_job), JobState::kSucceeded);
  EXPECT_TRUE(old_generation->was_removed);
  EXPECT_FALSE(new_generation->was_removed);  // the name's current troupe is untouched
  EXPECT_EQ(observer_.removed, std::vector<std::string>{"a"});
  submit_ok("a");
  run();
  EXPECT_EQ(new_generation->submitted.load(), 1);
  EXPECT_EQ(old_generation->submitted.load(), 1);
}

TEST_F(RuntimeTest, ARemovedTroupeIsFreedOnceItHasDrained) {
  runtime_->apply({builtin_troupe("a", Kind::kSleep, 2), builtin_troupe("z", Kind::kEcho)});
  run();
  const JobId job = submit_ok("a", "1s");
  run();
  // The troupe holds its generation's observer until it is freed.
  std::weak_ptr<testing::RecordingTroupeObserver> troupe_alive = observer_.latest("a");
  runtime_->apply({builtin_troupe("z", Kind::kEcho)});  // a drains
  runtime_->apply({builtin_troupe("a", Kind::kEcho), builtin_troupe("z", Kind::kEcho)});
  run();
  EXPECT_FALSE(troupe_alive.expired());  // still draining its job
  advance(1s);
  EXPECT_EQ(state_of(job), JobState::kSucceeded);
  // Drained: its actors, their handlers and its dead letters are gone with it,
  // and the job's record no longer needs it.
  EXPECT_TRUE(troupe_alive.expired());
  EXPECT_EQ(runtime_->get(job)->troupe, "a");
  submit_ok("a");
  run();
}

TEST_F(RuntimeTest, WatchSeesEveryStateChangeThenEnds) {
  auto o = builtin_troupe("t", Kind::kFail, 1);
  builtin(o)->fail_every = 1;
  o.retry.max_attempts = 2;
  o.retry.initial_backoff = 10ms;
  runtime_->apply({o});
  run();
  const JobId id = submit_ok("t");
  std::vector<JobState> seen;
  auto w = runtime_->watch(id, [&](const JobRecord& r) { seen.push_back(r.state); });
  ASSERT_TRUE(std::holds_alternative<WatchId>(w));
  run();
  advance(10ms);
  EXPECT_EQ(seen,
            (std::vector<JobState>{JobState::kQueued, JobState::kRunning, JobState::kRetryWait,
                                   JobState::kQueued, JobState::kRunning, JobState::kDead}));
  auto unknown = runtime_->watch(JobId{42}, [](const JobRecord&) {});
  ASSERT_TRUE(std::holds_alternative<WatchRefusal>(unknown));
  EXPECT_EQ(std::get<WatchRefusal>(unknown), WatchRefusal::kUnknownJob);
}

TEST_F(RuntimeTest, UnwatchStopsCallbacks) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 1)});
  run();
  const JobId id = submit_ok("t");
  int calls = 0;
  auto w = runtime_->watch(id, [&](const JobRecord&) { ++calls; });
  runtime_->unwatch(std::get<WatchId>(w));
  run();
  EXPECT_EQ(calls, 1);
}

TEST_F(RuntimeTest, IdempotencyKeyReturnsTheSameJob) {
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 1)});
  JobRequest r;
  r.troupe = "t";
  r.idempotency_key = "once";
  int first_calls = 0;
  int dup_calls = 0;
  auto a = std::get<Accepted>(runtime_->submit(r, [&](const JobRecord&) { ++first_calls; }));
  auto b = std::get<Accepted>(runtime_->submit(r, [&](const JobRecord&) { ++dup_calls; }));
  EXPECT_FALSE(a.duplicate);
  EXPECT_TRUE(b.duplicate);
  EXPECT_EQ(a.id, b.id);
  run();
  EXPECT_EQ(first_calls, 1);
  EXPECT_EQ(dup_calls, 1);
  EXPECT_EQ(runtime_->troupe("t")->counters.submitted, 1u);
}

// One job's watches are bounded: one too many is refused as such, and a
// slot frees when a watch ends.
TEST_F(RuntimeTest, WatchesPastTheCapAreRefused) {
  runtime_.reset();
  options_.max_listeners_per_job = 2;
  runtime_ = make_runtime(io_, clock_, observer_, options_);
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 1)});
  const JobId id = submit_ok("t");  // queued: the io_context has not run
  auto first = runtime_->watch(id, [](const JobRecord&) {});
  auto second = runtime_->watch(id, [](const JobRecord&) {});
  ASSERT_TRUE(std::holds_alternative<WatchId>(first));
  ASSERT_TRUE(std::holds_alternative<WatchId>(second));
  auto third =
      runtime_->watch(id, [](const JobRecord&) { ADD_FAILURE() << "refused, yet called"; });
  ASSERT_TRUE(std::holds_alternative<WatchRefusal>(third));
  EXPECT_EQ(std::get<WatchRefusal>(third), WatchRefusal::kTooManyListeners);
  runtime_->unwatch(std::get<WatchId>(first));
  EXPECT_TRUE(std::holds_alternative<WatchId>(runtime_->watch(id, [](const JobRecord&) {})));
  run();
  EXPECT_EQ(state_of(id), JobState::kSucceeded);
}

// Duplicates that wait (an on_terminal each) are bounded too: one too many
// is rejected with a retry hint, while one that does not wait is accepted.
TEST_F(RuntimeTest, WaitingDuplicatesPastTheCapAreRejected) {
  runtime_.reset();
  options_.max_listeners_per_job = 2;
  runtime_ = make_runtime(io_, clock_, observer_, options_);
  runtime_->apply({builtin_troupe("t", Kind::kNoop, 1)});
  JobRequest r;
  r.troupe = "t";
  r.idempotency_key = "once";
  int calls = 0;
  auto count = [&](const JobRecord&) { ++calls; };
  ASSERT_TRUE(std::holds_alternative<Accepted>(runtime_->submit(r, count)));
  ASSERT_TRUE(std::holds_alternative<Accepted>(runtime_->submit(r, count)));
  auto third = runtime_->submit(r, count);
  ASSERT_TRUE(std::holds_alternative<Rejection>(third));
  EXPECT_EQ(std::get<Rejection>(third).reason, RejectReason::kTooManyListeners);
  EXPECT_GT(std::get<Rejection>(third).retry_after, std::chrono::milliseconds(0));
  EXPECT_TRUE(std::holds_alternative<Accepted>(runtime_->submit(r)));
  run();
  EXPECT_EQ(calls, 2);
}

TEST_F(RuntimeTest, IdempotencyKeyOutlivesTheResultForItsWholeTtl) {
  RuntimeOptions options;
  options.job_store.result_ttl = 1s;
  options.job_store.idempotency_ttl = 1h;
  runtime_.reset();
  runtime_ = make_runtime(io_, clock_, observer_, options);
  runtime_->apply({builtin_troupe("t", Kind::kEcho, 1)});
  JobRequest r;
  r.troupe = "t";
  r.payload = "hi";
  r.idempotency_key = "once";
  const auto first = std::get<Accepted>(runtime_->submit(r));
  run();
  ASSERT_EQ(state_of(first.id), JobState::kSucceeded);
  advance(2s);
  EXPECT_FALSE(runtime_->get(first.id));  // the result expired: GetJob says NOT_FOUND

  // The key still answers for the original, from its tombstone; nothing runs.
  std::optional<JobRecord> waited;
  auto again = runtime_->submit(r, [&](const JobRecord& rec) { waited = rec; });
  ASSERT_TRUE(std::holds_alternative<Accepted>(again));
  EXPECT_TRUE(std::get<Accepted>(again).duplicate);
  EXPECT_EQ(std::get<Accepted>(again).id, first.id);
  run();
  ASSERT_TRUE(waited);
  EXPECT_EQ(waited->id, first.id);
  EXPECT_EQ(waited->troupe, "t");
  EXPECT_EQ(waited->idempotency_key, "once");
  EXPECT_EQ(waited->state, JobState::kSucceeded);
  EXPECT_EQ(waited->attempts, 1u);
  EXPECT_TRUE(waited->result.empty());  // expired with the record
  EXPECT_NE(waited->finished_at.time_since_epoch().count(), 0);
  EXPECT_EQ(runtime_->troupe("t")->counters.submitted, 1u);

  // Past the idempotency TTL the key is free again.
  advance(1h);
  const auto later = std::get<Accepted>(runtime_->submit(r));
  EXPECT_FALSE(later.duplicate);
  EXPECT_NE(later.id, first.id);
  EXPECT_EQ(runtime_->troupe("t")->counters.submitted, 2u);
}

TEST_F(RuntimeTest, CountersAlwaysBalance) {
  auto o = builtin_troupe("t", Kind::kFail, 2);
  builtin(o)->fail_every = 3;
  o.retry.max_attempts = 2;
  o.retry.initial_backoff = 10ms;
  runtime_->apply({o});
  for (int i = 0; i < 50; ++i) {
    submit_ok("t");
    if (i % 7 == 0) run();
    auto c = runtime_->troupe("t")->counters;
    EXPECT_EQ(c.submitted, c.succeeded + c.failed + c.dead + c.cancelled + c.aborted + c.in_flight);
  }
  advance(10ms);
  auto c = runtime_->troupe("t")->counters;
  EXPECT_EQ(c.in_flight, 0u);
  EXPECT_EQ(c.submitted, c.succeeded + c.dead);
  EXPECT_GT(c.dead, 0u);
}

TEST_F(RuntimeTest, ObserverSeesTheEvents) {
  auto o = builtin_troupe("t", Kind::kFail, 1);
  builtin(o)->fail_every = 2;
  runtime_->apply({o});
  run();
  submit_ok("t");
  submit_ok("t");
  run();
  submit_rejected("nope");
  auto& t = observer_.of("t");
  EXPECT_EQ(t.submitted.load(), 2);
  EXPECT_EQ(t.queue_waits.load(), 2);
  EXPECT_EQ(t.last_actors.load(), 1u);
  EXPECT_EQ(t.last_capacity.load(), 16u);
  std::lock_guard lock(t.mutex);
  EXPECT_EQ(t.completed, (std::vector<JobState>{JobState::kSucceeded, JobState::kDead}));
  EXPECT_EQ(t.attempts, (std::vector<FailureClass>{FailureClass::kNone, FailureClass::kRetryable}));
}

}  // namespace
}  // namespace troupe::core
