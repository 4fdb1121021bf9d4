#pragma once

/// How observability enters core: daemon/ implements these with
/// prometheus-cpp; core calls them. Core never depends on a metrics library.

#include <cstdint>
#include <memory>
#include <string_view>

#include "core/job.h"
#include "core/options.h"

namespace troupe::core {

enum class CircuitState : std::uint8_t { kClosed, kOpen, kHalfOpen };
enum class ScaleDirection : std::uint8_t { kUp, kDown };
std::string_view to_string(CircuitState s);
std::string_view to_string(ScaleDirection d);

/// Events of one generation of a troupe: a troupe removed by a reload and
/// added again under the same name is a new generation with its own
/// observer, while the old one still drains. Called concurrently from any
/// core thread, on hot paths: implementations must be thread-safe and must
/// not block.
class TroupeObserver {
 public:
  virtual ~TroupeObserver() = default;
  virtual void job_submitted() = 0;
  virtual void job_rejected(RejectReason reason) = 0;
  /// Once per accepted job, with its terminal state.
  virtual void job_completed(JobState terminal) = 0;
  virtual void attempt_finished(FailureClass outcome, Duration run_time) = 0;
  virtual void queue_wait(Duration waited) = 0;
  virtual void mailbox(std::uint64_t depth, std::uint64_t capacity) = 0;
  virtual void actors(std::uint32_t total, std::uint32_t busy) = 0;
  virtual void actor_restarted() = 0;
  virtual void circuit_changed(CircuitState to) = 0;
  virtual void degraded_changed(bool degraded) = 0;
  virtual void autoscaled(ScaleDirection direction, std::uint32_t actors_now) = 0;
  /// The supervisor gave up on an actor for now (restart limit exceeded, or
  /// its handler could not be rebuilt): `cause` says why; it restarts after
  /// `retry_in`, or never (zero) under strategy `stop`. Rare: daemon/ logs a
  /// warning and counts it.
  virtual void actor_gave_up(std::uint32_t actor, std::string_view cause, Duration retry_in) = 0;
  /// An actor given up on runs again.
  virtual void actor_recovered(std::uint32_t actor) = 0;
  /// The job lifecycle refused a transition that must not happen (a second
  /// terminal state, a retry of an ended job): a bug, never applied; daemon/
  /// logs it and counts it.
  virtual void illegal_transition(JobId job, JobState from, JobState to) = 0;
  /// This generation is gone (removed by a reload and drained); called once,
  /// last. It must not touch a newer generation of the same name.
  virtual void removed() = 0;
};

/// Hands out one TroupeObserver per troupe generation. Thread-safe.
class Observer {
 public:
  virtual ~Observer() = default;
  /// A troupe (generation) starts; its removal is TroupeObserver::removed().
  virtual std::shared_ptr<TroupeObserver> troupe_added(std::string_view troupe) = 0;
  /// A submit named a troupe that is not hosted (rejected kUnknownTroupe).
  /// Not per troupe: the name is the client's, and a series per name would
  /// let clients create series.
  virtual void unknown_troupe_rejected() = 0;
};

/// Observes nothing; for tests and benchmarks that do not look.
Observer& null_observer();

}  // namespace troupe::core
