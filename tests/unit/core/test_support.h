#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/manual_clock.h"
#include "core/observer.h"
#include "core/options.h"
#include "core/runtime.h"
#include "handlers/builtin/builtin_options.h"

namespace troupe::core::testing {

/// Records every observer event, thread-safely.
class RecordingTroupeObserver final : public TroupeObserver {
 public:
  void job_submitted() override { ++submitted; }
  void job_rejected(RejectReason r) override {
    {
      std::lock_guard lock(mutex);
      rejected.push_back(r);
    }
    if (throw_on_reject) throw std::runtime_error("observer configured to throw");
  }
  void job_completed(JobState s) override {
    std::lock_guard lock(mutex);
    completed.push_back(s);
  }
  void attempt_finished(FailureClass c, Duration) override {
    std::lock_guard lock(mutex);
    attempts.push_back(c);
  }
  void queue_wait(Duration) override { ++queue_waits; }
  void mailbox(std::uint64_t depth, std::uint64_t capacity) override {
    last_depth = depth;
    last_capacity = capacity;
  }
  void actors(std::uint32_t total, std::uint32_t busy) override {
    last_actors = total;
    last_busy = busy;
  }
  void actor_restarted() override { ++restarts; }
  void circuit_changed(CircuitState s) override {
    std::lock_guard lock(mutex);
    circuit.push_back(s);
  }
  void degraded_changed(bool d) override {
    std::lock_guard lock(mutex);
    degraded.push_back(d);
  }
  void autoscaled(ScaleDirection d, std::uint32_t now) override {
    std::lock_guard lock(mutex);
    scaled.emplace_back(d, now);
  }
  void removed() override {
    was_removed = true;
    if (on_removed) on_removed();
  }

  void actor_gave_up(std::uint32_t actor, std::string_view cause, Duration retry_in) override {
    std::lock_guard lock(mutex);
    gave_up.push_back({actor, std::string(cause), retry_in});
  }
  void actor_recovered(std::uint32_t actor) override {
    std::lock_guard lock(mutex);
    recovered.push_back(actor);
  }
  void illegal_transition(JobId, JobState from, JobState to) override {
    std::lock_guard lock(mutex);
    illegal.emplace_back(from, to);
  }

  struct GaveUp {
    std::uint32_t actor;
    std::string cause;
    Duration retry_in;
  };
  std::function<void()> on_removed;  // set before the troupe uses it
  std::mutex mutex;
  std::atomic<bool> was_removed{false};
  std::atomic<bool> throw_on_reject{false};  // breaks the observer's contract, on purpose
  std::atomic<int> submitted{0};
  std::atomic<int> queue_waits{0};
  std::atomic<int> restarts{0};
  std::atomic<std::uint64_t> last_depth{0};
  std::atomic<std::uint64_t> last_capacity{0};
  std::atomic<std::uint32_t> last_actors{0};
  std::atomic<std::uint32_t> last_busy{0};
  std::vector<RejectReason> rejected;
  std::vector<JobState> completed;
  std::vector<FailureClass> attempts;
  std::vector<CircuitState> circuit;
  std::vector<bool> degraded;
  std::vector<std::pair<ScaleDirection, std::uint32_t>> scaled;
  std::vector<GaveUp> gave_up;
  std::vector<std::uint32_t> recovered;
  std::vector<std::pair<JobState, JobState>> illegal;
};

class RecordingObserver final : public Observer {
 public:
  /// A new generation each time; of() returns the newest.
  std::shared_ptr<TroupeObserver> troupe_added(std::string_view name) override {
    auto t = std::make_shared<RecordingTroupeObserver>();
    t->on_removed = [this, n = std::string(name)] {
      std::lock_guard lock(mutex_);
      removed.push_back(n);
    };
    std::lock_guard lock(mutex_);
    troupes_[std::string(name)] = t;
    return t;
  }
  void unknown_troupe_rejected() override { ++unknown_troupe; }
  RecordingTroupeObserver& of(const std::string& name) { return *latest(name); }
  std::shared_ptr<RecordingTroupeObserver> latest(const std::string& name) {
    std::lock_guard lock(mutex_);
    return troupes_.at(name);
  }
  std::vector<std::string> removed;
  std::atomic<int> unknown_troupe{0};

 private:
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<RecordingTroupeObserver>> troupes_;
};

inline TroupeOptions builtin_troupe(std::string name, BuiltinHandlerOptions::Kind kind,
                                    std::uint32_t actors = 1) {
  TroupeOptions o;
  o.name = std::move(name);
  o.mode = TroupeMode::kFixed;
  o.max_actors = actors;
  o.min_actors = actors;
  o.initial_actors = actors;
  o.mailbox_capacity = 16;
  o.circuit_breaker.enabled = false;
  o.retry.max_attempts = 1;
  o.retry.jitter = false;
  o.supervisor.backoff_initial = std::chrono::milliseconds(100);
  BuiltinHandlerOptions b;
  b.kind = kind;
  o.handler = b;
  return o;
}

/// Edits a troupe's builtin handler options: `builtin(o)->fail_every = 2;`
/// (handler options are immutable values: the edit is stored back into `o`
/// at the end of the statement).
class BuiltinEdit {
 public:
  explicit BuiltinEdit(TroupeOptions& o)
      : troupe_(o), edited_(*o.handler.get_if<BuiltinHandlerOptions>()) {}
  ~BuiltinEdit() { troupe_.handler = edited_; }
  BuiltinEdit(const BuiltinEdit&) = delete;
  BuiltinEdit& operator=(const BuiltinEdit&) = delete;
  BuiltinHandlerOptions* operator->() { return &edited_; }

 private:
  TroupeOptions& troupe_;
  BuiltinHandlerOptions edited_;
};

inline BuiltinEdit builtin(TroupeOptions& o) {
  return BuiltinEdit(o);
}

}  // namespace troupe::core::testing
