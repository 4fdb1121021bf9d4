#include "core/failure_policy.h"

#include <gtest/gtest.h>

namespace troupe::core {
namespace {

struct Row {
  FailureClass outcome;
  bool success;
  bool retryable;
  bool breaker_failure;
};

TEST(FailurePolicyTest, DefaultClassificationTable) {
  const RetryOptions retry;
  const CircuitBreakerOptions breaker;
  const Row table[] = {
      {FailureClass::kNone, true, false, false},
      {FailureClass::kRetryable, false, true, true},
      {FailureClass::kPermanent, false, false, false},
      {FailureClass::kTimeout, false, true, true},
      {FailureClass::kCrash, false, true, true},
      {FailureClass::kCancelled, false, false, false},
  };
  for (const Row& row : table) {
    const Verdict v = classify(row.outcome, retry, breaker);
    EXPECT_EQ(v.success, row.success) << static_cast<int>(row.outcome);
    EXPECT_EQ(v.retryable, row.retryable) << static_cast<int>(row.outcome);
    EXPECT_EQ(v.breaker_failure, row.breaker_failure) << static_cast<int>(row.outcome);
  }
}

TEST(FailurePolicyTest, NonRetryableListStopsRetriesButNotBreakerCounting) {
  RetryOptions retry;
  retry.non_retryable = {FailureClass::kTimeout};
  const CircuitBreakerOptions breaker;
  const Verdict timeout = classify(FailureClass::kTimeout, retry, breaker);
  EXPECT_FALSE(timeout.retryable);
  EXPECT_TRUE(timeout.breaker_failure);
  EXPECT_TRUE(classify(FailureClass::kCrash, retry, breaker).retryable);
}

TEST(FailurePolicyTest, PermanentIsNeverRetryableEvenIfNotListed) {
  RetryOptions retry;
  retry.non_retryable = {};
  CircuitBreakerOptions breaker;
  breaker.record = {FailureClass::kPermanent};
  const Verdict v = classify(FailureClass::kPermanent, retry, breaker);
  EXPECT_FALSE(v.retryable);
  EXPECT_FALSE(v.success);
  EXPECT_TRUE(v.breaker_failure) << "recorded when the breaker is told to";
}

TEST(FailurePolicyTest, CancelledIsNeverABreakerFailure) {
  const RetryOptions retry;
  CircuitBreakerOptions breaker;
  breaker.record = {FailureClass::kCancelled, FailureClass::kRetryable};
  const Verdict v = classify(FailureClass::kCancelled, retry, breaker);
  EXPECT_FALSE(v.retryable);
  EXPECT_FALSE(v.breaker_failure);
  EXPECT_FALSE(v.success);
}

TEST(FailurePolicyTest, BreakerRecordSetSelectsFailures) {
  const RetryOptions retry;
  CircuitBreakerOptions breaker;
  breaker.record = {FailureClass::kTimeout};
  EXPECT_TRUE(classify(FailureClass::kTimeout, retry, breaker).breaker_failure);
  EXPECT_FALSE(classify(FailureClass::kCrash, retry, breaker).breaker_failure);
  EXPECT_FALSE(classify(FailureClass::kRetryable, retry, breaker).breaker_failure);
  EXPECT_TRUE(classify(FailureClass::kRetryable, retry, breaker).retryable);
}

TEST(FailurePolicyTest, SuccessIsNeverAFailure) {
  RetryOptions retry;
  retry.non_retryable = {FailureClass::kNone};
  CircuitBreakerOptions breaker;
  breaker.record = {FailureClass::kNone};
  const Verdict v = classify(FailureClass::kNone, retry, breaker);
  EXPECT_TRUE(v.success);
  EXPECT_FALSE(v.retryable);
  EXPECT_FALSE(v.breaker_failure);
}

}  // namespace
}  // namespace troupe::core
