#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <vector>

#include "core/backoff.h"
#include "core/options.h"

namespace troupe::core::detail {

/// What the supervisor decided about a crashed actor.
struct SupervisorDecision {
  enum class Action : std::uint8_t {
    kResume,   // keep the handler, take the next job
    kRestart,  // rebuild the handler after `wait`
    kGiveUp,   // restart limit exceeded: pause for `wait`, then rebuild
    kStop,     // strategy stop: the actor stops until a reload
  };
  Action action = Action::kResume;
  Duration wait{};
};

/// The longest pause after a give-up: 32 x backoff_max (5m20s with the
/// default backoff_max of 10s). Queued jobs of a troupe whose every actor
/// was given up on wait at most this long for a restart.
Duration max_give_up_pause(const SupervisorOptions& options);

/// One actor's supervision policy: a throw or a crash restarts the actor's
/// handler after exponential_backoff(initial, max, 2, n, jitter), at most
/// max_restarts within window. Past that the supervisor gives up for a
/// pause of backoff_max x 2^k (k consecutive give-ups, capped at
/// max_give_up_pause) and then restarts, unless the strategy is `stop`. An
/// actor that runs a whole window without a crash starts afresh.
///
/// Pure: state in, decision out; no clock, no timer, no lock. Used on its
/// actor's strand.
class Supervisor {
 public:
  SupervisorDecision on_crash(const SupervisorOptions& options,
                              std::chrono::steady_clock::time_point now, JitterRng& rng);
  /// The handler could not be rebuilt: always a give-up (or a stop).
  SupervisorDecision on_rebuild_failed(const SupervisorOptions& options,
                                       std::chrono::steady_clock::time_point now);
  std::uint32_t give_ups() const { return give_ups_; }

 private:
  SupervisorDecision give_up(const SupervisorOptions& options);

  std::vector<std::chrono::steady_clock::time_point> restarts_;  // within the window
  std::optional<std::chrono::steady_clock::time_point> last_crash_;
  std::uint32_t give_ups_ = 0;  // consecutive
};

}  // namespace troupe::core::detail
