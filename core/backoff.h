#pragma once

#include <cstdint>
#include <random>

#include "core/options.h"

namespace troupe::core {

/// The one exponential backoff used by retries and supervisor restarts:
/// min(max, initial * multiplier^n), then with `jitter` a uniform draw from
/// [0, that] (full jitter). n is 0 for the first backoff.
/// min(max, initial * multiplier^n), no jitter: the deterministic part of
/// exponential_backoff (also the breaker's growing open timeout).
Duration capped_backoff(Duration initial, Duration max, double multiplier, std::uint32_t n);

Duration exponential_backoff(Duration initial, Duration max, double multiplier, std::uint32_t n,
                             bool jitter, std::mt19937_64& rng);

}  // namespace troupe::core
