#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "core/options.h"

namespace troupe::core::detail {

/// What the auto-scaler looks at, sampled by the troupe at each interval.
struct AutoscaleLoad {
  std::uint32_t actors = 0;  // counted against [min, max]: live + stopped by strategy stop
  std::uint32_t live = 0;    // running or idle
  std::uint32_t idle = 0;
  std::uint64_t queued = 0;
  bool breaker_open = false;  // growing would only park more actors
  bool draining = false;
};

struct AutoscaleDecision {
  std::uint32_t add = 0;
  std::uint32_t remove = 0;  // idle actors only: removing one never drops its mailbox
  friend bool operator==(const AutoscaleDecision&, const AutoscaleDecision&) = default;
};

/// The auto-scaler's rule, pure: from the mean queue depth per live actor
/// and the busy ratio, add scale_up_step above high_threshold, remove
/// scale_down_step below low_threshold (and low_busy_ratio), never inside
/// cooldown since `last_scale`, never outside [min, max], never while
/// draining, never up while the breaker is open. The troupe runs it on its
/// control strand every autoscale.interval.
AutoscaleDecision decide(const TroupeOptions& options, const AutoscaleLoad& load,
                         std::chrono::steady_clock::time_point now,
                         std::optional<std::chrono::steady_clock::time_point> last_scale);

}  // namespace troupe::core::detail
