#include "core/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace troupe::core {

namespace {

// Refills are computed in floating point; a bucket this close to a whole
// token counts as having it, so that waiting exactly time_until_available()
// always suffices.
constexpr double kTokenEpsilon = 1e-9;

}  // namespace

RateLimiter::RateLimiter(RateLimitOptions options, Clock& clock)
    : clock_(clock),
      options_(std::move(options)),
      tokens_(static_cast<double>(options_.burst)),
      last_refill_(clock_.now()) {}

void RateLimiter::refill_locked(std::chrono::steady_clock::time_point now) const {
  if (now <= last_refill_) return;
  const double elapsed = std::chrono::duration<double>(now - last_refill_).count();
  if (options_.per_second > 0) {
    tokens_ =
        std::min(static_cast<double>(options_.burst), tokens_ + elapsed * options_.per_second);
  }
  last_refill_ = now;
}

bool RateLimiter::try_acquire() {
  std::lock_guard lock(mutex_);
  if (!options_.enabled) return true;
  refill_locked(clock_.now());
  if (tokens_ < 1.0 - kTokenEpsilon) return false;
  tokens_ -= 1.0;
  return true;
}

Duration RateLimiter::time_until_available() const {
  std::lock_guard lock(mutex_);
  if (!options_.enabled) return Duration::zero();
  refill_locked(clock_.now());
  if (tokens_ >= 1.0 - kTokenEpsilon) return Duration::zero();
  if (options_.per_second <= 0) return Duration::max();  // never refills
  const double seconds = (1.0 - tokens_) / options_.per_second;
  const double nanos = std::ceil(seconds * 1e9);
  if (nanos >= static_cast<double>(Duration::max().count())) return Duration::max();
  return Duration(static_cast<Duration::rep>(nanos));
}

void RateLimiter::update(RateLimitOptions options) {
  std::lock_guard lock(mutex_);
  const auto now = clock_.now();
  // Tokens earned so far accrue at the old rate; the new one applies from now.
  refill_locked(now);
  const bool was_enabled = options_.enabled;
  options_ = std::move(options);
  if (!was_enabled && options_.enabled) {
    tokens_ = static_cast<double>(options_.burst);  // a newly enabled limit starts full
  }
  tokens_ = std::min(tokens_, static_cast<double>(options_.burst));
  last_refill_ = now;
}

}  // namespace troupe::core
