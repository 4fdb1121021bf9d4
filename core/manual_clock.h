#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>

#include "core/clock.h"

namespace troupe::core {

/// A Clock that moves only when told, for deterministic tests of timers,
/// breakers, backoff and scaling. Thread-safe. advance() posts every timer
/// that has come due to its executor (in deadline order); the test then runs
/// the io_context (e.g. io.poll()) to execute them.
class ManualClock final : public Clock {
 public:
  ManualClock();
  ~ManualClock() override;
  std::chrono::steady_clock::time_point now() const override;
  std::chrono::system_clock::time_point wall_now() const override;
  std::unique_ptr<Timer> make_timer(boost::asio::any_io_executor executor) override;

  /// Moves time forward by `by` and fires what came due.
  void advance(Duration by);
  /// Timers currently waiting.
  std::size_t pending_timers() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace troupe::core
