#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "core/backoff.h"
#include "core/clock.h"
#include "core/dispatcher.h"
#include "core/handler.h"
#include "core/job_entry.h"
#include "core/supervisor.h"

namespace troupe::core::detail {

class Troupe;
struct TroupeConfig;

/// One actor of a troupe: a strand, a Handler instance and its supervisor.
/// Takes jobs from the troupe's dispatcher and runs one at a time, to the
/// completion of its handler, then takes the next; several jobs whose
/// handlers complete synchronously run in one strand turn (bounded, then the
/// actor yields its thread by re-posting itself). Every change of a job's
/// state goes through the troupe's job lifecycle.
///
/// Threading: all its state is touched only on `strand_` (what the
/// dispatcher keeps about it is the dispatcher's, under its lock). The
/// handler's completion callback may come from any thread; it is brought
/// back onto the strand. Owned by the dispatcher through shared_ptr; work
/// posted to the strand keeps it alive, and it keeps its troupe alive (the
/// troupe breaks the cycle in shutdown()), so a troupe is freed only after
/// its last actor, never while one still runs on its strand.
class Actor final : public Worker {
 public:
  using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;

  Actor(std::shared_ptr<Troupe> troupe, Strand strand, std::uint32_t index);
  ~Actor() override;

  std::shared_ptr<Actor> self() { return std::static_pointer_cast<Actor>(shared_from_this()); }

  /// Strand: takes and runs jobs until none is available or one runs
  /// asynchronously.
  void pump();
  /// Any thread: schedules pump() on the strand.
  void post_pump();
  /// Any thread: emits cancellation to `job`'s attempt if it still runs here.
  void post_cancel(const JobPtr& job);
  /// Any thread: the drain deadline passed; the running attempt (if any) is
  /// cancelled and its job will end ABORTED.
  void post_abort();
  /// Any thread: the troupe's singleton lease was lost; the running attempt
  /// (if any) is cancelled and its job handed back to the store
  /// (JobLifecycle::hand_over).
  void post_hand_over();
  /// Any thread: destroys the actor's last reference on its own strand,
  /// after whatever it runs now has returned; a running attempt is
  /// cancelled first and the actor goes once its handler has answered.
  static void release(std::shared_ptr<Actor> actor);

 private:
  bool run_job(JobPtr job, bool breaker_permit);
  void on_done(std::uint32_t seq, AttemptResult result);
  void complete_async(std::uint32_t seq, AttemptResult result);
  void finish_attempt(AttemptResult result);
  void supervise();
  void apply(const SupervisorDecision& decision, const std::string& cause);
  void restart_now(bool recovering);
  void refresh_config();
  Timer& timer();

  Troupe& troupe_;
  const std::shared_ptr<Troupe> troupe_alive_;  // see the class comment
  Strand strand_;

  // Strand state.
  std::shared_ptr<const TroupeConfig> config_;
  std::uint64_t config_version_ = 0;
  std::unique_ptr<Handler> handler_;
  std::uint64_t handler_generation_ = ~std::uint64_t{0};
  JobPtr current_;
  std::uint32_t seq_ = 0;  // attempt sequence: a stale completion is ignored
  bool in_start_ = false;
  bool permit_ = false;  // current attempt holds a breaker permit
  bool capped_ = false;  // ... and a place under the troupe's cluster cap
  bool timed_out_ = false;
  bool timer_armed_ = false;
  bool restarting_ = false;  // waiting out a restart backoff or a give-up pause
  bool stopped_ = false;
  std::shared_ptr<Actor> released_;  // itself, released while an attempt ran
  std::optional<AttemptResult> inline_result_;
  std::chrono::steady_clock::time_point attempt_started_{};
  std::unique_ptr<Timer> timer_;  // attempt timeout, then restart backoff
  boost::asio::cancellation_signal signal_;
  Supervisor supervisor_;
  JitterRng rng_;  // retry and restart jitter, this strand's own
};

}  // namespace troupe::core::detail
