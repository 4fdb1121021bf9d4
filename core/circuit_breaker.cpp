#include "core/circuit_breaker.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <mutex>
#include <utility>
#include <vector>

#include "core/backoff.h"

namespace troupe::core {

namespace {

/// Count-based sliding window of call outcomes: a ring of two bits per call
/// (failed, slow) plus running totals, so recording is O(1).
class OutcomeWindow {
 public:
  explicit OutcomeWindow(std::uint32_t capacity) : ring_(std::max<std::uint32_t>(capacity, 1)) {}

  void add(bool failed, bool slow) {
    if (size_ == ring_.size()) {
      const std::uint8_t evicted = ring_[head_];
      failures_ -= evicted & kFailed ? 1 : 0;
      slow_ -= evicted & kSlow ? 1 : 0;
    } else {
      ++size_;
    }
    ring_[head_] = static_cast<std::uint8_t>((failed ? kFailed : 0) | (slow ? kSlow : 0));
    failures_ += failed ? 1 : 0;
    slow_ += slow ? 1 : 0;
    head_ = (head_ + 1) % ring_.size();
  }

  void clear() { size_ = head_ = failures_ = slow_ = 0; }

  /// Keeps the most recent outcomes that fit the new capacity.
  void resize(std::uint32_t capacity) {
    OutcomeWindow next(capacity);
    const std::size_t keep = std::min(size_, next.ring_.size());
    for (std::size_t i = size_ - keep; i < size_; ++i) {
      const std::uint8_t bits = ring_[(head_ + ring_.size() - size_ + i) % ring_.size()];
      next.add((bits & kFailed) != 0, (bits & kSlow) != 0);
    }
    *this = std::move(next);
  }

  std::size_t size() const { return size_; }
  std::size_t capacity() const { return ring_.size(); }
  std::size_t failures() const { return failures_; }
  std::size_t slow() const { return slow_; }

 private:
  static constexpr std::uint8_t kFailed = 1;
  static constexpr std::uint8_t kSlow = 2;
  std::vector<std::uint8_t> ring_;
  std::size_t head_ = 0;  // next slot to write
  std::size_t size_ = 0;
  std::size_t failures_ = 0;
  std::size_t slow_ = 0;
};

}  // namespace

/// The breaker's shared state. Timer handlers and posted callbacks hold a
/// weak_ptr to it, so they do nothing once the breaker is gone.
///
/// Ownership of the state machine: every transition and every result is
/// applied under `mutex_`, whose critical sections are a handful of
/// arithmetic operations and never call user code; user callbacks
/// (on_transition, when_not_open) and timer expiries run on `strand_`, and
/// callbacks are posted there under the mutex, so they run in transition
/// order. A per-result post to the strand would cost an allocation and a
/// queue hand-off per job on the hottest path; a short lock does not.
struct CircuitBreaker::Impl : std::enable_shared_from_this<CircuitBreaker::Impl> {
  Impl(CircuitBreakerOptions options, boost::asio::any_io_executor executor, Clock& clock,
       std::function<void(CircuitState)> on_transition)
      : strand_(boost::asio::make_strand(std::move(executor))),
        clock_(clock),
        on_transition_(std::move(on_transition)),
        options_(std::move(options)),
        window_(options_.window_size),
        open_timer_(clock_.make_timer(strand_)),
        half_open_timer_(clock_.make_timer(strand_)) {
    enabled_.store(options_.enabled, std::memory_order_relaxed);
  }

  bool try_acquire() {
    if (!enabled_.load(std::memory_order_acquire)) return true;
    switch (state_.load(std::memory_order_acquire)) {
      case CircuitState::kClosed:
        return true;
      case CircuitState::kOpen:
        return false;
      case CircuitState::kHalfOpen:
        break;
    }
    std::lock_guard lock(mutex_);
    if (!options_.enabled) return true;
    const CircuitState now_state = state_.load(std::memory_order_relaxed);
    if (now_state != CircuitState::kHalfOpen) return now_state == CircuitState::kClosed;
    if (permits_in_flight_ >= options_.half_open_max_calls) return false;
    ++permits_in_flight_;
    return true;
  }

  void record(bool breaker_failure, Duration duration) {
    if (!enabled_.load(std::memory_order_acquire)) return;
    std::lock_guard lock(mutex_);
    if (!options_.enabled) return;
    const bool slow =
        options_.slow_call_duration > Duration::zero() && duration >= options_.slow_call_duration;
    switch (state_.load(std::memory_order_relaxed)) {
      case CircuitState::kClosed:
        record_closed_locked(breaker_failure, slow);
        return;
      case CircuitState::kHalfOpen:
        record_half_open_locked(breaker_failure, slow);
        return;
      case CircuitState::kOpen:
        // A call admitted before the breaker opened: the verdict is in.
        return;
    }
  }

  void release() {
    if (!enabled_.load(std::memory_order_acquire)) return;
    if (state_.load(std::memory_order_acquire) != CircuitState::kHalfOpen) return;
    std::lock_guard lock(mutex_);
    if (state_.load(std::memory_order_relaxed) == CircuitState::kHalfOpen &&
        permits_in_flight_ > 0) {
      --permits_in_flight_;
    }
  }

  void when_not_open(std::function<void()> fn) {
    std::lock_guard lock(mutex_);
    if (options_.enabled && state_.load(std::memory_order_relaxed) == CircuitState::kOpen) {
      waiting_for_not_open_.push_back(std::move(fn));
      return;
    }
    post_waiter_locked(std::move(fn));
  }

  void update(CircuitBreakerOptions options) {
    std::lock_guard lock(mutex_);
    const bool window_changed = options.window_size != options_.window_size;
    options_ = std::move(options);
    enabled_.store(options_.enabled, std::memory_order_release);
    if (window_changed) window_.resize(options_.window_size);
    if (!options_.enabled) {
      // A disabled breaker is closed; those waiting for it may go.
      if (state_.load(std::memory_order_relaxed) != CircuitState::kClosed) {
        transition_locked(CircuitState::kClosed);
      }
      return;
    }
    // Rates are judged on the next result; a closed breaker does not open
    // on a reload alone.
  }

  Duration time_until_half_open() const {
    if (state_.load(std::memory_order_acquire) != CircuitState::kOpen) return Duration::zero();
    const std::chrono::steady_clock::time_point until(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            Duration(open_until_.load(std::memory_order_acquire))));
    const auto now = clock_.now();
    return until > now ? std::chrono::duration_cast<Duration>(until - now) : Duration::zero();
  }

  CircuitState state() const noexcept { return state_.load(std::memory_order_acquire); }

  void transition_to(CircuitState to) {
    std::lock_guard lock(mutex_);
    if (!options_.enabled || state_.load(std::memory_order_relaxed) == to) return;
    transition_locked(to);
  }

  void shut_down() {
    std::lock_guard lock(mutex_);
    ++generation_;
    open_timer_->cancel();
    half_open_timer_->cancel();
    waiting_for_not_open_.clear();
  }

 private:
  void record_closed_locked(bool failed, bool slow) {
    window_.add(failed, slow);
    consecutive_failures_ = failed ? consecutive_failures_ + 1 : 0;
    if (options_.consecutive_failures > 0 &&
        consecutive_failures_ >= options_.consecutive_failures) {
      transition_locked(CircuitState::kOpen);
      return;
    }
    const std::size_t judged_from =
        std::max<std::size_t>(1, std::min<std::size_t>(options_.minimum_calls, window_.capacity()));
    if (window_.size() < judged_from) return;
    const double calls = static_cast<double>(window_.size());
    const double failure_rate = static_cast<double>(window_.failures()) / calls;
    const double slow_rate = static_cast<double>(window_.slow()) / calls;
    if (failure_rate >= options_.failure_rate_threshold ||
        slow_rate >= options_.slow_call_rate_threshold) {
      transition_locked(CircuitState::kOpen);
    }
  }

  void record_half_open_locked(bool failed, bool slow) {
    if (permits_in_flight_ > 0) --permits_in_flight_;
    if (failed) {
      transition_locked(CircuitState::kOpen);
      return;
    }
    ++probe_results_;
    probe_slow_ += slow ? 1 : 0;
    const std::uint32_t needed = std::max<std::uint32_t>(options_.half_open_max_calls, 1);
    if (probe_results_ < needed) return;
    const double slow_rate = static_cast<double>(probe_slow_) / probe_results_;
    transition_locked(slow_rate >= options_.slow_call_rate_threshold ? CircuitState::kOpen
                                                                     : CircuitState::kClosed);
  }

  // Every transition passes here: it bumps the generation (so timers armed
  // before it do nothing), resets what the new state counts, arms its timer
  // and posts on_transition.
  void transition_locked(CircuitState to) {
    const std::uint64_t generation = ++generation_;
    state_.store(to, std::memory_order_release);
    open_timer_->cancel();
    half_open_timer_->cancel();
    permits_in_flight_ = 0;
    probe_results_ = 0;
    probe_slow_ = 0;
    consecutive_failures_ = 0;
    window_.clear();
    std::weak_ptr<Impl> weak = weak_from_this();
    switch (to) {
      case CircuitState::kOpen: {
        const Duration timeout = next_open_timeout_locked();
        ++consecutive_opens_;
        open_until_.store(
            std::chrono::duration_cast<Duration>((clock_.now() + timeout).time_since_epoch())
                .count(),
            std::memory_order_release);
        open_timer_->wait(timeout, [weak, generation](bool fired) {
          if (auto self = weak.lock(); self && fired) self->on_open_timeout(generation);
        });
        break;
      }
      case CircuitState::kHalfOpen:
        if (options_.max_wait_in_half_open > Duration::zero()) {
          half_open_timer_->wait(options_.max_wait_in_half_open, [weak, generation](bool fired) {
            if (auto self = weak.lock(); self && fired) self->on_half_open_expired(generation);
          });
        }
        release_waiters_locked();
        break;
      case CircuitState::kClosed:
        consecutive_opens_ = 0;
        release_waiters_locked();
        break;
    }
    if (on_transition_) {
      boost::asio::post(strand_, [weak, to] {
        if (auto self = weak.lock()) self->on_transition_(to);
      });
    }
  }

  // open_timeout * multiplier^(consecutive reopens), capped.
  Duration next_open_timeout_locked() {
    return capped_backoff(options_.open_timeout,
                          std::max(options_.max_open_timeout, options_.open_timeout),
                          options_.open_timeout_multiplier, consecutive_opens_);
  }

  void release_waiters_locked() {
    for (auto& fn : waiting_for_not_open_) post_waiter_locked(std::move(fn));
    waiting_for_not_open_.clear();
  }

  // Runs fn on the strand unless the breaker is destroyed first: its owner
  // (and what fn refers to) may be gone by then.
  void post_waiter_locked(std::function<void()> fn) {
    boost::asio::post(strand_, [weak = weak_from_this(), fn = std::move(fn)] {
      if (auto self = weak.lock()) fn();
    });
  }

  void on_open_timeout(std::uint64_t armed_in) {
    std::lock_guard lock(mutex_);
    if (armed_in != generation_ || state_.load(std::memory_order_relaxed) != CircuitState::kOpen) {
      return;
    }
    transition_locked(CircuitState::kHalfOpen);
  }

  void on_half_open_expired(std::uint64_t armed_in) {
    std::lock_guard lock(mutex_);
    if (armed_in != generation_ ||
        state_.load(std::memory_order_relaxed) != CircuitState::kHalfOpen) {
      return;
    }
    transition_locked(CircuitState::kOpen);  // the probes did not answer in time
  }

  boost::asio::strand<boost::asio::any_io_executor> strand_;
  Clock& clock_;
  const std::function<void(CircuitState)> on_transition_;
  std::atomic<CircuitState> state_{CircuitState::kClosed};
  std::atomic<bool> enabled_{true};
  std::atomic<Duration::rep> open_until_{0};  // steady time the open state ends

  mutable std::mutex mutex_;  // guards everything below (the state machine)
  CircuitBreakerOptions options_;
  OutcomeWindow window_;
  std::uint32_t consecutive_failures_ = 0;
  std::uint32_t consecutive_opens_ = 0;  // since the last close
  std::uint32_t permits_in_flight_ = 0;  // half-open permits not yet answered
  std::uint32_t probe_results_ = 0;      // successful half-open results
  std::uint32_t probe_slow_ = 0;
  std::uint64_t generation_ = 0;
  // Timers are not thread-safe; they are only touched under mutex_, which
  // serialises them as a strand would. Their handlers run on strand_.
  std::unique_ptr<Timer> open_timer_;
  std::unique_ptr<Timer> half_open_timer_;
  std::vector<std::function<void()>> waiting_for_not_open_;
};

CircuitBreaker::CircuitBreaker(CircuitBreakerOptions options, boost::asio::any_io_executor executor,
                               Clock& clock, std::function<void(CircuitState)> on_transition)
    : impl_(std::make_shared<Impl>(std::move(options), std::move(executor), clock,
                                   std::move(on_transition))) {}

CircuitBreaker::~CircuitBreaker() {
  impl_->shut_down();
}

CircuitState CircuitBreaker::state() const noexcept {
  return impl_->state();
}

bool CircuitBreaker::try_acquire() {
  return impl_->try_acquire();
}

void CircuitBreaker::record(bool breaker_failure, Duration duration) {
  impl_->record(breaker_failure, duration);
}

void CircuitBreaker::release() {
  impl_->release();
}

void CircuitBreaker::when_not_open(std::function<void()> fn) {
  impl_->when_not_open(std::move(fn));
}

void CircuitBreaker::update(CircuitBreakerOptions options) {
  impl_->update(std::move(options));
}

Duration CircuitBreaker::time_until_half_open() const {
  return impl_->time_until_half_open();
}

void CircuitBreaker::transition_to(CircuitState to) {
  impl_->transition_to(to);
}

}  // namespace troupe::core
