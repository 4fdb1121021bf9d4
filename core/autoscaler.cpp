#include "core/autoscaler.h"

#include <algorithm>

namespace troupe::core::detail {

AutoscaleDecision decide(const TroupeOptions& o, const AutoscaleLoad& load,
                         std::chrono::steady_clock::time_point now,
                         std::optional<std::chrono::steady_clock::time_point> last_scale) {
  if (o.mode != TroupeMode::kDynamic || load.draining) return {};
  const auto& a = o.autoscale;
  if (last_scale && now - *last_scale < a.cooldown) return {};
  const double live = static_cast<double>(std::max<std::uint32_t>(load.live, 1));
  const double mean = static_cast<double>(load.queued) / live;
  const double busy = static_cast<double>(load.live - std::min(load.idle, load.live)) / live;
  if (mean > a.high_threshold && !load.breaker_open && load.actors < o.max_actors) {
    return {std::min(a.scale_up_step, o.max_actors - load.actors), 0};
  }
  if (mean < a.low_threshold && busy < a.low_busy_ratio && load.actors > o.min_actors) {
    return {0, std::min(a.scale_down_step, load.actors - o.min_actors)};
  }
  return {};
}

}  // namespace troupe::core::detail
