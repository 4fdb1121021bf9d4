#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/actor.h"
#include "core/cache_line.h"
#include "core/circuit_breaker.h"
#include "core/clock.h"
#include "core/dispatcher.h"
#include "core/handler.h"
#include "core/job_entry.h"
#include "core/job_lifecycle.h"
#include "core/job_store.h"
#include "core/observer.h"
#include "core/options.h"
#include "core/rate_limiter.h"
#include "core/retry_policy.h"
#include "core/retry_scheduler.h"
#include "core/runtime.h"

namespace troupe::core::detail {

/// One configuration generation of a troupe; actors pick up a new one
/// between jobs.
struct TroupeConfig {
  TroupeOptions options;
  RetryPolicy retry;
  std::uint64_t handler_generation = 0;
};

/// The retry policy's judgement of an attempt that ended with `outcome`,
/// the job's `attempts`-th: the verdict (the breaker records it) and what
/// the job lifecycle applies, with a backoff drawn from `rng` when it is
/// retried. One rule for attempts that returned and for an attempt the
/// process died in (recovery).
struct JudgedAttempt {
  Verdict verdict;
  AttemptEnd end;
};
JudgedAttempt judge_attempt(const TroupeConfig& config, FailureClass outcome,
                            std::uint32_t attempts, std::optional<Duration> retry_after,
                            JitterRng& rng, std::string output);

/// What a troupe needs from the runtime that hosts it.
class TroupeHost {
 public:
  virtual ~TroupeHost() = default;
  virtual JobId next_id() = 0;
  virtual void watch_ended(WatchId id) = 0;
  /// See LifecycleHost::watch_moved (the same default).
  virtual void watch_moved(JobId job, JobListeners::Watcher&& watcher) {
    (void)job;
    watch_ended(watcher.id);
  }
  /// The drain deadline ended a job: a running attempt it cancelled
  /// (`running`), or a queued or backing-off job it aborted.
  virtual void drain_ended(bool running) = 0;
  /// ... or left it for the next start (durable journal).
  virtual void drain_left(bool running) = 0;
  /// A job left because another replica took it (shared journal).
  virtual void job_lost() {}
  /// Job `id` was accepted into a shared store for another replica (or a
  /// later claim) to run: `on_terminal` (a wait=true caller) is answered
  /// with its outcome there, read from the store. By default it is dropped
  /// uncalled.
  virtual void follow_elsewhere(JobId id, JobCallback on_terminal) {
    (void)id;
    (void)on_terminal;
  }
};

/// Builds an actor's handler (make_handler; tests inject their own).
using HandlerFactory = std::function<std::unique_ptr<Handler>(
    const HandlerOptions&, boost::asio::any_io_executor, Clock&)>;

/// A named pool of actors: the wiring of a job lifecycle (the only writer
/// of job state), a dispatcher (queues, idle actors, key pins), a retry
/// scheduler, a circuit breaker, a rate limiter, the actors with their
/// supervisors, and the auto-scaler's timer.
///
/// Threading: submit/cancel/status/update/close are thread-safe. The parts
/// each own their lock (see their headers); the troupe's own `state_mutex_`
/// guards only the configuration and the supervision bookkeeping. Timers
/// (auto-scaler, throttle, retries) and the breaker live on `control_`, a
/// strand. Created with make_shared and start()ed before it is shared.
class Troupe : public std::enable_shared_from_this<Troupe>,
               private LifecycleHost,
               private DispatchGauges {
 public:
  Troupe(TroupeOptions options, boost::asio::io_context& io, Clock& clock, Observer& observer,
         JobStore& store, TroupeHost& host, const std::string* name,
         HandlerFactory handler_factory = make_handler, JournalLink& journal = JournalLink::none());
  ~Troupe() override;
  Troupe(const Troupe&) = delete;
  Troupe& operator=(const Troupe&) = delete;

  /// Creates the initial actors and arms the auto-scaler. Call once, before
  /// the troupe is visible to other threads.
  void start();
  /// Cancels the troupe's timers and lets its actors go (each on its own
  /// strand); queued work is dropped with it. The troupe is freed once the
  /// last actor and the last work posted for it are gone.
  void shutdown();

  std::variant<Accepted, Rejection> submit(JobRequest&& request, JobCallback on_terminal);
  /// Recovery, or a job a shared journal claimed for this process: a
  /// non-terminal job read back from the journal (its state as journaled):
  /// queued ones re-enter the queue (never refused for capacity),
  /// retry-waiting ones wait until `next_run_ns` (wall clock), running ones
  /// end their crashed attempt per the retry policy. False (nothing done,
  /// nothing counted) when the gate is closed: draining or removed.
  bool recover(const JobPtr& job, std::int64_t next_run_ns, RecoveryReport& report);
  /// A claimed job handed straight back to the store (see
  /// JobLifecycle::handed_back).
  void handed_back() { lifecycle_.handed_back(); }
  /// Another replica owns the job now: see JobLifecycle::lost. Any thread.
  void lost(const JobPtr& job);
  /// Free mailbox room: capacity minus queued jobs; 0 once the gate is
  /// closed, and for a singleton troupe not led here. Any thread; one
  /// dispatcher lock.
  std::size_t room() const;

  // Cluster coordination (`cluster:` options, shared journal; any thread).
  /// Singleton: led here with fencing term `term` (> 0), or not (0: hands
  /// its jobs over, see JobLifecycle::hand_over).
  void set_leadership(std::int64_t term);
  /// The fencing term of the lease this process holds (0: none), passed to
  /// each attempt (AttemptContext::fence_term).
  std::int64_t fence_term() const { return fence_term_.load(std::memory_order_acquire); }
  /// Singleton, not led here: a job an actor takes is handed over instead
  /// (one queued by a submit that raced the loss of the lease).
  bool follower() const { return follower_.load(std::memory_order_acquire); }
  /// max_concurrency: at most `permits` attempts run at once from now on.
  /// Returns how many run now.
  std::uint32_t set_permits(std::uint32_t permits);
  /// Queued plus running attempts, at most the live actors (what permits
  /// could be used for here).
  std::size_t demand() const;
  /// An attempt taken under the cluster cap ended (or never started).
  void capped_attempt_done();
  /// Cluster rate limit: the store granted `tokens` more attempt starts
  /// (0: none now); parked actors look again.
  void grant_tokens(std::uint32_t tokens);
  /// Queued jobs beyond the tokens held: what to ask the store for.
  std::size_t token_demand() const;
  /// The `cluster:` options the troupe was created with (a reload does not
  /// change them: docs/cluster.md).
  const ClusterOptions& cluster() const { return cluster_; }
  /// `dispatch: key` on a shared journal: a job with a key is accepted into
  /// the store unowned and runs wherever the store gives its key, so that
  /// one key's jobs run one at a time, in order, across replicas
  /// (docs/cluster.md, "Same-key order"). Fixed at creation.
  bool keys_across_replicas() const { return keys_across_replicas_; }
  /// Job of this troupe, not terminal when the lock was taken.
  CancelOutcome cancel(const JobPtr& job);
  /// New options (reload).
  void update(TroupeOptions options);
  /// The gate: stops accepting (submits get kDraining); `when_empty` runs
  /// once every accepted job has ended (at once when none is in flight).
  /// Drain and removal by a reload both use it.
  void close(std::function<void()> when_empty);
  bool closed() const { return lifecycle_.gate().closed(); }
  /// Drain deadline: queued and backing-off jobs end ABORTED now, running
  /// ones are cancelled and end ABORTED when their handler returns. Returns
  /// how many were aborted at once.
  std::uint64_t abort_all();

  TroupeStatus status() const;
  std::uint64_t in_flight() const { return lifecycle_.in_flight(); }
  std::vector<JobRecord> dead_jobs(std::size_t limit) const { return lifecycle_.dead_jobs(limit); }
  const std::string& name() const { return *name_; }
  /// This generation's observer.
  TroupeObserver& observer() const { return *obs_; }

  // Called by actors (on their strands).
  /// The configuration, when its version differs from `version` (which is
  /// then updated); null otherwise.
  std::shared_ptr<const TroupeConfig> config_if_changed(std::uint64_t& version) const;
  Dispatcher::Take take(Actor& actor);
  JobLifecycle& lifecycle() { return lifecycle_; }
  Clock& clock() { return clock_; }
  CircuitBreaker& breaker() { return *breaker_; }
  bool aborting() const { return aborting_.load(std::memory_order_acquire); }
  std::unique_ptr<Handler> build_handler(const HandlerOptions& options,
                                         boost::asio::any_io_executor executor) {
    return handler_factory_(options, std::move(executor), clock_);
  }
  void attempt_started(const Job& job, std::chrono::steady_clock::time_point now);
  void attempt_finished(FailureClass outcome, Duration run_time);
  void breaker_recorded();
  /// Hands a job that is to be retried to the retry scheduler (or ends it
  /// ABORTED when the drain deadline has passed).
  void retry(const JobPtr& job, Duration backoff);
  /// Supervision: an actor given up on for `pause`, one running again, one
  /// stopped for good (strategy stop), one restarted.
  void actor_gave_up(Actor& actor, const std::string& cause, Duration pause);
  void actor_recovered(Actor& actor);
  void actor_stopped(Actor& actor, const std::string& cause);
  void actor_restarted();

 private:
  // LifecycleHost
  void job_ended(const Job& job) override { dispatcher_.job_ended(job); }
  void watch_ended(WatchId id) override { host_.watch_ended(id); }
  void watch_moved(JobId job, JobListeners::Watcher&& watcher) override {
    host_.watch_moved(job, std::move(watcher));
  }
  void drain_ended(bool running) override { host_.drain_ended(running); }
  void drain_left(bool running) override { host_.drain_left(running); }
  void job_lost() override { host_.job_lost(); }
  void when_durable(std::function<void()> then) override;
  void follow_elsewhere(JobId id, JobCallback on_terminal) override {
    host_.follow_elsewhere(id, std::move(on_terminal));
  }
  // DispatchGauges (under the dispatcher's lock)
  void mailbox(std::uint64_t depth, std::uint64_t capacity) override {
    obs_->mailbox(depth, capacity);
  }
  void actors(std::uint32_t total, std::uint32_t busy) override { obs_->actors(total, busy); }

  Rejection reject(Rejection rejection);
  Rejection store_unavailable();
  std::optional<Rejection> degraded_rejection() const;
  void on_retry_due(const JobPtr& job);
  void add_actors(std::uint32_t n);
  void release(std::vector<WorkerPtr> workers);
  static void wake(const std::vector<WorkerPtr>& workers);
  void set_degraded_locked(bool degraded);
  void end_stranded();
  void arm_throttle();
  void arm_autoscale();
  void autoscale_tick();
  void unpark_breaker();

  boost::asio::io_context& io_;
  Clock& clock_;
  JobStore& store_;
  TroupeHost& host_;
  const std::string* name_;
  HandlerFactory handler_factory_;
  JournalLink& journal_;
  Actor::Strand control_;
  std::shared_ptr<TroupeObserver> observer_;
  TroupeObserver* obs_;  // observer_.get(), for the hot path
  std::unique_ptr<CircuitBreaker> breaker_;
  RateLimiter limiter_;

  // Lock-free mirrors of configuration read on the hot path; written rarely.
  // These and the members above are read on every submit; the counters
  // below are written by refused submitters and by actors on every attempt.
  // Each group has cache lines of its own: sharing one, every submit missed
  // on a line an actor had just written (false sharing, docs/performance.md).
  std::atomic<std::int64_t> max_timeout_ns_{0};
  std::atomic<bool> breaker_enabled_{false};
  std::atomic<bool> breaker_rejects_{false};
  std::atomic<bool> limiter_enabled_{false};
  std::atomic<bool> aborting_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<bool> degraded_{false};  // mirror of degraded_locked_, checked by submit
  // Cluster coordination (docs/cluster.md).
  std::atomic<bool> follower_{false};            // singleton, not led here
  std::atomic<std::int64_t> fence_term_{0};      // singleton, led here
  std::atomic<bool> capped_{false};              // max_concurrency
  std::atomic<std::int64_t> cap_{0};             // attempts allowed to run (capped_)
  std::atomic<std::int64_t> capped_running_{0};  // attempts taken under the cap
  std::atomic<bool> token_limited_{false};       // cluster rate_limit
  bool keys_across_replicas_ = false;            // dispatch: key on a shared journal
  std::atomic<std::int64_t> tokens_{0};          // attempt starts granted, unused
  ClusterOptions cluster_;                       // as created

  alignas(kCacheLine) std::atomic<std::uint64_t> rejected_{0};
  alignas(kCacheLine) std::atomic<std::uint64_t> attempts_{0};
  std::atomic<std::uint64_t> restarts_{0};
  std::atomic<std::int64_t> mean_run_ns_{0};  // moving average, for retry-after hints

  // Each part keeps its hot fields on lines of its own (see their headers).
  JobLifecycle lifecycle_;
  alignas(kCacheLine) Dispatcher dispatcher_;
  RetryScheduler retry_;

  mutable std::mutex state_mutex_;  // guards everything below
  std::shared_ptr<const TroupeConfig> config_;
  std::atomic<std::uint64_t> config_version_{1};  // written under state_mutex_
  std::uint64_t handler_generation_ = 1;
  std::uint32_t next_actor_index_ = 0;
  std::uint32_t stopped_actors_ = 0;  // strategy stop; replaced by a reload
  std::map<const Actor*, std::chrono::steady_clock::time_point> given_up_;  // until when
  bool degraded_locked_ = false;
  std::string degraded_cause_;
  bool throttle_armed_ = false;
  std::optional<std::chrono::steady_clock::time_point> last_scale_;

  // Control strand only.
  std::unique_ptr<Timer> autoscale_timer_;
  std::unique_ptr<Timer> throttle_timer_;
};

}  // namespace troupe::core::detail
