#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "core/clock.h"
#include "core/handler.h"
#include "core/job_entry.h"
#include "core/ring_queue.h"

namespace troupe::core::detail {

class Troupe;
struct TroupeConfig;

/// One actor of a troupe: a strand, a Handler instance, and a mailbox for
/// the jobs routed to it by key (unkeyed jobs wait in the troupe's shared
/// queue, which every actor pulls from). Runs one job at a time, to the
/// completion of its handler, then takes the next; several jobs whose
/// handlers complete synchronously run in one strand turn (bounded, then the
/// actor yields its thread by re-posting itself).
///
/// Threading: everything marked "strand" is touched only on `strand_`;
/// fields marked "troupe" are guarded by the troupe's mutex. The handler's
/// completion callback may come from any thread; it is brought back onto the
/// strand. Owned by its troupe through shared_ptr; work posted to the strand
/// keeps it alive, and it keeps its troupe alive (the troupe breaks the
/// cycle in shutdown()), so a troupe is freed only after its last actor,
/// never while one still runs on its strand.
class Actor : public std::enable_shared_from_this<Actor> {
 public:
  using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;

  Actor(std::shared_ptr<Troupe> troupe, Strand strand, std::uint32_t index);
  ~Actor();
  Actor(const Actor&) = delete;
  Actor& operator=(const Actor&) = delete;

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
  /// Any thread: destroys the actor's last reference on its own strand,
  /// after whatever it runs now has returned.
  static void release(std::shared_ptr<Actor> actor);

  const Strand& strand() const { return strand_; }
  std::uint32_t index() const { return index_; }

  // Troupe-guarded state (the troupe's mutex).
  RingQueue<JobPtr> keyed_;  // jobs routed here by key, in submission order
  std::shared_ptr<const TroupeConfig> config_;
  std::uint64_t config_version_ = 0;
  bool idle_ = false;      // in the troupe's idle list
  bool woken_ = false;     // woken, has not reached take() yet
  bool retiring_ = false;  // leaves once its current job is done

 private:
  bool run_job(JobPtr job, bool breaker_permit);
  void on_done(std::uint32_t seq, AttemptResult result);
  void complete_async(std::uint32_t seq, AttemptResult result);
  void finish_attempt(AttemptResult result);
  void supervise();
  void restart_now();
  Timer& timer();

  Troupe& troupe_;
  const std::shared_ptr<Troupe> troupe_alive_;  // see the class comment
  Strand strand_;
  std::uint32_t index_;

  // Strand state.
  std::unique_ptr<Handler> handler_;
  std::uint64_t handler_generation_ = ~std::uint64_t{0};
  JobPtr current_;
  std::uint32_t seq_ = 0;  // attempt sequence: a stale completion is ignored
  bool in_start_ = false;
  bool permit_ = false;  // current attempt holds a breaker permit
  bool timed_out_ = false;
  bool timer_armed_ = false;
  bool restarting_ = false;
  bool stopped_ = false;
  std::optional<AttemptResult> inline_result_;
  std::chrono::steady_clock::time_point attempt_started_{};
  std::unique_ptr<Timer> timer_;  // attempt timeout, then restart backoff
  boost::asio::cancellation_signal signal_;
  std::vector<std::chrono::steady_clock::time_point> restarts_;  // within the window
};

}  // namespace troupe::core::detail
