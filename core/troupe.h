#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "core/actor.h"
#include "core/adaptive_mutex.h"
#include "core/cache_line.h"
#include "core/circuit_breaker.h"
#include "core/clock.h"
#include "core/job_entry.h"
#include "core/job_store.h"
#include "core/observer.h"
#include "core/options.h"
#include "core/rate_limiter.h"
#include "core/retry_policy.h"
#include "core/ring_queue.h"
#include "core/runtime.h"

namespace troupe::core::detail {

/// One configuration generation of a troupe; actors pick up a new one
/// between jobs.
struct TroupeConfig {
  TroupeOptions options;
  RetryPolicy retry;
  std::uint64_t handler_generation = 0;
};

/// What a troupe needs from the runtime that hosts it.
class TroupeHost {
 public:
  virtual ~TroupeHost() = default;
  virtual JobId next_id() = 0;
  /// A job of `troupe` reached its terminal state (any core thread).
  virtual void job_terminal(Troupe& troupe) = 0;
  virtual void watch_ended(WatchId id) = 0;
  /// The drain deadline ended a job: a running attempt it cancelled
  /// (`running`), or a queued or backing-off job it aborted.
  virtual void drain_ended(bool running) = 0;
};

/// A named pool of actors behind one queue, with its breaker, rate limiter,
/// retry policy, supervisor and auto-scaler.
///
/// Dispatch design: unkeyed jobs wait in one troupe-level bounded queue
/// (capacity = actors x mailbox_capacity) that every actor pulls from when it
/// finishes a job, so no job waits behind a slow one while another actor is
/// idle. A submit wakes one idle actor (least-loaded: the most recently idle
/// one, whose cache is warm; round-robin: the next idle one in actor order).
/// Jobs with a key and `dispatch: key` go to a per-actor queue instead: the
/// key is pinned to one actor while it has jobs pending (queued, running or
/// backing off), so one key's jobs run in submission order, one at a time.
///
/// Threading: submit/cancel/status are thread-safe. `mutex_` guards the
/// queues, the actor lists and the flags below it; its critical sections
/// are short and call out to nothing but the observer's non-blocking
/// actors() gauge (never a handler or a user callback). Timers (auto-scaler, throttle, retries) and
/// the breaker live on `control_`, a strand. Counters are atomics.
class Troupe : public std::enable_shared_from_this<Troupe> {
 public:
  Troupe(TroupeOptions options, boost::asio::io_context& io, Clock& clock, Observer& observer,
         JobStore& store, TroupeHost& host, const std::string* name);
  ~Troupe();
  Troupe(const Troupe&) = delete;
  Troupe& operator=(const Troupe&) = delete;

  /// Creates the initial actors and arms the auto-scaler.
  void start();
  /// Cancels the troupe's timers and lets its actors go (each on its own
  /// strand); queued work is dropped with it. The troupe is freed once the
  /// last actor and the last work posted for it are gone.
  void shutdown();

  std::variant<Accepted, Rejection> submit(JobRequest&& request, JobCallback on_terminal);
  Rejection reject(RejectReason reason, std::string message, std::chrono::milliseconds after);

  /// Job of this troupe, not terminal when the lock was taken.
  CancelOutcome cancel(const JobPtr& job);
  /// New options (reload).
  void update(TroupeOptions options);
  /// Stop accepting.
  void begin_drain();
  bool draining() const { return draining_.load(std::memory_order_acquire); }
  /// Drain deadline: queued and backing-off jobs end ABORTED now, running
  /// ones are cancelled and end ABORTED when their handler returns. Returns
  /// how many were aborted at once.
  std::uint64_t abort_all();

  void mark_removing() { removing_.store(true, std::memory_order_release); }
  bool removing() const { return removing_.load(std::memory_order_acquire); }

  TroupeStatus status() const;
  std::uint64_t in_flight() const;
  std::vector<JobRecord> dead_jobs(std::size_t limit) const;
  const std::string& name() const { return *name_; }
  /// This generation's observer.
  TroupeObserver& observer() const { return *obs_; }

  // Called by actors.
  /// The actor's next job, or null (the actor is then idle). `chain` is an
  /// idle actor to wake for the work that remains.
  JobPtr take(Actor& actor, bool& breaker_permit, std::shared_ptr<Actor>& chain);
  /// `now_ns`: the steady clock's reading, when the caller has it (0: read it).
  void complete(const JobPtr& job, JobState terminal, std::int64_t now_ns = 0);
  /// Wall-clock ns for a steady-clock reading: record timestamps are derived
  /// from the steady clock (one clock read per transition, not two).
  std::int64_t wall_ns(std::int64_t steady_ns) const { return steady_ns + wall_offset_ns_; }
  void schedule_retry(const JobPtr& job, Duration backoff);
  void attempt_started(const Job& job, std::chrono::steady_clock::time_point now);
  void attempt_finished(FailureClass outcome, Duration run_time);
  void breaker_recorded();
  void actor_stopped(Actor& actor);
  void actor_restarted();
  bool aborting() const { return aborting_.load(std::memory_order_acquire); }
  Duration retry_backoff(const TroupeConfig& config, std::uint32_t attempts,
                         std::optional<Duration> retry_after);
  Duration restart_backoff(const SupervisorOptions& options, std::uint32_t n);
  CircuitBreaker& breaker() { return *breaker_; }
  Clock& clock() { return clock_; }
  TroupeHost& host() { return host_; }
  /// Sends every watcher of `job` its current state (any thread, no lock held).
  static void notify_watchers(const JobPtr& job, TroupeHost& host);
  static bool watched(const Job& job);

 private:
  struct KeyOwner {
    Actor* actor = nullptr;
    std::uint32_t pending = 0;  // queued + running + backing off
  };

  std::shared_ptr<Actor> make_actor();
  void add_actors(std::uint32_t n);
  /// Removes up to n actors, idle ones first; busy ones retire after their
  /// current job. Returns how many were removed or marked.
  std::uint32_t remove_actors_locked(std::uint32_t n, bool idle_only);
  void retire_locked(Actor& actor);
  void drop_actor_locked(Actor& actor);
  void move_keyed_jobs_locked(Actor& from);
  Actor* route_key_locked(const std::string& key);
  void enqueue_locked(JobPtr job, std::shared_ptr<Actor>& wake);
  void go_idle_locked(Actor& actor);
  std::shared_ptr<Actor> pick_idle_locked();
  std::shared_ptr<Actor> claim_idle_locked(Actor& actor);
  /// Takes idle_[pos] out of the idle list (the last one moves into its
  /// place), marks it woken and reports the busy count.
  std::shared_ptr<Actor> wake_idle_at_locked(std::size_t pos);
  std::vector<std::shared_ptr<Actor>> wake_locked(std::uint64_t n);
  void release_key_locked(const std::string& key);
  void update_capacity_locked();
  void report_actors_locked();
  void report_mailbox_locked();
  void arm_throttle();
  void arm_autoscale();
  void autoscale_tick();
  void wake_gated();
  std::uint32_t total_actors_locked() const;

  boost::asio::io_context& io_;
  Clock& clock_;
  JobStore& store_;
  TroupeHost& host_;
  const std::string* name_;
  Actor::Strand control_;
  std::shared_ptr<TroupeObserver> observer_;
  TroupeObserver* obs_;  // observer_.get(), for the hot path
  std::unique_ptr<CircuitBreaker> breaker_;
  RateLimiter limiter_;

  const std::int64_t wall_offset_ns_;  // wall - steady, taken at construction

  // Lock-free mirrors of configuration read on the hot path. These and the
  // members above are read on every submit and written rarely; the counters
  // below and the lock are written by submitters and by actors on every job.
  // Each group has cache lines of its own: sharing one, every submit missed on
  // a line an actor had just written (false sharing, docs/performance.md).
  std::atomic<std::int64_t> max_timeout_ns_{0};
  std::atomic<bool> breaker_enabled_{false};
  std::atomic<bool> breaker_rejects_{false};
  std::atomic<bool> limiter_enabled_{false};
  std::atomic<bool> draining_{false};
  std::atomic<bool> removing_{false};
  std::atomic<bool> aborting_{false};
  std::atomic<bool> stopped_{false};

  struct Counters {
    // Written by submitters.
    alignas(kCacheLine) std::atomic<std::uint64_t> submitted{0};
    std::atomic<std::uint64_t> rejected{0};
    // Written by actors as attempts and jobs end.
    alignas(kCacheLine) std::atomic<std::uint64_t> succeeded{0};
    std::atomic<std::uint64_t> failed{0};
    std::atomic<std::uint64_t> dead{0};
    std::atomic<std::uint64_t> cancelled{0};
    std::atomic<std::uint64_t> aborted{0};
    std::atomic<std::uint64_t> attempts{0};
    std::atomic<std::uint64_t> restarts{0};
  };
  Counters counters_;
  std::atomic<std::int64_t> mean_run_ns_{0};  // moving average, for retry-after hints

  alignas(kCacheLine) mutable AdaptiveMutex mutex_;  // guards everything below
  std::shared_ptr<const TroupeConfig> config_;
  std::uint64_t config_version_ = 1;
  std::uint64_t handler_generation_ = 1;
  std::vector<std::shared_ptr<Actor>> actors_;  // live ones (running, idle or restarting)
  std::vector<Actor*> idle_;
  RingQueue<JobPtr> queue_;   // unkeyed jobs
  std::uint64_t queued_ = 0;  // queue_ + every keyed_, cancelled entries included
  std::uint64_t capacity_ = 0;
  std::uint32_t stopped_actors_ = 0;
  std::uint32_t next_actor_index_ = 0;
  std::uint32_t rr_cursor_ = 0;
  std::uint32_t waking_ = 0;  // actors woken that have not reached take() yet
  std::unordered_map<std::string, KeyOwner> keys_;
  std::unordered_map<std::uint64_t, JobPtr> retry_waiting_;
  std::deque<JobPtr> dead_letters_;  // newest at the front
  std::mt19937_64 rng_;
  bool throttled_ = false;
  bool throttle_armed_ = false;
  bool gated_ = false;  // actors went idle because the breaker refused a permit
  bool hold_armed_ = false;
  bool degraded_ = false;
  std::optional<std::chrono::steady_clock::time_point> last_scale_;

  // Control strand only.
  std::unique_ptr<Timer> autoscale_timer_;
  std::unique_ptr<Timer> throttle_timer_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Timer>> retry_timers_;
};

}  // namespace troupe::core::detail
