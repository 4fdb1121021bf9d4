#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <memory>

#include "core/clock.h"

namespace troupe::core {
namespace {

// Waits longer than this are clamped so steady_clock arithmetic cannot
// overflow (Duration::max() is a legitimate "never" from callers).
constexpr Duration kLongestWait = std::chrono::hours(24 * 365 * 100);

/// Timer on boost::asio::steady_timer. Not thread-safe (one strand), like
/// the Timer contract. Each wait's handler runs on the timer's executor and
/// is called exactly once: fn(true) when it fired and no cancel()/wait()
/// came after it was armed, fn(false) otherwise (also when the timer is
/// destroyed with a wait pending, as asio does).
class SteadyTimer final : public Timer {
 public:
  explicit SteadyTimer(boost::asio::any_io_executor executor)
      : timer_(std::move(executor)), generation_(std::make_shared<std::atomic<std::uint64_t>>(0)) {}

  ~SteadyTimer() override { cancel(); }

  void wait(Duration after, std::function<void(bool fired)> fn) override {
    // A completion already queued but not yet run is superseded too: the
    // generation check turns it into fn(false), which asio alone would not.
    const std::uint64_t armed = generation_->fetch_add(1, std::memory_order_acq_rel) + 1;
    if (after < Duration::zero()) after = Duration::zero();
    if (after > kLongestWait) after = kLongestWait;
    timer_.expires_after(after);  // aborts a pending wait (its handler sees fn(false))
    timer_.async_wait(
        [generation = generation_, armed, fn = std::move(fn)](const boost::system::error_code& ec) {
          fn(!ec && generation->load(std::memory_order_acquire) == armed);
        });
  }

  void cancel() override {
    generation_->fetch_add(1, std::memory_order_acq_rel);
    timer_.cancel();
  }

 private:
  boost::asio::steady_timer timer_;
  // Shared with pending handlers, which may outlive this object.
  std::shared_ptr<std::atomic<std::uint64_t>> generation_;
};

class SteadyClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point now() const override {
    return std::chrono::steady_clock::now();
  }
  std::chrono::system_clock::time_point wall_now() const override {
    return std::chrono::system_clock::now();
  }
  std::unique_ptr<Timer> make_timer(boost::asio::any_io_executor executor) override {
    return std::make_unique<SteadyTimer>(std::move(executor));
  }
};

}  // namespace

std::unique_ptr<Clock> make_steady_clock() {
  return std::make_unique<SteadyClock>();
}

}  // namespace troupe::core
