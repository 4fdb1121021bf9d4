// Minimal stand-ins for backoff, classify, RetryPolicy and RateLimiter.
#include <algorithm>
#include <cmath>

#include "core/backoff.h"
#include "core/failure_policy.h"
#include "core/rate_limiter.h"
#include "core/retry_policy.h"

namespace troupe::core {

Duration exponential_backoff(Duration initial, Duration max, double multiplier, std::uint32_t n,
                             bool jitter, std::mt19937_64& rng) {
  double d = static_cast<double>(initial.count()) * std::pow(multiplier, n);
  d = std::min(d, static_cast<double>(max.count()));
  auto v = static_cast<Duration::rep>(d);
  if (jitter && v > 0) v = std::uniform_int_distribution<Duration::rep>(0, v)(rng);
  return Duration(v);
}

Verdict classify(FailureClass outcome, const RetryOptions& retry,
                 const CircuitBreakerOptions& breaker) {
  Verdict v;
  v.success = outcome == FailureClass::kNone;
  v.retryable = !v.success && outcome != FailureClass::kPermanent &&
                outcome != FailureClass::kCancelled && !retry.non_retryable.contains(outcome);
  v.breaker_failure = breaker.record.contains(outcome);
  return v;
}

bool RetryPolicy::should_retry(const Verdict& verdict, std::uint32_t attempts_made) const {
  return verdict.retryable && attempts_made < options_.max_attempts;
}

Duration RetryPolicy::backoff(std::uint32_t attempts_made, std::optional<Duration> retry_after,
                              std::mt19937_64& rng) const {
  Duration d = exponential_backoff(options_.initial_backoff, options_.max_backoff,
                                   options_.multiplier, attempts_made - 1, options_.jitter, rng);
  if (retry_after) d = std::max(d, std::min(*retry_after, options_.max_backoff));
  return d;
}

RateLimiter::RateLimiter(RateLimitOptions options, Clock& clock)
    : clock_(clock), options_(options), tokens_(options.burst), last_refill_(clock.now()) {}

void RateLimiter::refill_locked(std::chrono::steady_clock::time_point now) const {
  const double secs = std::chrono::duration<double>(now - last_refill_).count();
  tokens_ = std::min<double>(options_.burst, tokens_ + secs * options_.per_second);
  last_refill_ = now;
}

bool RateLimiter::try_acquire() {
  std::lock_guard lock(mutex_);
  if (!options_.enabled) return true;
  refill_locked(clock_.now());
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

Duration RateLimiter::time_until_available() const {
  std::lock_guard lock(mutex_);
  if (!options_.enabled) return Duration::zero();
  refill_locked(clock_.now());
  if (tokens_ >= 1.0) return Duration::zero();
  return std::chrono::duration_cast<Duration>(
      std::chrono::duration<double>((1.0 - tokens_) / options_.per_second));
}

void RateLimiter::update(RateLimitOptions options) {
  std::lock_guard lock(mutex_);
  refill_locked(clock_.now());
  options_ = options;
  tokens_ = std::min<double>(tokens_, options_.burst);
}

}  // namespace troupe::core
