#include "core/retry_policy.h"

#include <algorithm>

#include "core/backoff.h"

namespace troupe::core {

bool RetryPolicy::should_retry(const Verdict& verdict, std::uint32_t attempts_made) const {
  return verdict.retryable && attempts_made < options_.max_attempts;
}

Duration RetryPolicy::backoff(std::uint32_t attempts_made, std::optional<Duration> retry_after,
                              JitterRng& rng) const {
  const std::uint32_t n = attempts_made == 0 ? 0 : attempts_made - 1;
  Duration wait = exponential_backoff(options_.initial_backoff, options_.max_backoff,
                                      options_.multiplier, n, options_.jitter, rng);
  if (retry_after && *retry_after > Duration::zero()) {
    // The handler's hint is a floor, but never beyond the configured maximum.
    wait = std::max(wait, std::min(*retry_after, options_.max_backoff));
  }
  return wait;
}

}  // namespace troupe::core
