#pragma once

#include <cstddef>

namespace troupe::core::detail {

/// Bytes in a cache line on the machines we run on (x86-64, most arm64).
/// Data written by different threads on every job goes on lines of its own
/// (`alignas(kCacheLine)`), or the threads take turns owning one line (false
/// sharing; measured in docs/performance.md). A constant rather than
/// std::hardware_destructive_interference_size, which GCC warns is not ABI
/// stable across -mtune settings.
inline constexpr std::size_t kCacheLine = 64;

}  // namespace troupe::core::detail
