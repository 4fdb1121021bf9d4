#pragma once

#include "core/options.h"

namespace troupe::core {

/// What a troupe makes of one attempt's outcome: the single classification
/// both the retry policy and the circuit breaker consume.
struct Verdict {
  bool success = false;
  bool retryable = false;        // retry (if attempts remain)
  bool breaker_failure = false;  // counts as a failure for the breaker
};

Verdict classify(FailureClass outcome, const RetryOptions& retry,
                 const CircuitBreakerOptions& breaker);

}  // namespace troupe::core
