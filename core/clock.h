#pragma once

/// Injectable time for core: every timer and every "now" in core comes from a
/// Clock, so breakers, backoff, timeouts and the auto-scaler are tested on a
/// manual clock, instantly and deterministically.

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <functional>
#include <memory>

#include "core/options.h"

namespace troupe::core {

/// A one-shot timer. Not thread-safe: use it from one strand.
class Timer {
 public:
  virtual ~Timer() = default;
  /// Calls fn(true) on the timer's executor once `after` has elapsed, or
  /// fn(false) when cancel() or another wait() comes first. One wait at a time.
  virtual void wait(Duration after, std::function<void(bool fired)> fn) = 0;
  virtual void cancel() = 0;
};

/// Source of time and timers. Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::steady_clock::time_point now() const = 0;
  virtual std::chrono::system_clock::time_point wall_now() const = 0;
  /// A timer whose handlers run on `executor` (typically an actor's strand).
  virtual std::unique_ptr<Timer> make_timer(boost::asio::any_io_executor executor) = 0;
};

/// The real clock: steady_clock and asio::steady_timer.
std::unique_ptr<Clock> make_steady_clock();

}  // namespace troupe::core
