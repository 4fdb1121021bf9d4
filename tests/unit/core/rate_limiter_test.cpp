#include "core/rate_limiter.h"

#include <gtest/gtest.h>

#include "core/manual_clock.h"

namespace troupe::core {
namespace {

RateLimitOptions limit(double per_second, std::uint32_t burst) {
  RateLimitOptions o;
  o.enabled = true;
  o.per_second = per_second;
  o.burst = burst;
  return o;
}

int drain(RateLimiter& limiter) {
  int taken = 0;
  while (limiter.try_acquire()) {
    if (++taken > 1'000'000) break;  // a broken limiter must not hang the test
  }
  return taken;
}

TEST(RateLimiterTest, DisabledAlwaysAdmits) {
  ManualClock clock;
  RateLimiter limiter(RateLimitOptions{}, clock);
  for (int i = 0; i < 10'000; ++i) ASSERT_TRUE(limiter.try_acquire());
  EXPECT_EQ(limiter.time_until_available(), Duration::zero());
}

TEST(RateLimiterTest, StartsFullWithBurstTokens) {
  ManualClock clock;
  RateLimiter limiter(limit(10, 5), clock);
  EXPECT_EQ(drain(limiter), 5);
  EXPECT_FALSE(limiter.try_acquire());
}

TEST(RateLimiterTest, RefillsAtRate) {
  ManualClock clock;
  RateLimiter limiter(limit(10, 5), clock);
  drain(limiter);
  clock.advance(99ms);
  EXPECT_FALSE(limiter.try_acquire());
  clock.advance(1ms);
  EXPECT_TRUE(limiter.try_acquire());
  EXPECT_FALSE(limiter.try_acquire());
  clock.advance(300ms);
  EXPECT_EQ(drain(limiter), 3);
}

TEST(RateLimiterTest, RefillIsCappedAtBurst) {
  ManualClock clock;
  RateLimiter limiter(limit(100, 4), clock);
  drain(limiter);
  clock.advance(1h);
  EXPECT_EQ(drain(limiter), 4);
}

TEST(RateLimiterTest, SustainedRateOverManySteps) {
  ManualClock clock;
  RateLimiter limiter(limit(1000, 1), clock);
  drain(limiter);
  int admitted = 0;
  for (int step = 0; step < 10'000; ++step) {  // 10 s in 1 ms steps
    clock.advance(1ms);
    admitted += drain(limiter);
  }
  EXPECT_GE(admitted, 9'990);
  EXPECT_LE(admitted, 10'000);
}

TEST(RateLimiterTest, TimeUntilAvailableIsExactAndSufficient) {
  ManualClock clock;
  RateLimiter limiter(limit(4, 1), clock);
  EXPECT_EQ(limiter.time_until_available(), Duration::zero());
  ASSERT_TRUE(limiter.try_acquire());
  EXPECT_EQ(limiter.time_until_available(), 250ms);
  clock.advance(100ms);
  const Duration rest = limiter.time_until_available();
  EXPECT_EQ(rest, 150ms);
  clock.advance(rest - 1ns);
  EXPECT_FALSE(limiter.try_acquire());
  clock.advance(1ns);
  EXPECT_TRUE(limiter.try_acquire());
}

TEST(RateLimiterTest, TimeUntilAvailableWithAwkwardRateSuffices) {
  ManualClock clock;
  RateLimiter limiter(limit(3, 1), clock);
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(limiter.try_acquire()) << i;
    const Duration wait = limiter.time_until_available();
    ASSERT_GT(wait, Duration::zero());
    clock.advance(wait);
  }
}

TEST(RateLimiterTest, UpdateChangesRateLive) {
  ManualClock clock;
  RateLimiter limiter(limit(1, 10), clock);
  drain(limiter);
  clock.advance(500ms);  // half a token at the old rate
  limiter.update(limit(100, 10));
  EXPECT_FALSE(limiter.try_acquire());
  clock.advance(5ms);  // +0.5 at the new rate
  EXPECT_TRUE(limiter.try_acquire());
  clock.advance(100ms);
  EXPECT_EQ(drain(limiter), 10);
}

TEST(RateLimiterTest, UpdateCapsFillAtNewBurst) {
  ManualClock clock;
  RateLimiter limiter(limit(10, 10), clock);
  limiter.update(limit(10, 3));
  EXPECT_EQ(drain(limiter), 3);
}

TEST(RateLimiterTest, UpdateKeepsCurrentFillWhenBurstGrows) {
  ManualClock clock;
  RateLimiter limiter(limit(10, 2), clock);
  drain(limiter);
  limiter.update(limit(10, 20));
  EXPECT_FALSE(limiter.try_acquire()) << "growing the bucket does not fill it";
}

TEST(RateLimiterTest, UpdateCanDisableAndReEnable) {
  ManualClock clock;
  RateLimiter limiter(limit(1, 1), clock);
  drain(limiter);
  limiter.update(RateLimitOptions{});
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(limiter.try_acquire());
  EXPECT_EQ(limiter.time_until_available(), Duration::zero());
  limiter.update(limit(1, 2));
  EXPECT_EQ(drain(limiter), 2);
  EXPECT_EQ(limiter.time_until_available(), 1s);
}

}  // namespace
}  // namespace troupe::core
