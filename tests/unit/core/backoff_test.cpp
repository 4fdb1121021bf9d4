#include "core/backoff.h"

#include <gtest/gtest.h>

#include <set>

namespace troupe::core {
namespace {

TEST(BackoffTest, ExactValuesWithoutJitter) {
  JitterRng rng(1);
  EXPECT_EQ(exponential_backoff(100ms, 30s, 2.0, 0, false, rng), 100ms);
  EXPECT_EQ(exponential_backoff(100ms, 30s, 2.0, 1, false, rng), 200ms);
  EXPECT_EQ(exponential_backoff(100ms, 30s, 2.0, 2, false, rng), 400ms);
  EXPECT_EQ(exponential_backoff(100ms, 30s, 2.0, 8, false, rng), 25600ms);
  EXPECT_EQ(exponential_backoff(100ms, 30s, 2.0, 9, false, rng), 30s) << "capped at max";
  EXPECT_EQ(exponential_backoff(10ms, 1s, 3.0, 3, false, rng), 270ms);
  EXPECT_EQ(exponential_backoff(10ms, 1s, 1.0, 50, false, rng), 10ms) << "multiplier 1 is flat";
}

TEST(BackoffTest, InitialAboveMaxIsCapped) {
  JitterRng rng(1);
  EXPECT_EQ(exponential_backoff(5s, 1s, 2.0, 0, false, rng), 1s);
}

TEST(BackoffTest, ZeroInitialOrMaxIsZero) {
  JitterRng rng(1);
  EXPECT_EQ(exponential_backoff(0ms, 1s, 2.0, 3, false, rng), 0ms);
  EXPECT_EQ(exponential_backoff(10ms, 0ms, 2.0, 3, false, rng), 0ms);
  EXPECT_EQ(exponential_backoff(10ms, 0ms, 2.0, 3, true, rng), 0ms);
}

TEST(BackoffTest, LargeExponentsSaturateAtMaxWithoutOverflow) {
  JitterRng rng(1);
  for (std::uint32_t n : {62u, 63u, 64u, 1000u, 1'000'000u, UINT32_MAX}) {
    EXPECT_EQ(exponential_backoff(100ms, 30s, 2.0, n, false, rng), 30s) << n;
    EXPECT_EQ(exponential_backoff(Duration::max(), Duration::max(), 10.0, n, false, rng),
              Duration::max())
        << n;
    const Duration jittered = exponential_backoff(100ms, 30s, 2.0, n, true, rng);
    EXPECT_GE(jittered, 0ms);
    EXPECT_LE(jittered, 30s);
  }
}

TEST(BackoffTest, FullJitterStaysWithinZeroAndComputedBound) {
  JitterRng rng(42);
  Duration lowest = Duration::max();
  Duration highest = Duration::zero();
  std::set<Duration::rep> distinct;
  constexpr int kDraws = 10'000;
  for (int i = 0; i < kDraws; ++i) {
    const Duration d = exponential_backoff(100ms, 30s, 2.0, 2, true, rng);
    ASSERT_GE(d, 0ms);
    ASSERT_LE(d, 400ms);
    lowest = std::min(lowest, d);
    highest = std::max(highest, d);
    distinct.insert(d.count());
  }
  // Full jitter spreads over the whole range: both ends are approached.
  EXPECT_LT(lowest, 40ms);
  EXPECT_GT(highest, 360ms);
  EXPECT_GT(distinct.size(), kDraws / 2u);
}

TEST(BackoffTest, JitterIsReproducibleForASeed) {
  JitterRng a(7);
  JitterRng b(7);
  for (std::uint32_t n = 0; n < 20; ++n) {
    EXPECT_EQ(exponential_backoff(1ms, 1min, 2.0, n, true, a),
              exponential_backoff(1ms, 1min, 2.0, n, true, b));
  }
}

}  // namespace
}  // namespace troupe::core
