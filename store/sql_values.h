#pragma once

/// How both journals (SQLite and PostgreSQL) write a job's id and times as
/// SQL values: an id as the signed 64-bit integer with its bits, a time as
/// nanoseconds since the Unix epoch, a TTL clamped so that now - ttl and
/// finished + ttl stay in range. Stateless; safe from any thread.

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdint>

#include "core/job.h"

namespace troupe::store::detail {

/// A TTL beyond this (about 100 years) is taken as this.
inline constexpr std::int64_t kMaxTtlNs = 100LL * 365 * 24 * 3600 * 1'000'000'000LL;

inline std::int64_t wall_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// core::Duration counts nanoseconds.
inline std::int64_t clamp_ttl_ns(core::Duration ttl) {
  return std::clamp<std::int64_t>(ttl.count(), 0, kMaxTtlNs);
}

inline std::int64_t to_sql(core::JobId id) {
  return std::bit_cast<std::int64_t>(id.value);
}

inline core::JobId from_sql(std::int64_t id) {
  return core::JobId{std::bit_cast<std::uint64_t>(id)};
}

}  // namespace troupe::store::detail
