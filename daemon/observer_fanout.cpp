#include "daemon/observer_fanout.h"

#include <utility>

namespace troupe::daemon {
namespace {

class TroupeFanout final : public core::TroupeObserver {
 public:
  TroupeFanout(std::shared_ptr<core::TroupeObserver> first,
               std::shared_ptr<core::TroupeObserver> second)
      : first_(std::move(first)), second_(std::move(second)) {}

  void job_submitted() override {
    first_->job_submitted();
    second_->job_submitted();
  }
  void job_rejected(core::RejectReason reason) override {
    first_->job_rejected(reason);
    second_->job_rejected(reason);
  }
  void job_completed(core::JobState terminal) override {
    first_->job_completed(terminal);
    second_->job_completed(terminal);
  }
  void attempt_finished(core::FailureClass outcome, core::Duration run_time) override {
    first_->attempt_finished(outcome, run_time);
    second_->attempt_finished(outcome, run_time);
  }
  void queue_wait(core::Duration waited) override {
    first_->queue_wait(waited);
    second_->queue_wait(waited);
  }
  void mailbox(std::uint64_t depth, std::uint64_t capacity) override {
    first_->mailbox(depth, capacity);
    second_->mailbox(depth, capacity);
  }
  void actors(std::uint32_t total, std::uint32_t busy) override {
    first_->actors(total, busy);
    second_->actors(total, busy);
  }
  void actor_restarted() override {
    first_->actor_restarted();
    second_->actor_restarted();
  }
  void circuit_changed(core::CircuitState to) override {
    first_->circuit_changed(to);
    second_->circuit_changed(to);
  }
  void degraded_changed(bool degraded) override {
    first_->degraded_changed(degraded);
    second_->degraded_changed(degraded);
  }
  void autoscaled(core::ScaleDirection direction, std::uint32_t actors_now) override {
    first_->autoscaled(direction, actors_now);
    second_->autoscaled(direction, actors_now);
  }
  void actor_gave_up(std::uint32_t actor, std::string_view cause,
                     core::Duration retry_in) override {
    first_->actor_gave_up(actor, cause, retry_in);
    second_->actor_gave_up(actor, cause, retry_in);
  }
  void actor_recovered(std::uint32_t actor) override {
    first_->actor_recovered(actor);
    second_->actor_recovered(actor);
  }
  void illegal_transition(core::JobId job, core::JobState from, core::JobState to) override {
    first_->illegal_transition(job, from, to);
    second_->illegal_transition(job, from, to);
  }
  void removed() override {
    first_->removed();
    second_->removed();
  }

 private:
  std::shared_ptr<core::TroupeObserver> first_;
  std::shared_ptr<core::TroupeObserver> second_;
};

}  // namespace

ObserverFanout::ObserverFanout(core::Observer& first, core::Observer& second)
    : first_(first), second_(second) {}

std::shared_ptr<core::TroupeObserver> ObserverFanout::troupe_added(std::string_view troupe) {
  return std::make_shared<TroupeFanout>(first_.troupe_added(troupe), second_.troupe_added(troupe));
}

void ObserverFanout::unknown_troupe_rejected() {
  first_.unknown_troupe_rejected();
  second_.unknown_troupe_rejected();
}

}  // namespace troupe::daemon
