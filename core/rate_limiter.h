#pragma once

#include <mutex>

#include "core/clock.h"
#include "core/options.h"

namespace troupe::core {

/// Token bucket on dispatches: refills at per_second up to burst tokens.
/// Thread-safe (a mutex guards the bucket; critical sections are a few
/// arithmetic operations). When disabled, every acquire succeeds.
class RateLimiter {
 public:
  RateLimiter(RateLimitOptions options, Clock& clock);

  /// Takes one token if there is one.
  bool try_acquire();
  /// How long until a token will be available (zero if one is now).
  Duration time_until_available() const;
  /// Applies new options live; the bucket keeps its current fill (capped).
  void update(RateLimitOptions options);

 private:
  void refill_locked(std::chrono::steady_clock::time_point now) const;

  Clock& clock_;
  mutable std::mutex mutex_;  // guards everything below
  RateLimitOptions options_;
  mutable double tokens_;
  mutable std::chrono::steady_clock::time_point last_refill_;
};

}  // namespace troupe::core
