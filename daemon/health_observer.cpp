#include "daemon/health_observer.h"

#include <spdlog/spdlog.h>

#include <chrono>

namespace troupe::daemon {

/// One troupe's health inputs. Its flags are guarded by the owner's mutex.
class HealthObserver::TroupeHealth final : public core::TroupeObserver {
 public:
  TroupeHealth(HealthObserver& owner, std::string name) : owner_(owner), name_(std::move(name)) {}

  void job_submitted() override {}
  void job_rejected(core::RejectReason) override {}
  void job_completed(core::JobState) override {}
  void attempt_finished(core::FailureClass, core::Duration) override {}
  void queue_wait(core::Duration) override {}
  void mailbox(std::uint64_t, std::uint64_t) override {}
  void actors(std::uint32_t, std::uint32_t) override {}
  void actor_restarted() override {}
  void autoscaled(core::ScaleDirection, std::uint32_t) override {}
  void removed() override { owner_.generation_removed(*this); }

  // What takes a troupe out of service, or brings it back, is also a
  // warning in the log: the operator sees the cause next to the health change.
  void actor_gave_up(std::uint32_t actor, std::string_view cause,
                     core::Duration retry_in) override {
    if (retry_in > core::Duration::zero()) {
      spdlog::warn("troupe '{}': supervisor gave up on actor {} for {} ms: {}", name_, actor,
                   std::chrono::ceil<std::chrono::milliseconds>(retry_in).count(), cause);
    } else {
      spdlog::warn("troupe '{}': {}", name_, cause);
    }
  }
  void actor_recovered(std::uint32_t actor) override {
    spdlog::warn("troupe '{}': actor {} restarted after the supervisor's pause and runs again",
                 name_, actor);
  }
  void illegal_transition(core::JobId job, core::JobState from, core::JobState to) override {
    spdlog::error("troupe '{}': job {}: refused illegal transition {} -> {} (a trouped bug)", name_,
                  job.to_string(), core::to_string(from), core::to_string(to));
  }

  void circuit_changed(core::CircuitState to) override {
    {
      std::lock_guard lock(owner_.mutex_);
      circuit_open_ = to == core::CircuitState::kOpen;
    }
    owner_.changed(*this);
  }
  void degraded_changed(bool degraded) override {
    {
      std::lock_guard lock(owner_.mutex_);
      degraded_ = degraded;
    }
    owner_.changed(*this);
  }

  const std::string& name() const { return name_; }
  bool healthy_locked() const { return !circuit_open_ && !degraded_; }

 private:
  HealthObserver& owner_;
  const std::string name_;
  bool circuit_open_ = false;
  bool degraded_ = false;
};

HealthObserver::HealthObserver() = default;
HealthObserver::~HealthObserver() = default;

void HealthObserver::attach(grpc::HealthCheckServiceInterface& service) {
  std::lock_guard lock(mutex_);
  service_ = &service;
  publish_locked("", overall_locked());
  for (const auto& [name, troupe] : troupes_) publish_locked(name, serving_locked(*troupe));
}

void HealthObserver::detach() {
  std::lock_guard lock(mutex_);
  service_ = nullptr;
}

void HealthObserver::set_draining() {
  std::lock_guard lock(mutex_);
  draining_ = true;
  publish_locked("", false);
  for (const auto& [name, troupe] : troupes_) publish_locked(name, false);
}

bool HealthObserver::store_available(bool up) {
  std::lock_guard lock(mutex_);
  if (store_up_ == up) return false;
  store_up_ = up;
  publish_locked("", overall_locked());
  for (const auto& [name, troupe] : troupes_) publish_locked(name, serving_locked(*troupe));
  return true;
}

bool HealthObserver::serving(std::string_view service) const {
  std::lock_guard lock(mutex_);
  if (service.empty()) return overall_locked();
  auto it = troupes_.find(service);
  return it != troupes_.end() && serving_locked(*it->second);
}

std::shared_ptr<core::TroupeObserver> HealthObserver::troupe_added(std::string_view troupe) {
  auto health = std::make_shared<TroupeHealth>(*this, std::string(troupe));
  std::lock_guard lock(mutex_);
  troupes_.insert_or_assign(std::string(troupe), health);
  publish_locked(health->name(), serving_locked(*health));
  return health;
}

void HealthObserver::troupe_removed(std::string_view troupe) {
  std::lock_guard lock(mutex_);
  auto it = troupes_.find(troupe);
  if (it == troupes_.end()) return;
  publish_locked(it->first, false);
  troupes_.erase(it);
}

void HealthObserver::generation_removed(const TroupeHealth& troupe) {
  std::lock_guard lock(mutex_);
  auto it = troupes_.find(troupe.name());
  if (it == troupes_.end() || it->second.get() != &troupe) return;
  publish_locked(it->first, false);
  troupes_.erase(it);
}

void HealthObserver::changed(const TroupeHealth& troupe) {
  std::lock_guard lock(mutex_);
  auto it = troupes_.find(troupe.name());
  // A removed (or replaced) troupe's late events do not speak for the name.
  if (it == troupes_.end() || it->second.get() != &troupe) return;
  publish_locked(troupe.name(), serving_locked(troupe));
}

bool HealthObserver::overall_locked() const {
  return !draining_ && store_up_;
}

bool HealthObserver::serving_locked(const TroupeHealth& troupe) const {
  return overall_locked() && troupe.healthy_locked();
}

void HealthObserver::publish_locked(const std::string& service, bool serving) {
  if (service_ != nullptr) service_->SetServingStatus(service, serving);
}

}  // namespace troupe::daemon
