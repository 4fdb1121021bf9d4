#pragma once

#include <cstdint>
#include <optional>
#include <random>

#include "core/backoff.h"
#include "core/failure_policy.h"
#include "core/options.h"

namespace troupe::core {

/// Decides whether and when a failed attempt is tried again. Stateless apart
/// from its options; the caller owns the random generator (one per strand).
class RetryPolicy {
 public:
  explicit RetryPolicy(RetryOptions options) : options_(std::move(options)) {}

  const RetryOptions& options() const { return options_; }

  /// True when `verdict` is retryable and fewer than max_attempts attempts
  /// have been made.
  bool should_retry(const Verdict& verdict, std::uint32_t attempts_made) const;

  /// Wait before the next attempt, after `attempts_made` (>= 1) attempts:
  /// exponential_backoff(initial, max, multiplier, attempts_made - 1, jitter),
  /// but never less than the handler's retry_after hint (capped at
  /// max_backoff).
  Duration backoff(std::uint32_t attempts_made, std::optional<Duration> retry_after,
                   JitterRng& rng) const;

 private:
  RetryOptions options_;
};

}  // namespace troupe::core
