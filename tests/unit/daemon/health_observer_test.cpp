#include "daemon/health_observer.h"

#include <gtest/gtest.h>

#include <map>
#include <mutex>

namespace troupe::daemon {
namespace {

/// Records what would be served by grpc.health.v1.
class RecordingHealthService final : public grpc::HealthCheckServiceInterface {
 public:
  void SetServingStatus(const std::string& service, bool serving) override {
    std::lock_guard lock(mutex_);
    status_[service] = serving;
  }
  void SetServingStatus(bool serving) override {
    std::lock_guard lock(mutex_);
    for (auto& [name, s] : status_) s = serving;
  }
  std::optional<bool> status(const std::string& service) {
    std::lock_guard lock(mutex_);
    auto it = status_.find(service);
    if (it == status_.end()) return std::nullopt;
    return it->second;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, bool> status_;
};

TEST(HealthObserver, PublishesOverallAndPerTroupeOnAttach) {
  HealthObserver health;
  auto a = health.troupe_added("a");
  RecordingHealthService service;
  health.attach(service);
  EXPECT_EQ(service.status(""), true);
  EXPECT_EQ(service.status("a"), true);
  auto b = health.troupe_added("b");  // after attach: published at once
  EXPECT_EQ(service.status("b"), true);
}

TEST(HealthObserver, AnUnreachableStoreMeansNotServingUntilItIsBack) {
  HealthObserver health;
  RecordingHealthService service;
  health.attach(service);
  auto a = health.troupe_added("a");
  auto b = health.troupe_added("b");
  b->circuit_changed(core::CircuitState::kOpen);
  EXPECT_TRUE(health.store_available(false));
  EXPECT_FALSE(health.store_available(false));  // no change: the caller logs nothing
  EXPECT_EQ(service.status(""), false);
  EXPECT_EQ(service.status("a"), false);
  EXPECT_EQ(service.status("b"), false);
  EXPECT_FALSE(health.serving(""));
  auto c = health.troupe_added("c");  // added while down: not serving either
  EXPECT_EQ(service.status("c"), false);
  EXPECT_TRUE(health.store_available(true));
  EXPECT_FALSE(health.store_available(true));
  EXPECT_EQ(service.status(""), true);
  EXPECT_EQ(service.status("a"), true);
  EXPECT_EQ(service.status("b"), false);  // its breaker is still open
  EXPECT_EQ(service.status("c"), true);
  // A drain is for good: the store coming back does not undo it.
  health.store_available(false);
  health.set_draining();
  health.store_available(true);
  EXPECT_EQ(service.status(""), false);
  EXPECT_EQ(service.status("a"), false);
}

TEST(HealthObserver, OpenBreakerOrDegradedMeansNotServing) {
  HealthObserver health;
  RecordingHealthService service;
  health.attach(service);
  auto t = health.troupe_added("t");
  t->circuit_changed(core::CircuitState::kOpen);
  EXPECT_EQ(service.status("t"), false);
  EXPECT_EQ(service.status(""), true);  // one troupe does not take the daemon down
  t->circuit_changed(core::CircuitState::kHalfOpen);
  EXPECT_EQ(service.status("t"), true);
  t->degraded_changed(true);
  EXPECT_EQ(service.status("t"), false);
  t->circuit_changed(core::CircuitState::kClosed);
  EXPECT_EQ(service.status("t"), false);  // still degraded
  t->degraded_changed(false);
  EXPECT_EQ(service.status("t"), true);
}

TEST(HealthObserver, DrainingIsNotServingForGood) {
  HealthObserver health;
  RecordingHealthService service;
  health.attach(service);
  auto t = health.troupe_added("t");
  health.set_draining();
  EXPECT_EQ(service.status(""), false);
  EXPECT_EQ(service.status("t"), false);
  t->circuit_changed(core::CircuitState::kClosed);
  EXPECT_EQ(service.status("t"), false);
  EXPECT_FALSE(health.serving(""));
}

TEST(HealthObserver, RemovedTroupeIsNotServingAndItsLateEventsAreIgnored) {
  HealthObserver health;
  RecordingHealthService service;
  health.attach(service);
  auto old = health.troupe_added("t");
  health.troupe_removed("t");
  EXPECT_EQ(service.status("t"), false);
  auto fresh = health.troupe_added("t");
  EXPECT_EQ(service.status("t"), true);
  old->circuit_changed(core::CircuitState::kOpen);  // the removed instance
  EXPECT_EQ(service.status("t"), true);
  EXPECT_TRUE(health.serving("t"));
  EXPECT_FALSE(health.serving("unknown"));
}

TEST(HealthObserver, AnOldGenerationGoingDoesNotTouchTheNewOne) {
  HealthObserver health;
  RecordingHealthService service;
  health.attach(service);
  auto old = health.troupe_added("t");
  health.troupe_removed("t");             // a reload removes t; it drains
  auto fresh = health.troupe_added("t");  // the next reload adds it back
  old->removed();                         // the old generation has drained
  EXPECT_EQ(service.status("t"), true);
  EXPECT_TRUE(health.serving("t"));
  fresh->removed();
  EXPECT_EQ(service.status("t"), false);
  EXPECT_FALSE(health.serving("t"));
}

TEST(HealthObserver, DetachedObserverKeepsStateWithoutPublishing) {
  HealthObserver health;
  RecordingHealthService service;
  health.attach(service);
  health.detach();
  auto t = health.troupe_added("t");
  EXPECT_FALSE(service.status("t").has_value());
  EXPECT_TRUE(health.serving("t"));
}

}  // namespace
}  // namespace troupe::daemon
