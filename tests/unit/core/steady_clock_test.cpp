#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <optional>

#include "core/clock.h"

namespace troupe::core {
namespace {

using boost::asio::io_context;

// Runs io until `done` or a generous bound passes; the bound only stops a
// broken test from hanging, it is not the thing waited on.
template <typename Pred>
void run_until(io_context& io, Pred done) {
  const auto give_up = std::chrono::steady_clock::now() + 10s;
  while (!done() && std::chrono::steady_clock::now() < give_up) {
    io.run_one_for(100ms);
    if (io.stopped()) io.restart();
  }
}

TEST(SteadyClockTest, NowIsMonotonic) {
  auto clock = make_steady_clock();
  const auto a = clock->now();
  const auto b = clock->now();
  EXPECT_LE(a, b);
  EXPECT_GT(clock->wall_now().time_since_epoch().count(), 0);
}

TEST(SteadyClockTest, TimerFiresAfterDelayOnExecutor) {
  io_context io;
  auto clock = make_steady_clock();
  auto timer = clock->make_timer(io.get_executor());
  std::optional<bool> result;
  bool on_executor = false;
  const auto start = clock->now();
  timer->wait(20ms, [&](bool fired) {
    on_executor = io.get_executor().running_in_this_thread();
    result = fired;
  });
  run_until(io, [&] { return result.has_value(); });
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(*result);
  EXPECT_TRUE(on_executor);
  EXPECT_GE(clock->now() - start, 20ms);
}

TEST(SteadyClockTest, CancelReportsNotFired) {
  io_context io;
  auto clock = make_steady_clock();
  auto timer = clock->make_timer(io.get_executor());
  std::optional<bool> result;
  timer->wait(1h, [&](bool fired) { result = fired; });
  timer->cancel();
  run_until(io, [&] { return result.has_value(); });
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(*result);
}

TEST(SteadyClockTest, ReWaitSupersedesPendingWait) {
  io_context io;
  auto clock = make_steady_clock();
  auto timer = clock->make_timer(io.get_executor());
  std::optional<bool> first;
  std::optional<bool> second;
  timer->wait(1h, [&](bool fired) { first = fired; });
  timer->wait(1ms, [&](bool fired) { second = fired; });
  run_until(io, [&] { return first.has_value() && second.has_value(); });
  ASSERT_TRUE(first.has_value() && second.has_value());
  EXPECT_FALSE(*first);
  EXPECT_TRUE(*second);
}

TEST(SteadyClockTest, CancelAfterExpiryBeforeHandlerReportsNotFired) {
  io_context io;
  auto clock = make_steady_clock();
  auto timer = clock->make_timer(io.get_executor());
  std::optional<bool> result;
  timer->wait(0ms, [&](bool fired) { result = fired; });
  timer->cancel();  // the completion may already be queued; it must still say "not fired"
  run_until(io, [&] { return result.has_value(); });
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(*result);
}

TEST(SteadyClockTest, DestroyedTimerWithPendingWaitIsSafe) {
  io_context io;
  auto clock = make_steady_clock();
  std::optional<bool> result;
  {
    auto timer = clock->make_timer(io.get_executor());
    timer->wait(1h, [&](bool fired) { result = fired; });
  }
  run_until(io, [&] { return result.has_value(); });
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(*result);
}

TEST(SteadyClockTest, HugeWaitIsClampedNotOverflowed) {
  io_context io;
  auto clock = make_steady_clock();
  auto timer = clock->make_timer(io.get_executor());
  std::optional<bool> result;
  timer->wait(Duration::max(), [&](bool fired) { result = fired; });
  io.poll();
  EXPECT_FALSE(result.has_value());
  timer->cancel();
  run_until(io, [&] { return result.has_value(); });
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(*result);
}

}  // namespace
}  // namespace troupe::core
