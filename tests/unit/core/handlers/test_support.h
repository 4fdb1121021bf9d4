#pragma once

/// Shared helpers for handler tests: a real steady Clock (until
/// core::make_steady_clock lands on main), and bounded waits on an io_context.

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>

#include "core/clock.h"

namespace troupe::core::testing {

/// steady_clock time and asio::steady_timer timers. Timers are used from one
/// strand (the Timer contract).
class SteadyTestClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point now() const override {
    return std::chrono::steady_clock::now();
  }
  std::chrono::system_clock::time_point wall_now() const override {
    return std::chrono::system_clock::now();
  }
  std::unique_ptr<Timer> make_timer(boost::asio::any_io_executor executor) override {
    return std::make_unique<AsioTimer>(std::move(executor));
  }

 private:
  class AsioTimer final : public Timer {
   public:
    explicit AsioTimer(boost::asio::any_io_executor executor) : timer_(std::move(executor)) {}
    void wait(Duration after, std::function<void(bool)> fn) override {
      timer_.expires_after(after);
      timer_.async_wait([fn = std::move(fn)](const boost::system::error_code& ec) { fn(!ec); });
    }
    void cancel() override { timer_.cancel(); }

   private:
    boost::asio::steady_timer timer_;
  };
};

/// Runs `io` on this thread until `done()` holds or `bound` passes. Returns
/// done(). The io_context is restarted first, so it can be called repeatedly.
inline bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
                      std::chrono::milliseconds bound = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  io.restart();
  while (!done()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    io.run_one_for(deadline - now);
  }
  return true;
}

/// Runs what is left (completions posted after `done`), bounded.
inline void drain(boost::asio::io_context& io,
                  std::chrono::milliseconds bound = std::chrono::seconds(5)) {
  io.restart();
  io.run_for(bound);
}

}  // namespace troupe::core::testing
