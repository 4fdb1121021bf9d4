#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

namespace troupe::core::detail {

/// Stops new work and tells when the work already admitted is done (after
/// Seastar's gate). One per troupe: every accepted job holds it from accept
/// to its terminal transition, so its count is the troupe's in_flight. The
/// drain and the removal of a troupe by a reload both close it.
///
/// Thread-safe and lock-free on enter/leave. Admission and closing are one
/// atomic word, so an enter either happens before the close (and is waited
/// for) or is refused: nothing is admitted after the gate reported empty.
/// `when_empty` callbacks run once, on the thread that closed the gate or
/// that made the last leave().
class Gate {
 public:
  /// Admits one unit of work; false once the gate is closed.
  bool enter() noexcept {
    std::uint64_t v = state_.load(std::memory_order_relaxed);
    do {
      if (v & kClosed) return false;
    } while (!state_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel,
                                           std::memory_order_relaxed));
    return true;
  }

  /// Ends one admitted unit of work.
  void leave() {
    if (state_.fetch_sub(1, std::memory_order_acq_rel) - 1 == kClosed) fire();
  }

  /// Stops admitting; `when_empty` runs once no admitted work remains (at
  /// once, on this thread, when none does). May be called again to add
  /// another waiter.
  void close(std::function<void()> when_empty) {
    {
      std::lock_guard lock(mutex_);
      if (!fired_) {
        if (when_empty) waiters_.push_back(std::move(when_empty));
        when_empty = nullptr;
      }
    }
    if (when_empty) {
      when_empty();  // already empty and reported
      return;
    }
    const std::uint64_t was = state_.fetch_or(kClosed, std::memory_order_acq_rel);
    if (was == 0) fire();  // open and empty: nobody else will report it
  }

  bool closed() const noexcept { return state_.load(std::memory_order_acquire) & kClosed; }
  /// Work admitted and not yet ended.
  std::uint64_t count() const noexcept { return state_.load(std::memory_order_acquire) & ~kClosed; }

 private:
  static constexpr std::uint64_t kClosed = std::uint64_t{1} << 63;

  void fire() {
    std::vector<std::function<void()>> waiters;
    {
      std::lock_guard lock(mutex_);
      fired_ = true;
      waiters.swap(waiters_);
    }
    for (auto& fn : waiters) fn();
  }

  std::atomic<std::uint64_t> state_{0};  // kClosed | count
  std::mutex mutex_;                     // guards waiters_ and fired_
  std::vector<std::function<void()>> waiters_;
  bool fired_ = false;
};

}  // namespace troupe::core::detail
