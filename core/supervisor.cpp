#include "core/supervisor.h"

#include <algorithm>

#include "core/backoff.h"

namespace troupe::core::detail {

namespace {
constexpr std::uint32_t kMaxGiveUpDoublings = 5;  // 2^5 = 32 x backoff_max
}  // namespace

Duration max_give_up_pause(const SupervisorOptions& options) {
  return capped_backoff(options.backoff_max, options.backoff_max * (1u << kMaxGiveUpDoublings), 2.0,
                        kMaxGiveUpDoublings);
}

SupervisorDecision Supervisor::on_crash(const SupervisorOptions& options,
                                        std::chrono::steady_clock::time_point now, JitterRng& rng) {
  using Action = SupervisorDecision::Action;
  switch (options.strategy) {
    case SupervisorOptions::Strategy::kResume:
      return {Action::kResume, {}};
    case SupervisorOptions::Strategy::kStop:
      return {Action::kStop, {}};
    case SupervisorOptions::Strategy::kRestart:
      break;
  }
  std::erase_if(restarts_, [&](auto t) { return now - t >= options.window; });
  if (last_crash_ && now - *last_crash_ >= options.window) give_ups_ = 0;  // a calm window
  last_crash_ = now;
  if (restarts_.size() >= options.max_restarts) return give_up(options);
  const auto n = static_cast<std::uint32_t>(restarts_.size());
  restarts_.push_back(now);
  return {Action::kRestart,
          exponential_backoff(options.backoff_initial, options.backoff_max, 2.0, n, true, rng)};
}

SupervisorDecision Supervisor::on_rebuild_failed(const SupervisorOptions& options,
                                                 std::chrono::steady_clock::time_point) {
  if (options.strategy == SupervisorOptions::Strategy::kStop) {
    return {SupervisorDecision::Action::kStop, {}};
  }
  return give_up(options);
}

SupervisorDecision Supervisor::give_up(const SupervisorOptions& options) {
  const Duration pause =
      capped_backoff(options.backoff_max, max_give_up_pause(options), 2.0, give_ups_);
  give_ups_ = std::min(give_ups_ + 1, kMaxGiveUpDoublings + 1);
  // The restarts after the pause count afresh; the give-ups keep escalating
  // until a whole window passes without a crash.
  restarts_.clear();
  return {SupervisorDecision::Action::kGiveUp, pause};
}

}  // namespace troupe::core::detail
