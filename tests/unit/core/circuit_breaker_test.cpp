#include "core/circuit_breaker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <vector>

#include "core/manual_clock.h"

namespace troupe::core {
namespace {

using boost::asio::io_context;
using States = std::vector<CircuitState>;

constexpr auto kClosed = CircuitState::kClosed;
constexpr auto kOpen = CircuitState::kOpen;
constexpr auto kHalfOpen = CircuitState::kHalfOpen;

CircuitBreakerOptions base_options() {
  CircuitBreakerOptions o;
  o.consecutive_failures = 0;
  o.window_size = 10;
  o.minimum_calls = 10;
  o.failure_rate_threshold = 0.5;
  o.slow_call_rate_threshold = 1.0;
  o.slow_call_duration = 1s;
  o.open_timeout = 10s;
  o.open_timeout_multiplier = 1.0;
  o.max_open_timeout = 1min;
  o.half_open_max_calls = 3;
  o.max_wait_in_half_open = 0s;
  return o;
}

/// A breaker on a ManualClock and an io_context run by the test thread.
class BreakerTest : public ::testing::Test {
 protected:
  void make(CircuitBreakerOptions options, Clock* clock = nullptr) {
    breaker_ = std::make_unique<CircuitBreaker>(
        std::move(options), io_.get_executor(), clock ? *clock : clock_, [this](CircuitState to) {
          EXPECT_TRUE(io_.get_executor().running_in_this_thread());
          transitions_.push_back(to);
        });
  }

  void settle() {
    io_.poll();
    io_.restart();
  }

  void advance(Duration by) {
    clock_.advance(by);
    settle();
  }

  void fail(int n = 1) {
    for (int i = 0; i < n; ++i) breaker_->record(true, 1ms);
  }
  void succeed(int n = 1) {
    for (int i = 0; i < n; ++i) breaker_->record(false, 1ms);
  }

  // Trips the breaker on consecutive failures (needs consecutive_failures > 0).
  void trip() {
    while (breaker_->state() != kOpen) fail();
    settle();
  }

  io_context io_;
  ManualClock clock_;
  States transitions_;
  std::unique_ptr<CircuitBreaker> breaker_;
};

TEST_F(BreakerTest, StartsClosedAndAdmits) {
  make(base_options());
  EXPECT_EQ(breaker_->state(), kClosed);
  EXPECT_TRUE(breaker_->try_acquire());
  EXPECT_EQ(breaker_->time_until_half_open(), Duration::zero());
}

TEST_F(BreakerTest, OpensOnConsecutiveFailures) {
  auto o = base_options();
  o.consecutive_failures = 3;
  o.minimum_calls = 100;
  o.window_size = 100;
  make(o);
  fail(2);
  succeed();  // breaks the run
  fail(2);
  settle();
  EXPECT_EQ(breaker_->state(), kClosed);
  EXPECT_TRUE(transitions_.empty());
  fail();
  EXPECT_EQ(breaker_->state(), kOpen);
  EXPECT_FALSE(breaker_->try_acquire());
  settle();
  EXPECT_EQ(transitions_, States{kOpen});
}

TEST_F(BreakerTest, OpensOnFailureRateOnlyAfterMinimumCalls) {
  auto o = base_options();
  o.window_size = 10;
  o.minimum_calls = 4;
  make(o);
  fail(3);
  EXPECT_EQ(breaker_->state(), kClosed) << "3 calls are below minimum_calls";
  succeed();  // 3 of 4 failed
  EXPECT_EQ(breaker_->state(), kOpen);
  settle();
  EXPECT_EQ(transitions_, States{kOpen});
}

TEST_F(BreakerTest, StaysClosedBelowFailureRate) {
  auto o = base_options();
  o.window_size = 10;
  o.minimum_calls = 10;
  make(o);
  for (int i = 0; i < 100; ++i) {
    fail();
    succeed(2);  // one in three fails: at most 4 in any 10
  }
  EXPECT_EQ(breaker_->state(), kClosed);
}

TEST_F(BreakerTest, MinimumCallsAboveWindowJudgesAFullWindow) {
  auto o = base_options();
  o.window_size = 4;
  o.minimum_calls = 100;
  make(o);
  fail(3);
  EXPECT_EQ(breaker_->state(), kClosed);
  fail();
  EXPECT_EQ(breaker_->state(), kOpen);
}

TEST_F(BreakerTest, SlidingWindowForgetsOldResults) {
  auto o = base_options();
  o.window_size = 4;
  o.minimum_calls = 4;
  o.failure_rate_threshold = 0.5;
  make(o);
  succeed(3);
  fail();      // [s s s f] 1/4
  succeed(3);  // [f s s s] then [s s s s]
  succeed();
  fail();  // [s s s f]: the first failure is gone, 1/4
  EXPECT_EQ(breaker_->state(), kClosed);
  fail();  // [s s f f] 2/4 = threshold, though 3 of 10 overall
  EXPECT_EQ(breaker_->state(), kOpen);
}

TEST_F(BreakerTest, OpensOnSlowCallRate) {
  auto o = base_options();
  o.window_size = 4;
  o.minimum_calls = 4;
  o.failure_rate_threshold = 1.0;
  o.slow_call_rate_threshold = 0.75;
  o.slow_call_duration = 1s;
  make(o);
  breaker_->record(false, 2s);
  breaker_->record(false, 999ms);  // just under: not slow
  breaker_->record(false, 1s);     // at the threshold: slow
  EXPECT_EQ(breaker_->state(), kClosed);
  breaker_->record(false, 10ms);  // 2/4 slow
  EXPECT_EQ(breaker_->state(), kClosed);
  breaker_->record(false, 5s);  // [fast slow fast slow] -> still 2/4
  EXPECT_EQ(breaker_->state(), kClosed);
  breaker_->record(false, 5s);  // [slow fast slow slow] 3/4
  EXPECT_EQ(breaker_->state(), kOpen);
}

TEST_F(BreakerTest, RejectsWhileOpenAndHintsTimeToHalfOpen) {
  auto o = base_options();
  o.consecutive_failures = 1;
  make(o);
  trip();
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(breaker_->try_acquire());
  EXPECT_EQ(breaker_->time_until_half_open(), 10s);
  advance(4s);
  EXPECT_EQ(breaker_->time_until_half_open(), 6s);
  breaker_->record(true, 1ms);  // a late result while open changes nothing
  settle();
  EXPECT_EQ(breaker_->time_until_half_open(), 6s);
  EXPECT_EQ(transitions_, States{kOpen});
}

TEST_F(BreakerTest, HalfOpensAfterTimeoutWithExactlyMaxPermits) {
  auto o = base_options();
  o.consecutive_failures = 1;
  o.half_open_max_calls = 3;
  make(o);
  trip();
  advance(10s - 1ns);
  EXPECT_EQ(breaker_->state(), kOpen);
  advance(1ns);
  EXPECT_EQ(breaker_->state(), kHalfOpen);
  EXPECT_EQ(breaker_->time_until_half_open(), Duration::zero());
  EXPECT_TRUE(breaker_->try_acquire());
  EXPECT_TRUE(breaker_->try_acquire());
  EXPECT_TRUE(breaker_->try_acquire());
  EXPECT_FALSE(breaker_->try_acquire());
  EXPECT_FALSE(breaker_->try_acquire());
  EXPECT_EQ(transitions_, (States{kOpen, kHalfOpen}));
}

TEST_F(BreakerTest, AllProbesSucceedingCloses) {
  auto o = base_options();
  o.consecutive_failures = 1;
  make(o);
  trip();
  advance(10s);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(breaker_->try_acquire());
  succeed(2);
  EXPECT_EQ(breaker_->state(), kHalfOpen);
  succeed();
  EXPECT_EQ(breaker_->state(), kClosed);
  settle();
  EXPECT_EQ(transitions_, (States{kOpen, kHalfOpen, kClosed}));
  EXPECT_TRUE(breaker_->try_acquire());
}

TEST_F(BreakerTest, ClosedAfterProbesStartsWithAnEmptyWindow) {
  auto o = base_options();
  o.window_size = 4;
  o.minimum_calls = 4;
  make(o);
  fail(4);
  ASSERT_EQ(breaker_->state(), kOpen);
  advance(10s);
  succeed(3);
  ASSERT_EQ(breaker_->state(), kClosed);
  fail(3);  // would reach the rate if old failures were still counted
  EXPECT_EQ(breaker_->state(), kClosed);
}

TEST_F(BreakerTest, ProbeFailureReopensWithGrowingCappedTimeout) {
  auto o = base_options();
  o.consecutive_failures = 1;
  o.open_timeout = 10s;
  o.open_timeout_multiplier = 2.0;
  o.max_open_timeout = 25s;
  make(o);
  trip();
  EXPECT_EQ(breaker_->time_until_half_open(), 10s);
  advance(10s);
  ASSERT_EQ(breaker_->state(), kHalfOpen);
  ASSERT_TRUE(breaker_->try_acquire());
  fail();
  EXPECT_EQ(breaker_->state(), kOpen);
  EXPECT_EQ(breaker_->time_until_half_open(), 20s);
  advance(20s - 1ns);
  EXPECT_EQ(breaker_->state(), kOpen);
  advance(1ns);
  ASSERT_EQ(breaker_->state(), kHalfOpen);
  fail();
  EXPECT_EQ(breaker_->time_until_half_open(), 25s) << "capped at max_open_timeout";
  advance(25s);
  ASSERT_EQ(breaker_->state(), kHalfOpen);
  succeed(3);
  ASSERT_EQ(breaker_->state(), kClosed);
  trip();
  EXPECT_EQ(breaker_->time_until_half_open(), 10s) << "closing resets the growth";
  EXPECT_EQ(transitions_,
            (States{kOpen, kHalfOpen, kOpen, kHalfOpen, kOpen, kHalfOpen, kClosed, kOpen}));
}

TEST_F(BreakerTest, MaxWaitInHalfOpenReopens) {
  auto o = base_options();
  o.consecutive_failures = 1;
  o.max_wait_in_half_open = 5s;
  make(o);
  trip();
  advance(10s);
  ASSERT_EQ(breaker_->state(), kHalfOpen);
  ASSERT_TRUE(breaker_->try_acquire());
  succeed();  // one of three probes answered
  advance(5s - 1ns);
  EXPECT_EQ(breaker_->state(), kHalfOpen);
  advance(1ns);
  EXPECT_EQ(breaker_->state(), kOpen);
  EXPECT_EQ(transitions_, (States{kOpen, kHalfOpen, kOpen}));
}

TEST_F(BreakerTest, ZeroMaxWaitInHalfOpenWaitsForever) {
  auto o = base_options();
  o.consecutive_failures = 1;
  o.max_wait_in_half_open = 0s;
  make(o);
  trip();
  advance(10s);
  advance(24h);
  EXPECT_EQ(breaker_->state(), kHalfOpen);
  EXPECT_EQ(clock_.pending_timers(), 0u);
}

/// A clock whose timers ignore cancel() and re-waits: every wait fires
/// fn(true) at its deadline. It proves that the breaker's own generation
/// check, not the timer's cancellation, stops a stale timer.
class StickyClock final : public Clock {
 public:
  explicit StickyClock(ManualClock& inner) : inner_(inner) {}
  std::chrono::steady_clock::time_point now() const override { return inner_.now(); }
  std::chrono::system_clock::time_point wall_now() const override { return inner_.wall_now(); }
  std::unique_ptr<Timer> make_timer(boost::asio::any_io_executor executor) override {
    return std::make_unique<StickyTimer>(inner_, std::move(executor));
  }

 private:
  class StickyTimer final : public Timer {
   public:
    StickyTimer(ManualClock& clock, boost::asio::any_io_executor executor)
        : clock_(clock), executor_(std::move(executor)) {}
    void wait(Duration after, std::function<void(bool)> fn) override {
      waits_.push_back(clock_.make_timer(executor_));
      waits_.back()->wait(after, std::move(fn));
    }
    void cancel() override {}

   private:
    ManualClock& clock_;
    boost::asio::any_io_executor executor_;
    std::vector<std::unique_ptr<Timer>> waits_;
  };
  ManualClock& inner_;
};

TEST_F(BreakerTest, StaleOpenTimeoutCannotTransitionAfterManualReopen) {
  StickyClock sticky(clock_);
  auto o = base_options();
  o.consecutive_failures = 1;
  o.open_timeout = 10s;
  make(o, &sticky);
  trip();  // first open: its timer is due at t=10s
  advance(5s);
  breaker_->transition_to(kClosed);
  breaker_->transition_to(kOpen);  // reopened at t=5s: due at t=15s
  settle();
  advance(5s);  // t=10s: the first timer fires (the sticky clock cannot cancel it)
  EXPECT_EQ(breaker_->state(), kOpen) << "a timer armed in an earlier state must do nothing";
  EXPECT_EQ(breaker_->time_until_half_open(), 5s);
  advance(5s);
  EXPECT_EQ(breaker_->state(), kHalfOpen);
  EXPECT_EQ(transitions_, (States{kOpen, kClosed, kOpen, kHalfOpen}));
}

TEST_F(BreakerTest, DueButUnrunTimerIsIgnoredAfterReopen) {
  auto o = base_options();
  o.consecutive_failures = 1;
  make(o);
  trip();
  clock_.advance(10s);  // the open timeout is posted, not yet run
  breaker_->transition_to(kClosed);
  breaker_->transition_to(kOpen);
  settle();
  EXPECT_EQ(breaker_->state(), kOpen);
  EXPECT_EQ(breaker_->time_until_half_open(), 10s);
}

TEST_F(BreakerTest, TransitionToIsANoOpWhenAlreadyThere) {
  make(base_options());
  breaker_->transition_to(kClosed);
  settle();
  EXPECT_TRUE(transitions_.empty());
  breaker_->transition_to(kOpen);
  breaker_->transition_to(kOpen);
  settle();
  EXPECT_EQ(transitions_, States{kOpen});
}

TEST_F(BreakerTest, OnTransitionRunsOncePerTransitionOnTheExecutor) {
  auto o = base_options();
  o.consecutive_failures = 2;
  make(o);
  for (int cycle = 0; cycle < 5; ++cycle) {
    trip();
    advance(10s);
    succeed(3);
  }
  settle();
  States expected;
  for (int cycle = 0; cycle < 5; ++cycle) {
    expected.insert(expected.end(), {kOpen, kHalfOpen, kClosed});
  }
  EXPECT_EQ(transitions_, expected);
}

TEST_F(BreakerTest, WhenNotOpenRunsAtOnceWhenClosed) {
  make(base_options());
  int calls = 0;
  breaker_->when_not_open([&] {
    EXPECT_TRUE(io_.get_executor().running_in_this_thread());
    ++calls;
  });
  settle();
  EXPECT_EQ(calls, 1);
}

TEST_F(BreakerTest, WhenNotOpenWaitsForHalfOpen) {
  auto o = base_options();
  o.consecutive_failures = 1;
  make(o);
  trip();
  int calls = 0;
  breaker_->when_not_open([&] { ++calls; });
  breaker_->when_not_open([&] { ++calls; });
  advance(9s);
  EXPECT_EQ(calls, 0);
  advance(1s);
  EXPECT_EQ(calls, 2);
  fail();  // reopen; the waiters were answered and are gone
  advance(10s);
  EXPECT_EQ(calls, 2);
}

TEST_F(BreakerTest, WhenNotOpenRunsOnManualClose) {
  auto o = base_options();
  o.consecutive_failures = 1;
  make(o);
  trip();
  int calls = 0;
  breaker_->when_not_open([&] { ++calls; });
  settle();
  EXPECT_EQ(calls, 0);
  breaker_->transition_to(kClosed);
  settle();
  EXPECT_EQ(calls, 1);
}

TEST_F(BreakerTest, ReleaseFreesAHalfOpenPermitWithoutCounting) {
  auto o = base_options();
  o.consecutive_failures = 1;
  o.half_open_max_calls = 1;
  make(o);
  trip();
  advance(10s);
  ASSERT_TRUE(breaker_->try_acquire());
  EXPECT_FALSE(breaker_->try_acquire());
  breaker_->release();
  EXPECT_EQ(breaker_->state(), kHalfOpen) << "a release is neither success nor failure";
  EXPECT_TRUE(breaker_->try_acquire());
  EXPECT_FALSE(breaker_->try_acquire());
  succeed();
  EXPECT_EQ(breaker_->state(), kClosed);
}

TEST_F(BreakerTest, DisabledBreakerIsAlwaysClosed) {
  auto o = base_options();
  o.enabled = false;
  o.consecutive_failures = 1;
  make(o);
  fail(100);
  EXPECT_EQ(breaker_->state(), kClosed);
  EXPECT_TRUE(breaker_->try_acquire());
  breaker_->transition_to(kOpen);
  EXPECT_EQ(breaker_->state(), kClosed);
  int calls = 0;
  breaker_->when_not_open([&] { ++calls; });
  settle();
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(transitions_.empty());
}

TEST_F(BreakerTest, UpdateAppliesLive) {
  auto o = base_options();
  o.consecutive_failures = 5;
  o.minimum_calls = 100;
  make(o);
  fail(2);
  EXPECT_EQ(breaker_->state(), kClosed);
  o.consecutive_failures = 3;
  breaker_->update(o);
  EXPECT_EQ(breaker_->state(), kClosed) << "the state is kept";
  fail();  // the run of 3 counts across the reload
  EXPECT_EQ(breaker_->state(), kOpen);
  o.half_open_max_calls = 1;
  o.open_timeout = 1s;
  breaker_->update(o);
  EXPECT_EQ(breaker_->time_until_half_open(), 10s) << "the current open period is kept";
  advance(10s);
  EXPECT_TRUE(breaker_->try_acquire());
  EXPECT_FALSE(breaker_->try_acquire()) << "the new permit count applies";
}

TEST_F(BreakerTest, UpdateDisablingClosesAndReleasesWaiters) {
  auto o = base_options();
  o.consecutive_failures = 1;
  make(o);
  trip();
  int calls = 0;
  breaker_->when_not_open([&] { ++calls; });
  o.enabled = false;
  breaker_->update(o);
  EXPECT_EQ(breaker_->state(), kClosed);
  EXPECT_TRUE(breaker_->try_acquire());
  advance(1h);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(transitions_, (States{kOpen, kClosed}));
}

TEST_F(BreakerTest, UpdateShrinkingWindowKeepsRecentResults) {
  auto o = base_options();
  o.window_size = 10;
  o.minimum_calls = 4;
  make(o);
  fail(2);
  succeed(1);  // [f f s]
  o.window_size = 2;
  o.minimum_calls = 2;
  breaker_->update(o);  // keeps [f s]: 1/2 fails on the next evaluation
  EXPECT_EQ(breaker_->state(), kClosed);
  fail();  // [s f] = 0.5
  EXPECT_EQ(breaker_->state(), kOpen);
}

TEST_F(BreakerTest, DestroyedBreakerLeavesNoCallbacksBehind) {
  auto o = base_options();
  o.consecutive_failures = 1;
  o.max_wait_in_half_open = 1s;
  make(o);
  trip();
  int calls = 0;
  breaker_->when_not_open([&] { ++calls; });
  fail();
  breaker_.reset();
  advance(1h);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(transitions_, States{kOpen});
}

TEST_F(BreakerTest, PostedWaiterDoesNotRunAfterDestruction) {
  make(base_options());
  int calls = 0;
  breaker_->when_not_open([&] { ++calls; });  // posted at once: closed
  breaker_.reset();
  settle();
  EXPECT_EQ(calls, 0);
}

// Concurrent acquire/record/release from a 2-thread pool while the test
// thread moves the clock: run under TSan. The observed transitions must form
// a valid chain and end in the state the breaker reports.
TEST(BreakerConcurrencyTest, ConcurrentUseKeepsAConsistentStateMachine) {
  boost::asio::thread_pool pool(2);
  ManualClock clock;
  CircuitBreakerOptions o = base_options();
  o.consecutive_failures = 3;
  o.window_size = 8;
  o.minimum_calls = 4;
  o.open_timeout = 1ms;
  o.half_open_max_calls = 2;
  o.max_wait_in_half_open = 3ms;
  std::vector<CircuitState> transitions;  // touched only on the breaker's strand
  auto breaker = std::make_unique<CircuitBreaker>(
      o, pool.get_executor(), clock, [&](CircuitState to) { transitions.push_back(to); });
  constexpr int kWorkers = 2;
  constexpr int kCallsPerWorker = 20'000;
  constexpr int kChunk = 250;
  std::atomic<int> admitted{0};
  std::atomic<int> answered{0};
  std::atomic<int> waiters_registered{0};
  std::atomic<int> waiters_run{0};
  // Each worker runs its calls in chunks and re-posts itself, so the
  // breaker's timer and transition handlers interleave with the calls on
  // the same two threads; worker 0 moves the clock between its chunks.
  std::function<void(int, int)> run_chunk = [&](int w, int from) {
    const int to = std::min(from + kChunk, kCallsPerWorker);
    for (int i = from; i < to; ++i) {
      if (!breaker->try_acquire()) continue;
      admitted.fetch_add(1, std::memory_order_relaxed);
      if (i % 17 == 0) {
        breaker->release();
      } else {
        // Alternating bad stretches (every other pair of calls fails) and
        // good ones, so the breaker both trips and closes again.
        const bool bad_stretch = (i / 2'000) % 2 == 0;
        breaker->record(bad_stretch && (i / 2 + w) % 2 == 0, (i % 5 == 0) ? 2s : 1ms);
      }
      answered.fetch_add(1, std::memory_order_relaxed);
    }
    if (w == 0) clock.advance(1ms);
    waiters_registered.fetch_add(1, std::memory_order_relaxed);
    breaker->when_not_open([&] { waiters_run.fetch_add(1, std::memory_order_relaxed); });
    if (to < kCallsPerWorker) boost::asio::post(pool, [&run_chunk, w, to] { run_chunk(w, to); });
  };
  for (int w = 0; w < kWorkers; ++w) {
    boost::asio::post(pool, [&run_chunk, w] { run_chunk(w, 0); });
  }
  pool.join();  // every posted handler has run
  EXPECT_EQ(admitted.load(), answered.load());
  EXPECT_GT(admitted.load(), 0);
  EXPECT_LE(waiters_run.load(), waiters_registered.load());
  // A bad stretch trips it; the clock then half-opens it, and the probes
  // reopen or close it.
  ASSERT_GE(transitions.size(), 3u);
  CircuitState previous = kClosed;
  for (CircuitState to : transitions) {
    ASSERT_NE(to, previous);
    if (previous == kClosed) {
      EXPECT_EQ(to, kOpen);
    } else if (previous == kOpen) {
      EXPECT_EQ(to, kHalfOpen);
    }
    previous = to;
  }
  EXPECT_EQ(breaker->state(), transitions.back());
  breaker.reset();
}

}  // namespace
}  // namespace troupe::core
