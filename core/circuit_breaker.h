#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/strand.hpp>
#include <cstdint>
#include <functional>
#include <memory>

#include "core/clock.h"
#include "core/observer.h"
#include "core/options.h"

namespace troupe::core {

/// Circuit breaker for one troupe (resilience4j semantics): closed -> open on
/// a failure or slow-call rate over a count-based sliding window (once
/// minimum_calls are in it) or on N consecutive failures; open for
/// open_timeout (growing by open_timeout_multiplier on repeated opens, up to
/// max_open_timeout); then half-open with half_open_max_calls probes; all
/// probes succeeding closes it, any failure reopens it; max_wait_in_half_open
/// without enough results reopens it.
///
/// Thread-safe: every member may be called from any thread. state() and a
/// closed breaker's try_acquire() read one atomic. Results, releases and
/// transitions are applied at once under one short internal lock (no user
/// code runs under it), so record() has taken effect when it returns; timer
/// expiries run on a strand on `executor`. Every transition bumps a
/// generation counter so a timer armed in an earlier state does nothing.
/// on_transition and when_not_open callbacks run on that strand, in
/// transition order, once each; none runs after the breaker is destroyed
/// (pending when_not_open callbacks are dropped). Destroy it on its strand
/// or once `executor` no longer runs, so no callback is mid-flight.
class CircuitBreaker {
 public:
  CircuitBreaker(CircuitBreakerOptions options, boost::asio::any_io_executor executor, Clock& clock,
                 std::function<void(CircuitState)> on_transition);
  ~CircuitBreaker();
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  CircuitState state() const noexcept;

  /// Permission for one handler call now. Closed: always (when disabled,
  /// always). Open: never. Half-open: for at most half_open_max_calls
  /// permits not yet answered by record() or release().
  bool try_acquire();

  /// The outcome of a call try_acquire() permitted. `breaker_failure` comes
  /// from classify(); `duration` judges slow calls.
  void record(bool breaker_failure, Duration duration);

  /// Gives back a permit whose call never happened (e.g. cancelled before
  /// the handler ran). Counts as neither success nor failure.
  void release();

  /// Calls fn once (on the breaker's strand) as soon as the breaker is not
  /// open — at once if it is not open now. For the `hold` policy.
  void when_not_open(std::function<void()> fn);

  /// Applies new options live (reload); the current state is kept.
  void update(CircuitBreakerOptions options);

  /// Time until an open breaker half-opens (zero when not open): a retry hint.
  Duration time_until_half_open() const;

  /// Moves the breaker to `to` now, as an operator would (kClosed = reset,
  /// kOpen = trip); a transition like any other (on_transition, timers,
  /// generation). Nothing happens if it is already in `to` or disabled.
  void transition_to(CircuitState to);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace troupe::core
