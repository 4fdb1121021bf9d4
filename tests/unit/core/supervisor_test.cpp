// The supervisor's policy, pure: decisions from crash times.
#include "core/supervisor.h"

#include <gtest/gtest.h>

namespace troupe::core::detail {
namespace {

using namespace std::chrono_literals;
using Action = SupervisorDecision::Action;

SupervisorOptions restart(std::uint32_t max_restarts) {
  SupervisorOptions o;
  o.max_restarts = max_restarts;
  o.window = 60s;
  o.backoff_initial = 100ms;
  o.backoff_max = 10s;
  return o;
}

TEST(Supervisor, RestartsWithBackoffThenGivesUpWithAnEscalatingCappedPause) {
  Supervisor s;
  JitterRng rng(1);
  std::chrono::steady_clock::time_point t{1000s};
  const auto o = restart(2);
  for (int i = 0; i < 2; ++i) {
    auto d = s.on_crash(o, t, rng);
    EXPECT_EQ(d.action, Action::kRestart);
    EXPECT_LE(d.wait, 100ms * (1 << i));
    t += 1s;
  }
  Duration previous{};
  for (int i = 0; i < 8; ++i) {
    // Each give-up clears the window: two restarts, then the next give-up.
    auto d = s.on_crash(o, t, rng);
    EXPECT_EQ(d.action, Action::kGiveUp) << i;
    EXPECT_GE(d.wait, previous);
    EXPECT_LE(d.wait, max_give_up_pause(o));
    previous = d.wait;
    EXPECT_EQ(s.on_crash(o, t, rng).action, Action::kRestart);
    EXPECT_EQ(s.on_crash(o, t, rng).action, Action::kRestart);
    t += 1s;
  }
  EXPECT_EQ(previous, max_give_up_pause(o));
  EXPECT_EQ(max_give_up_pause(o), 320s);
}

TEST(Supervisor, AWholeWindowWithoutACrashStartsAfresh) {
  Supervisor s;
  JitterRng rng(1);
  std::chrono::steady_clock::time_point t{1000s};
  const auto o = restart(1);
  EXPECT_EQ(s.on_crash(o, t, rng).action, Action::kRestart);
  EXPECT_EQ(s.on_crash(o, t, rng).action, Action::kGiveUp);
  EXPECT_EQ(s.give_ups(), 1u);
  t += 61s;
  EXPECT_EQ(s.on_crash(o, t, rng).action, Action::kRestart);
  EXPECT_EQ(s.give_ups(), 0u);
}

TEST(Supervisor, StopAndResumeAreTakenAsConfigured) {
  Supervisor s;
  JitterRng rng(1);
  auto o = restart(5);
  o.strategy = SupervisorOptions::Strategy::kStop;
  EXPECT_EQ(s.on_crash(o, {}, rng).action, Action::kStop);
  EXPECT_EQ(s.on_rebuild_failed(o, {}).action, Action::kStop);
  o.strategy = SupervisorOptions::Strategy::kResume;
  EXPECT_EQ(s.on_crash(o, {}, rng).action, Action::kResume);
  o.strategy = SupervisorOptions::Strategy::kRestart;
  EXPECT_EQ(s.on_rebuild_failed(o, {}).action, Action::kGiveUp);
}

}  // namespace
}  // namespace troupe::core::detail
