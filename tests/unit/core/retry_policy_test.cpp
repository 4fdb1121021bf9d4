#include "core/retry_policy.h"

#include <gtest/gtest.h>

namespace troupe::core {
namespace {

RetryOptions fixed_options() {
  RetryOptions o;
  o.max_attempts = 3;
  o.initial_backoff = 100ms;
  o.max_backoff = 1s;
  o.multiplier = 2.0;
  o.jitter = false;
  return o;
}

TEST(RetryPolicyTest, RetriesRetryableUntilMaxAttempts) {
  const RetryPolicy policy(fixed_options());
  const Verdict retryable{false, true, true};
  EXPECT_TRUE(policy.should_retry(retryable, 1));
  EXPECT_TRUE(policy.should_retry(retryable, 2));
  EXPECT_FALSE(policy.should_retry(retryable, 3));
  EXPECT_FALSE(policy.should_retry(retryable, 4));
}

TEST(RetryPolicyTest, NeverRetriesNonRetryableOrSuccess) {
  const RetryPolicy policy(fixed_options());
  EXPECT_FALSE(policy.should_retry(Verdict{false, false, true}, 1));
  EXPECT_FALSE(policy.should_retry(Verdict{true, false, false}, 1));
}

TEST(RetryPolicyTest, SingleAttemptMeansNoRetry) {
  RetryOptions o = fixed_options();
  o.max_attempts = 1;
  const RetryPolicy policy(o);
  EXPECT_FALSE(policy.should_retry(Verdict{false, true, true}, 1));
}

TEST(RetryPolicyTest, BackoffFollowsExponentialFromFirstRetry) {
  const RetryPolicy policy(fixed_options());
  JitterRng rng(1);
  EXPECT_EQ(policy.backoff(1, std::nullopt, rng), 100ms);
  EXPECT_EQ(policy.backoff(2, std::nullopt, rng), 200ms);
  EXPECT_EQ(policy.backoff(3, std::nullopt, rng), 400ms);
  EXPECT_EQ(policy.backoff(5, std::nullopt, rng), 1s);
  EXPECT_EQ(policy.backoff(UINT32_MAX, std::nullopt, rng), 1s);
}

TEST(RetryPolicyTest, RetryAfterHintIsAFloorCappedAtMax) {
  const RetryPolicy policy(fixed_options());
  JitterRng rng(1);
  EXPECT_EQ(policy.backoff(1, 300ms, rng), 300ms) << "hint above computed backoff wins";
  EXPECT_EQ(policy.backoff(3, 300ms, rng), 400ms) << "computed backoff above hint wins";
  EXPECT_EQ(policy.backoff(1, 1h, rng), 1s) << "hint capped at max_backoff";
  EXPECT_EQ(policy.backoff(1, -5s, rng), 100ms) << "a negative hint is ignored";
}

TEST(RetryPolicyTest, JitteredBackoffStaysInRangeAndRespectsHint) {
  RetryOptions o = fixed_options();
  o.jitter = true;
  const RetryPolicy policy(o);
  JitterRng rng(3);
  for (int i = 0; i < 2000; ++i) {
    const Duration d = policy.backoff(3, std::nullopt, rng);
    ASSERT_GE(d, 0ms);
    ASSERT_LE(d, 400ms);
    const Duration hinted = policy.backoff(3, 250ms, rng);
    ASSERT_GE(hinted, 250ms);
    ASSERT_LE(hinted, 400ms);
  }
}

}  // namespace
}  // namespace troupe::core
