// The auto-scaler's rule, pure: no io_context, no timer.
#include "core/autoscaler.h"

#include <gtest/gtest.h>

namespace troupe::core::detail {
namespace {

using namespace std::chrono_literals;

TroupeOptions dynamic(std::uint32_t min, std::uint32_t max) {
  TroupeOptions o;
  o.mode = TroupeMode::kDynamic;
  o.min_actors = min;
  o.max_actors = max;
  o.autoscale.high_threshold = 4;
  o.autoscale.low_threshold = 0.5;
  o.autoscale.low_busy_ratio = 0.5;
  o.autoscale.scale_up_step = 2;
  o.autoscale.scale_down_step = 1;
  o.autoscale.cooldown = 30s;
  return o;
}

AutoscaleLoad load(std::uint32_t actors, std::uint32_t idle, std::uint64_t queued) {
  return {actors, actors, idle, queued, false, false};
}

const std::chrono::steady_clock::time_point kNow{100s};

TEST(Autoscaler, GrowsAboveTheHighThresholdWithinMax) {
  EXPECT_EQ(decide(dynamic(1, 4), load(2, 0, 20), kNow, std::nullopt), (AutoscaleDecision{2, 0}));
  EXPECT_EQ(decide(dynamic(1, 4), load(3, 0, 30), kNow, std::nullopt), (AutoscaleDecision{1, 0}));
  EXPECT_EQ(decide(dynamic(1, 4), load(4, 0, 99), kNow, std::nullopt), (AutoscaleDecision{}));
}

TEST(Autoscaler, ShrinksWhenQuietAndMostlyIdleNeverBelowMin) {
  EXPECT_EQ(decide(dynamic(1, 4), load(3, 3, 0), kNow, std::nullopt), (AutoscaleDecision{0, 1}));
  EXPECT_EQ(decide(dynamic(1, 4), load(1, 1, 0), kNow, std::nullopt), (AutoscaleDecision{}));
  EXPECT_EQ(decide(dynamic(1, 4), load(3, 0, 0), kNow, std::nullopt), (AutoscaleDecision{}));
}

TEST(Autoscaler, NothingInsideTheCooldownWhileDrainingOrUpWhileTheBreakerIsOpen) {
  EXPECT_EQ(decide(dynamic(1, 4), load(2, 0, 20), kNow, kNow - 10s), (AutoscaleDecision{}));
  EXPECT_EQ(decide(dynamic(1, 4), load(2, 0, 20), kNow, kNow - 30s), (AutoscaleDecision{2, 0}));
  auto draining = load(2, 0, 20);
  draining.draining = true;
  EXPECT_EQ(decide(dynamic(1, 4), draining, kNow, std::nullopt), (AutoscaleDecision{}));
  auto open = load(2, 0, 20);
  open.breaker_open = true;
  EXPECT_EQ(decide(dynamic(1, 4), open, kNow, std::nullopt), (AutoscaleDecision{}));
  auto fixed = dynamic(1, 4);
  fixed.mode = TroupeMode::kFixed;
  EXPECT_EQ(decide(fixed, load(2, 0, 20), kNow, std::nullopt), (AutoscaleDecision{}));
}

}  // namespace
}  // namespace troupe::core::detail
