#include "core/observer.h"

namespace troupe::core {

namespace {

class NullTroupeObserver final : public TroupeObserver {
 public:
  void job_submitted() override {}
  void job_rejected(RejectReason) override {}
  void job_completed(JobState) override {}
  void attempt_finished(FailureClass, Duration) override {}
  void queue_wait(Duration) override {}
  void mailbox(std::uint64_t, std::uint64_t) override {}
  void actors(std::uint32_t, std::uint32_t) override {}
  void actor_restarted() override {}
  void circuit_changed(CircuitState) override {}
  void degraded_changed(bool) override {}
  void autoscaled(ScaleDirection, std::uint32_t) override {}
  void actor_gave_up(std::uint32_t, std::string_view, Duration) override {}
  void actor_recovered(std::uint32_t) override {}
  void illegal_transition(JobId, JobState, JobState) override {}
  void removed() override {}
};

class NullObserver final : public Observer {
 public:
  std::shared_ptr<TroupeObserver> troupe_added(std::string_view) override { return troupe_; }
  void unknown_troupe_rejected() override {}

 private:
  std::shared_ptr<TroupeObserver> troupe_ = std::make_shared<NullTroupeObserver>();
};

}  // namespace

Observer& null_observer() {
  static NullObserver observer;
  return observer;
}

}  // namespace troupe::core
