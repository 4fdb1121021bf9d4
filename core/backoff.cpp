#include "core/backoff.h"

#include <algorithm>
#include <cmath>

namespace troupe::core {

Duration capped_backoff(Duration initial, Duration max, double multiplier, std::uint32_t n) {
  if (max <= Duration::zero() || initial <= Duration::zero()) return Duration::zero();
  Duration capped = max;
  // In floating point: initial * multiplier^n overflows int64 long before n
  // is large, but a double just saturates to inf, which the cap absorbs.
  const double scaled = static_cast<double>(initial.count()) *
                        std::pow(std::max(multiplier, 1.0), static_cast<double>(n));
  if (std::isfinite(scaled) && scaled < static_cast<double>(max.count())) {
    capped = Duration(static_cast<Duration::rep>(scaled));
  }
  return capped;
}

Duration exponential_backoff(Duration initial, Duration max, double multiplier, std::uint32_t n,
                             bool jitter, JitterRng& rng) {
  const Duration capped = capped_backoff(initial, max, multiplier, n);
  if (!jitter || capped == Duration::zero()) return capped;
  std::uniform_int_distribution<Duration::rep> full_jitter(0, capped.count());
  return Duration(full_jitter(rng));
}

}  // namespace troupe::core
