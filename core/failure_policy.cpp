#include "core/failure_policy.h"

namespace troupe::core {

Verdict classify(FailureClass outcome, const RetryOptions& retry,
                 const CircuitBreakerOptions& breaker) {
  Verdict verdict;
  switch (outcome) {
    case FailureClass::kNone:
      verdict.success = true;
      return verdict;
    case FailureClass::kPermanent:
      // Never retried, whatever non_retryable says; the breaker decides.
      verdict.breaker_failure = breaker.record.contains(outcome);
      return verdict;
    case FailureClass::kCancelled:
      // A cancellation says nothing about the target's health.
      return verdict;
    case FailureClass::kRetryable:
    case FailureClass::kTimeout:
    case FailureClass::kCrash:
      verdict.retryable = !retry.non_retryable.contains(outcome);
      verdict.breaker_failure = breaker.record.contains(outcome);
      return verdict;
  }
  return verdict;
}

}  // namespace troupe::core
