#include "core/clock.h"

#include <boost/asio/steady_timer.hpp>

namespace troupe::core {
namespace {
class SteadyTimer final : public Timer {
 public:
  explicit SteadyTimer(boost::asio::any_io_executor e) : timer_(std::move(e)) {}
  void wait(Duration after, std::function<void(bool)> fn) override {
    timer_.expires_after(after);
    timer_.async_wait([fn = std::move(fn)](boost::system::error_code ec) { fn(!ec); });
  }
  void cancel() override { timer_.cancel(); }

 private:
  boost::asio::steady_timer timer_;
};
class SteadyClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point now() const override {
    return std::chrono::steady_clock::now();
  }
  std::chrono::system_clock::time_point wall_now() const override {
    return std::chrono::system_clock::now();
  }
  std::unique_ptr<Timer> make_timer(boost::asio::any_io_executor e) override {
    return std::make_unique<SteadyTimer>(std::move(e));
  }
};
}  // namespace
std::unique_ptr<Clock> make_steady_clock() {
  return std::make_unique<SteadyClock>();
}
}  // namespace troupe::core
