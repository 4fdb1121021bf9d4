#pragma once

#include <atomic>
#include <thread>

namespace troupe::core::detail {

/// A one-byte lock for per-job state, where a std::mutex (40 bytes) would
/// dominate the record's overhead. Critical sections under it are a handful
/// of assignments; it yields after a short spin so a preempted holder on an
/// oversubscribed machine is not starved. Satisfies Lockable.
class SpinLock {
 public:
  void lock() noexcept {
    for (int spins = 0; flag_.exchange(true, std::memory_order_acquire); ++spins) {
      while (flag_.load(std::memory_order_relaxed)) {
        if (++spins > 64) std::this_thread::yield();
      }
    }
  }
  bool try_lock() noexcept { return !flag_.exchange(true, std::memory_order_acquire); }
  void unlock() noexcept { flag_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> flag_{false};
};

}  // namespace troupe::core::detail
