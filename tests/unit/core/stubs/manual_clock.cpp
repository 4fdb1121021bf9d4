#include "core/manual_clock.h"

#include <boost/asio/post.hpp>
#include <map>

namespace troupe::core {

struct StubClockState {
  mutable std::mutex mutex;
  std::chrono::steady_clock::time_point now{std::chrono::hours(1)};
  std::chrono::system_clock::time_point wall{std::chrono::hours(24 * 365 * 50)};
  std::uint64_t next = 1;
  struct Entry {
    boost::asio::any_io_executor executor;
    std::function<void(bool)> fn;
  };
  std::multimap<std::pair<std::chrono::steady_clock::time_point, std::uint64_t>, Entry> timers;
};
struct ManualClock::State : StubClockState {};

namespace {
class ManualTimer final : public Timer {
 public:
  ManualTimer(std::shared_ptr<StubClockState> s, boost::asio::any_io_executor e)
      : state_(std::move(s)), executor_(std::move(e)) {}
  ~ManualTimer() override { cancel(); }
  void wait(Duration after, std::function<void(bool)> fn) override {
    cancel();
    std::lock_guard lock(state_->mutex);
    key_ = {state_->now + after, state_->next++};
    state_->timers.emplace(key_, StubClockState::Entry{executor_, std::move(fn)});
    armed_ = true;
  }
  void cancel() override {
    std::function<void(bool)> fn;
    {
      std::lock_guard lock(state_->mutex);
      if (!armed_) return;
      armed_ = false;
      auto it = state_->timers.find(key_);
      if (it == state_->timers.end()) return;
      fn = std::move(it->second.fn);
      state_->timers.erase(it);
    }
    boost::asio::post(executor_, [fn = std::move(fn)] { fn(false); });
  }

 private:
  std::shared_ptr<StubClockState> state_;
  boost::asio::any_io_executor executor_;
  std::pair<std::chrono::steady_clock::time_point, std::uint64_t> key_;
  bool armed_ = false;
};
}  // namespace

ManualClock::ManualClock() : state_(std::make_shared<State>()) {}
ManualClock::~ManualClock() = default;
std::chrono::steady_clock::time_point ManualClock::now() const {
  std::lock_guard lock(state_->mutex);
  return state_->now;
}
std::chrono::system_clock::time_point ManualClock::wall_now() const {
  std::lock_guard lock(state_->mutex);
  return state_->wall;
}
std::unique_ptr<Timer> ManualClock::make_timer(boost::asio::any_io_executor executor) {
  return std::make_unique<ManualTimer>(state_, std::move(executor));
}
void ManualClock::advance(Duration by) {
  std::vector<State::Entry> due;
  {
    std::lock_guard lock(state_->mutex);
    state_->now += by;
    state_->wall += std::chrono::duration_cast<std::chrono::system_clock::duration>(by);
    while (!state_->timers.empty() && state_->timers.begin()->first.first <= state_->now) {
      due.push_back(std::move(state_->timers.begin()->second));
      state_->timers.erase(state_->timers.begin());
    }
  }
  for (auto& e : due) boost::asio::post(e.executor, [fn = std::move(e.fn)] { fn(true); });
}
std::size_t ManualClock::pending_timers() const {
  std::lock_guard lock(state_->mutex);
  return state_->timers.size();
}

}  // namespace troupe::core
