#include "core/manual_clock.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <optional>
#include <vector>

namespace troupe::core {
namespace {

using boost::asio::io_context;

TEST(ManualClockTest, NowMovesOnlyOnAdvance) {
  ManualClock clock;
  const auto t0 = clock.now();
  const auto w0 = clock.wall_now();
  EXPECT_EQ(clock.now(), t0);
  clock.advance(1500ms);
  EXPECT_EQ(clock.now() - t0, 1500ms);
  EXPECT_EQ(clock.wall_now() - w0, 1500ms);
}

TEST(ManualClockTest, TimerFiresOnlyWhenDueAndOnItsExecutor) {
  io_context io;
  ManualClock clock;
  auto timer = clock.make_timer(io.get_executor());
  std::optional<bool> result;
  timer->wait(100ms, [&](bool fired) {
    EXPECT_TRUE(io.get_executor().running_in_this_thread());
    result = fired;
  });
  EXPECT_EQ(clock.pending_timers(), 1u);
  clock.advance(99ms);
  io.poll();
  io.restart();
  EXPECT_FALSE(result.has_value());
  clock.advance(1ms);
  EXPECT_FALSE(result.has_value()) << "handler must run on the executor, not inside advance()";
  io.poll();
  io.restart();
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(*result);
  EXPECT_EQ(clock.pending_timers(), 0u);
}

TEST(ManualClockTest, DueTimersRunInDeadlineOrder) {
  io_context io;
  ManualClock clock;
  std::vector<int> order;
  auto a = clock.make_timer(io.get_executor());
  auto b = clock.make_timer(io.get_executor());
  auto c = clock.make_timer(io.get_executor());
  a->wait(30ms, [&](bool) { order.push_back(30); });
  b->wait(10ms, [&](bool) { order.push_back(10); });
  c->wait(20ms, [&](bool) { order.push_back(20); });
  clock.advance(1s);
  io.poll();
  EXPECT_EQ(order, (std::vector<int>{10, 20, 30}));
}

TEST(ManualClockTest, CancelReportsNotFired) {
  io_context io;
  ManualClock clock;
  auto timer = clock.make_timer(io.get_executor());
  std::vector<bool> results;
  timer->wait(10ms, [&](bool fired) { results.push_back(fired); });
  timer->cancel();
  EXPECT_EQ(clock.pending_timers(), 0u);
  clock.advance(1s);
  io.poll();
  EXPECT_EQ(results, std::vector<bool>{false});
}

TEST(ManualClockTest, ReWaitSupersedesPendingWait) {
  io_context io;
  ManualClock clock;
  auto timer = clock.make_timer(io.get_executor());
  std::vector<std::pair<int, bool>> results;
  timer->wait(10ms, [&](bool fired) { results.emplace_back(1, fired); });
  timer->wait(50ms, [&](bool fired) { results.emplace_back(2, fired); });
  EXPECT_EQ(clock.pending_timers(), 1u);
  clock.advance(20ms);
  io.poll();
  io.restart();
  EXPECT_EQ(results, (std::vector<std::pair<int, bool>>{{1, false}}));
  clock.advance(30ms);
  io.poll();
  EXPECT_EQ(results, (std::vector<std::pair<int, bool>>{{1, false}, {2, true}}));
}

TEST(ManualClockTest, CancelAfterDueButBeforeRunReportsNotFired) {
  io_context io;
  ManualClock clock;
  auto timer = clock.make_timer(io.get_executor());
  std::vector<bool> results;
  timer->wait(10ms, [&](bool fired) { results.push_back(fired); });
  clock.advance(10ms);  // posted, not yet run
  timer->cancel();
  io.poll();
  EXPECT_EQ(results, std::vector<bool>{false});
}

TEST(ManualClockTest, ZeroWaitFiresWithoutAdvance) {
  io_context io;
  ManualClock clock;
  auto timer = clock.make_timer(io.get_executor());
  std::optional<bool> result;
  timer->wait(0ms, [&](bool fired) { result = fired; });
  io.poll();
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(*result);
}

TEST(ManualClockTest, HugeWaitDoesNotOverflow) {
  io_context io;
  ManualClock clock;
  auto timer = clock.make_timer(io.get_executor());
  std::optional<bool> result;
  timer->wait(Duration::max(), [&](bool fired) { result = fired; });
  clock.advance(24h * 365);
  io.poll();
  EXPECT_FALSE(result.has_value());
  EXPECT_EQ(clock.pending_timers(), 1u);
}

TEST(ManualClockTest, DestroyedTimerWithPendingWaitIsSafe) {
  io_context io;
  ManualClock clock;
  auto alive = std::make_shared<int>(0);
  std::weak_ptr<int> watch = alive;
  std::optional<bool> result;
  {
    auto timer = clock.make_timer(io.get_executor());
    timer->wait(10ms, [&result, alive = std::move(alive)](bool fired) { result = fired; });
  }
  EXPECT_EQ(clock.pending_timers(), 0u);
  clock.advance(1s);
  io.poll();
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(*result);
  EXPECT_TRUE(watch.expired()) << "the callback is released once answered";
}

TEST(ManualClockTest, TimerMayOutliveClock) {
  io_context io;
  auto clock = std::make_unique<ManualClock>();
  auto timer = clock->make_timer(io.get_executor());
  std::optional<bool> result;
  timer->wait(10ms, [&](bool fired) { result = fired; });
  clock.reset();
  timer.reset();
  io.poll();
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(*result);
}

TEST(ManualClockTest, HandlerMayReArmItsTimer) {
  io_context io;
  ManualClock clock;
  auto timer = clock.make_timer(io.get_executor());
  int fired_count = 0;
  std::function<void(bool)> tick = [&](bool fired) {
    if (!fired) return;
    if (++fired_count < 3) timer->wait(10ms, tick);
  };
  timer->wait(10ms, tick);
  for (int i = 0; i < 5; ++i) {
    clock.advance(10ms);
    io.poll();
    io.restart();
  }
  EXPECT_EQ(fired_count, 3);
}

TEST(ManualClockTest, HandlersRunOnAStrandExecutor) {
  io_context io;
  ManualClock clock;
  auto strand = boost::asio::make_strand(io);
  auto timer = clock.make_timer(strand);
  bool on_strand = false;
  timer->wait(1ms, [&](bool) { on_strand = strand.running_in_this_thread(); });
  clock.advance(1ms);
  io.poll();
  EXPECT_TRUE(on_strand);
}

}  // namespace
}  // namespace troupe::core
