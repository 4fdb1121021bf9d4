#pragma once

#include <cstdint>
#include <random>

#include "core/options.h"

namespace troupe::core {

/// The random generator behind backoff jitter: SplitMix64, 8 bytes of state
/// (one per actor strand; a mt19937_64 would add 2.5 KB to every idle
/// actor). Plenty for spreading retries; not for anything secret. Not
/// thread-safe: one per strand.
class JitterRng {
 public:
  using result_type = std::uint64_t;
  explicit JitterRng(std::uint64_t seed = 0) : state_(seed) {}
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return ~result_type{0}; }
  result_type operator()() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  std::uint64_t state_;
};

/// The one exponential backoff used by retries and supervisor restarts:
/// min(max, initial * multiplier^n), then with `jitter` a uniform draw from
/// [0, that] (full jitter). n is 0 for the first backoff.
/// min(max, initial * multiplier^n), no jitter: the deterministic part of
/// exponential_backoff (also the breaker's growing open timeout).
Duration capped_backoff(Duration initial, Duration max, double multiplier, std::uint32_t n);

Duration exponential_backoff(Duration initial, Duration max, double multiplier, std::uint32_t n,
                             bool jitter, JitterRng& rng);

}  // namespace troupe::core
