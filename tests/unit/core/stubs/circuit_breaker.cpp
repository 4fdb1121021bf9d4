// A minimal stand-in: consecutive-failure rule only, open_timeout, then
// half-open with half_open_max_calls probes.
#include "core/circuit_breaker.h"

#include <boost/asio/post.hpp>
#include <mutex>
#include <vector>

namespace troupe::core {

struct CircuitBreaker::Impl : std::enable_shared_from_this<CircuitBreaker::Impl> {
  Impl(CircuitBreakerOptions o, boost::asio::any_io_executor e, Clock& c,
       std::function<void(CircuitState)> t)
      : options(std::move(o)), executor(std::move(e)), clock(c), on_transition(std::move(t)) {}
  mutable std::mutex mutex;
  CircuitBreakerOptions options;
  boost::asio::any_io_executor executor;
  Clock& clock;
  std::function<void(CircuitState)> on_transition;
  std::atomic<CircuitState> state{CircuitState::kClosed};
  std::uint32_t consecutive = 0;
  std::uint32_t permits = 0;
  std::chrono::steady_clock::time_point opened_at{};
  std::uint64_t generation = 0;
  std::unique_ptr<Timer> timer;
  std::vector<std::function<void()>> waiters;

  void transition(CircuitState to) {  // mutex held
    state = to;
    ++generation;
    permits = 0;
    consecutive = 0;
    auto self = shared_from_this();
    boost::asio::post(executor, [self, to] { self->on_transition(to); });
    if (to == CircuitState::kOpen) {
      opened_at = clock.now();
      if (!timer) timer = clock.make_timer(executor);
      const auto gen = generation;
      timer->wait(options.open_timeout, [w = weak_from_this(), gen](bool fired) {
        auto s = w.lock();
        if (!fired || !s) return;
        std::lock_guard lock(s->mutex);
        if (s->generation != gen) return;
        s->transition(CircuitState::kHalfOpen);
      });
    } else {
      for (auto& fn : waiters) boost::asio::post(executor, std::move(fn));
      waiters.clear();
    }
  }
};

CircuitBreaker::CircuitBreaker(CircuitBreakerOptions options, boost::asio::any_io_executor executor,
                               Clock& clock, std::function<void(CircuitState)> on_transition)
    : impl_(std::make_shared<Impl>(std::move(options), std::move(executor), clock,
                                   std::move(on_transition))) {}
CircuitBreaker::~CircuitBreaker() {
  std::lock_guard lock(impl_->mutex);
  if (impl_->timer) impl_->timer->cancel();
}
CircuitState CircuitBreaker::state() const noexcept {
  return impl_->state.load();
}
bool CircuitBreaker::try_acquire() {
  std::lock_guard lock(impl_->mutex);
  if (!impl_->options.enabled) return true;
  switch (impl_->state.load()) {
    case CircuitState::kClosed:
      return true;
    case CircuitState::kOpen:
      return false;
    case CircuitState::kHalfOpen:
      if (impl_->permits >= impl_->options.half_open_max_calls) return false;
      ++impl_->permits;
      return true;
  }
  return false;
}
void CircuitBreaker::record(bool failure, Duration) {
  std::lock_guard lock(impl_->mutex);
  if (!impl_->options.enabled) return;
  auto s = impl_->state.load();
  if (s == CircuitState::kHalfOpen) {
    if (impl_->permits > 0) --impl_->permits;
    impl_->transition(failure ? CircuitState::kOpen : CircuitState::kClosed);
    return;
  }
  if (s != CircuitState::kClosed) return;
  impl_->consecutive = failure ? impl_->consecutive + 1 : 0;
  if (impl_->options.consecutive_failures > 0 &&
      impl_->consecutive >= impl_->options.consecutive_failures) {
    impl_->transition(CircuitState::kOpen);
  }
}
void CircuitBreaker::release() {
  std::lock_guard lock(impl_->mutex);
  if (impl_->state.load() == CircuitState::kHalfOpen && impl_->permits > 0) --impl_->permits;
}
void CircuitBreaker::when_not_open(std::function<void()> fn) {
  std::lock_guard lock(impl_->mutex);
  if (impl_->state.load() != CircuitState::kOpen) {
    boost::asio::post(impl_->executor, std::move(fn));
    return;
  }
  impl_->waiters.push_back(std::move(fn));
}
void CircuitBreaker::update(CircuitBreakerOptions options) {
  std::lock_guard lock(impl_->mutex);
  impl_->options = std::move(options);
}
Duration CircuitBreaker::time_until_half_open() const {
  std::lock_guard lock(impl_->mutex);
  if (impl_->state.load() != CircuitState::kOpen) return Duration::zero();
  return std::max(Duration::zero(),
                  impl_->opened_at + impl_->options.open_timeout - impl_->clock.now());
}

}  // namespace troupe::core
