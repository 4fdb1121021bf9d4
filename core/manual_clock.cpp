#include "core/manual_clock.h"

#include <atomic>
#include <boost/asio/post.hpp>
#include <map>
#include <optional>
#include <utility>
#include <vector>

namespace troupe::core {

namespace {

using TimePoint = std::chrono::steady_clock::time_point;
using Generation = std::shared_ptr<std::atomic<std::uint64_t>>;

// A due time plus an arming sequence number: orders timers by deadline and,
// among equal deadlines, by the order they were armed.
using TimerKey = std::pair<TimePoint, std::uint64_t>;

/// One armed wait. Holds the callback and what it needs to report, never the
/// Timer, so a Timer may be destroyed at any time.
struct PendingWait {
  boost::asio::any_io_executor executor;
  Generation generation;
  std::uint64_t armed = 0;
  std::function<void(bool)> fn;
};

// Runs fn on its executor: fired only if nothing superseded the wait since
// it came due (mirrors the steady clock's timer).
void post_result(PendingWait wait, bool fired) {
  boost::asio::post(wait.executor, [generation = std::move(wait.generation), armed = wait.armed,
                                    fired, fn = std::move(wait.fn)] {
    fn(fired && generation->load(std::memory_order_acquire) == armed);
  });
}

/// What a ManualClock and its timers share; timers keep it alive, so they
/// may outlive the clock.
struct ClockCore {
  mutable std::mutex mutex;  // guards everything below
  Duration elapsed{0};
  std::uint64_t next_sequence = 0;
  std::map<TimerKey, PendingWait> pending;
};

// Origins are arbitrary but fixed, so runs are reproducible; steady starts
// well away from the epoch so that "now - x" never underflows in callers.
constexpr TimePoint kSteadyOrigin{std::chrono::hours(1000)};
const std::chrono::system_clock::time_point kWallOrigin{std::chrono::seconds(1'700'000'000)};
// Time and deadlines saturate here so that "never" (Duration::max()) cannot
// overflow time_point arithmetic.
constexpr Duration kMaxElapsed = Duration::max() / 4;

/// A Timer of a ManualClock. Not thread-safe (one strand), like every Timer.
class ManualTimer final : public Timer {
 public:
  ManualTimer(std::shared_ptr<ClockCore> state, boost::asio::any_io_executor executor)
      : state_(std::move(state)),
        executor_(std::move(executor)),
        generation_(std::make_shared<std::atomic<std::uint64_t>>(0)) {}

  // Like asio's timer: a pending wait is answered fn(false) on its executor.
  ~ManualTimer() override { cancel(); }

  void wait(Duration after, std::function<void(bool fired)> fn) override {
    const std::uint64_t armed = generation_->fetch_add(1, std::memory_order_acq_rel) + 1;
    PendingWait wait{executor_, generation_, armed, std::move(fn)};
    std::optional<PendingWait> superseded;
    bool due_now = false;
    {
      std::lock_guard lock(state_->mutex);
      superseded = take_locked();
      if (after <= Duration::zero()) {
        due_now = true;
      } else {
        const Duration remaining = kMaxElapsed - state_->elapsed;
        const TimePoint deadline =
            kSteadyOrigin + state_->elapsed + (after < remaining ? after : remaining);
        key_ = TimerKey{deadline, state_->next_sequence++};
        state_->pending.emplace(*key_, std::move(wait));
      }
    }
    if (superseded) post_result(std::move(*superseded), false);
    if (due_now) post_result(std::move(wait), true);
  }

  void cancel() override {
    generation_->fetch_add(1, std::memory_order_acq_rel);
    std::optional<PendingWait> cancelled;
    {
      std::lock_guard lock(state_->mutex);
      cancelled = take_locked();
    }
    if (cancelled) post_result(std::move(*cancelled), false);
  }

 private:
  // Removes this timer's pending wait, if advance() has not taken it yet.
  std::optional<PendingWait> take_locked() {
    if (!key_) return std::nullopt;
    auto node = state_->pending.extract(*key_);
    key_.reset();
    if (node.empty()) return std::nullopt;
    return std::move(node.mapped());
  }

  std::shared_ptr<ClockCore> state_;
  boost::asio::any_io_executor executor_;
  Generation generation_;
  std::optional<TimerKey> key_;  // of the wait this timer last armed
};

}  // namespace

struct ManualClock::State : ClockCore {};

ManualClock::ManualClock() : state_(std::make_shared<State>()) {}

ManualClock::~ManualClock() = default;

std::chrono::steady_clock::time_point ManualClock::now() const {
  std::lock_guard lock(state_->mutex);
  return kSteadyOrigin + state_->elapsed;
}

std::chrono::system_clock::time_point ManualClock::wall_now() const {
  std::lock_guard lock(state_->mutex);
  return kWallOrigin +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(state_->elapsed);
}

std::unique_ptr<Timer> ManualClock::make_timer(boost::asio::any_io_executor executor) {
  return std::make_unique<ManualTimer>(state_, std::move(executor));
}

void ManualClock::advance(Duration by) {
  std::vector<PendingWait> due;
  {
    std::lock_guard lock(state_->mutex);
    if (by > Duration::zero()) {
      state_->elapsed = by < kMaxElapsed - state_->elapsed ? state_->elapsed + by : kMaxElapsed;
    }
    const TimePoint now = kSteadyOrigin + state_->elapsed;
    auto it = state_->pending.begin();
    while (it != state_->pending.end() && it->first.first <= now) {
      due.push_back(std::move(it->second));
      it = state_->pending.erase(it);
    }
  }
  // Posted in deadline order, outside the lock: handlers may re-arm timers.
  for (auto& wait : due) post_result(std::move(wait), true);
}

std::size_t ManualClock::pending_timers() const {
  std::lock_guard lock(state_->mutex);
  return state_->pending.size();
}

}  // namespace troupe::core
