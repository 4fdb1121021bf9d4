#include "core/troupe.h"

#include <algorithm>
#include <boost/asio/post.hpp>

#include "core/autoscaler.h"
#include "core/backoff.h"
#include "core/failure_policy.h"
#include "core/supervisor.h"

namespace troupe::core::detail {

namespace {

std::uint32_t initial_actor_count(const TroupeOptions& o) {
  if (o.mode == TroupeMode::kFixed) return o.max_actors;
  return std::clamp(o.initial_actors, o.min_actors, o.max_actors);
}

/// The fewest live actors a troupe runs when nothing is wrong.
std::uint32_t minimum_actor_count(const TroupeOptions& o) {
  return o.mode == TroupeMode::kFixed ? o.max_actors : o.min_actors;
}

std::chrono::milliseconds to_ms_ceil(Duration d) {
  return std::chrono::ceil<std::chrono::milliseconds>(std::max(d, Duration::zero()));
}

}  // namespace

Troupe::Troupe(TroupeOptions options, boost::asio::io_context& io, Clock& clock, Observer& observer,
               JobStore& store, TroupeHost& host, const std::string* name,
               HandlerFactory handler_factory, JournalLink& journal)
    : io_(io),
      clock_(clock),
      store_(store),
      host_(host),
      name_(name),
      handler_factory_(std::move(handler_factory)),
      journal_(journal),
      control_(boost::asio::make_strand(io.get_executor())),
      observer_(observer.troupe_added(*name)),
      obs_(observer_.get()),
      limiter_(options.rate_limit, clock),
      lifecycle_(clock, store, *observer_, static_cast<LifecycleHost&>(*this), journal),
      dispatcher_(options.dispatch, options.mailbox_capacity, static_cast<DispatchGauges&>(*this)),
      retry_(control_, clock, [this](const JobPtr& job) { on_retry_due(job); }) {
  breaker_enabled_ = options.circuit_breaker.enabled;
  breaker_rejects_ = options.circuit_breaker.policy == CircuitBreakerOptions::OpenPolicy::kReject;
  limiter_enabled_ = options.rate_limit.enabled;
  lifecycle_.set_dead_letter_limits(options.dead_letter_capacity, options.dead_letter_max_bytes);
  max_timeout_ns_ = max_timeout(options).count();
  // With a shared journal, a singleton troupe waits for its lease and a
  // capped one for its permits (ClusterHooks); elsewhere `cluster:` is
  // refused by the configuration.
  cluster_ = options.cluster;
  if (journal_.journal.shared()) {
    follower_ = options.cluster.singleton;
    capped_ = options.cluster.max_concurrency > 0;
    token_limited_ = options.cluster.rate_limit.enabled;
    keys_across_replicas_ = options.dispatch == DispatchStrategy::kKey;
  }
  // The breaker's transitions wake actors parked waiting for it.
  breaker_ = std::make_unique<CircuitBreaker>(options.circuit_breaker, control_, clock,
                                              [this, obs = observer_](CircuitState to) {
                                                obs->circuit_changed(to);
                                                if (to != CircuitState::kOpen) unpark_breaker();
                                              });
  RetryPolicy retry(options.retry);
  config_ = std::make_shared<const TroupeConfig>(
      TroupeConfig{std::move(options), std::move(retry), handler_generation_});
}

Troupe::~Troupe() = default;

void Troupe::start() {
  retry_.set_owner(weak_from_this());
  add_actors(initial_actor_count(config_->options));
  if (config_->options.mode == TroupeMode::kDynamic) {
    boost::asio::post(control_, [self = shared_from_this()] { self->arm_autoscale(); });
  }
}

void Troupe::shutdown() {
  stopped_.store(true, std::memory_order_release);
  retry_.shutdown();
  // Each actor holds the troupe: destroyed on its own strand after whatever
  // it runs now, the last one frees the troupe with its handlers (their
  // keep-alive sockets) and dead letters, once nothing can reach it.
  release(dispatcher_.close());
  boost::asio::post(control_, [self = shared_from_this()] {
    if (self->autoscale_timer_) self->autoscale_timer_->cancel();
    if (self->throttle_timer_) self->throttle_timer_->cancel();
  });
}

std::shared_ptr<const TroupeConfig> Troupe::config_if_changed(std::uint64_t& version) const {
  if (config_version_.load(std::memory_order_acquire) == version) return nullptr;
  std::lock_guard lock(state_mutex_);
  version = config_version_.load(std::memory_order_relaxed);
  return config_;
}

void Troupe::wake(const std::vector<WorkerPtr>& workers) {
  for (const auto& w : workers) static_cast<Actor&>(*w).post_pump();
}

void Troupe::release(std::vector<WorkerPtr> workers) {
  for (auto& w : workers) {
    if (w) Actor::release(std::static_pointer_cast<Actor>(std::move(w)));
  }
}

void Troupe::add_actors(std::uint32_t n) {
  std::vector<WorkerPtr> fresh;
  fresh.reserve(n);
  {
    std::lock_guard lock(state_mutex_);
    for (std::uint32_t i = 0; i < n; ++i) {
      fresh.push_back(std::make_shared<Actor>(
          shared_from_this(), boost::asio::make_strand(io_.get_executor()), next_actor_index_++));
    }
  }
  if (!dispatcher_.add(fresh)) {
    // Shut down meanwhile (an auto-scaler tick raced it): they would keep
    // the troupe alive for good.
    release(std::move(fresh));
    return;
  }
  // A new actor starts busy (not in the idle list) and looks for work at
  // once: it either takes a queued job or parks itself as idle.
  wake(fresh);
}

void Troupe::set_leadership(std::int64_t term) {
  fence_term_.store(term, std::memory_order_release);
  const bool was_follower = follower_.exchange(term == 0, std::memory_order_acq_rel);
  if (term != 0 || was_follower) return;
  // Lost: every job of the troupe here goes back to the store. New ones
  // are handed over as accepted (submit) or claimed (recover), retries as
  // they come due (on_retry_due).
  for (auto& job : dispatcher_.take_all()) lifecycle_.hand_over(job);
  for (auto& w : dispatcher_.workers()) {
    static_cast<Actor&>(*w).post_hand_over();
  }
}

std::uint32_t Troupe::set_permits(std::uint32_t permits) {
  cap_.store(permits, std::memory_order_release);
  if (!capped_.load(std::memory_order_acquire)) return 0;
  wake(dispatcher_.unpark(Park::kCap));
  return static_cast<std::uint32_t>(
      std::max<std::int64_t>(capped_running_.load(std::memory_order_acquire), 0));
}

std::size_t Troupe::demand() const {
  // More permits than actors would sit idle here while another replica
  // has a backlog.
  const auto d = dispatcher_.load();
  const auto running = std::max<std::int64_t>(capped_running_.load(std::memory_order_acquire), 0);
  return std::min<std::size_t>(static_cast<std::size_t>(d.queued + running), d.workers);
}

void Troupe::grant_tokens(std::uint32_t tokens) {
  if (!token_limited_.load(std::memory_order_acquire)) return;
  tokens_.fetch_add(tokens, std::memory_order_acq_rel);
  // Even with none: the parked actors look again, and the next park asks
  // the journal again (Journal::want_tokens).
  wake(dispatcher_.unpark(Park::kToken));
}

std::size_t Troupe::token_demand() const {
  if (!token_limited_.load(std::memory_order_acquire)) return 0;
  const auto queued = static_cast<std::int64_t>(dispatcher_.load().queued);
  const auto held = tokens_.load(std::memory_order_acquire);
  return static_cast<std::size_t>(std::max<std::int64_t>(queued - held, 0));
}

void Troupe::capped_attempt_done() {
  capped_running_.fetch_sub(1, std::memory_order_acq_rel);
  wake(dispatcher_.unpark(Park::kCap));
}

std::variant<Accepted, Rejection> Troupe::submit(JobRequest&& request, JobCallback on_terminal) {
  if (journal_.failed.load(std::memory_order_relaxed) ||
      journal_.unavailable.load(std::memory_order_relaxed)) {
    return reject(store_unavailable());
  }
  if (request.attempt_timeout) {
    const Duration cap(max_timeout_ns_.load(std::memory_order_relaxed));
    if (*request.attempt_timeout > cap) {
      Rejection r{RejectReason::kTimeoutOverMax};
      r.limit = cap;
      return reject(std::move(r));
    }
  }
  if (closed()) return reject({RejectReason::kDraining});
  if (breaker_enabled_.load(std::memory_order_relaxed) &&
      breaker_rejects_.load(std::memory_order_relaxed) &&
      breaker_->state() == CircuitState::kOpen) {
    return reject({RejectReason::kCircuitOpen, to_ms_ceil(breaker_->time_until_half_open())});
  }
  if (degraded_.load(std::memory_order_relaxed)) {
    if (auto r = degraded_rejection()) return reject(std::move(*r));
  }
  if (!store_.has_room(request.payload.size())) {
    return reject({RejectReason::kStoreFull, std::chrono::milliseconds(1000)});
  }
  if (!lifecycle_.admit()) return reject({RejectReason::kDraining});

  // Through the store: a singleton troupe led by another replica (for the
  // holder to claim), or a keyed job whose key may be running elsewhere
  // (the store gives each key to one replica at a time, in order).
  const bool through_store =
      follower_.load(std::memory_order_acquire) || (keys_across_replicas_ && !request.key.empty());
  auto job = std::make_shared<Job>();
  job->id = host_.next_id();
  job->troupe_name = name_;
  job->troupe = this;
  job->payload = std::move(request.payload);
  job->extras = make_extras(std::move(request.key), std::move(request.idempotency_key),
                            std::move(request.metadata), request.attempt_timeout, request.deadline);
  job->enqueued_ns = to_ns(clock_.now());
  job->submitted_ns = lifecycle_.wall_ns(job->enqueued_ns);

  if (through_store) {
    // Accepted into the store, unowned; a wait=true caller is answered with
    // the outcome wherever the job runs (here too, after a claim).
    lifecycle_.accepted_and_handed_over(*job);
    lifecycle_.unadmit();
    if (on_terminal) host_.follow_elsewhere(job->id, std::move(on_terminal));
    return Accepted{job->id, false};
  }
  if (on_terminal) {
    job->listeners = std::make_unique<JobListeners>();
    job->listeners->on_terminal.push_back(std::move(on_terminal));
  }

  Dispatcher::Admission admission;
  if (journal_.durable) {
    // Journaled under the dispatcher's lock once the job is queued: before
    // any actor can take it (and journal its start), and not at all when
    // the troupe is full. The copy of the request is made outside the lock.
    auto entry = lifecycle_.accepted_entry(*job);
    admission = dispatcher_.admit(job, [&] { journal_.journal.append(std::move(entry)); });
  } else {
    admission = dispatcher_.admit(job);
  }
  if (!admission.queued) {
    lifecycle_.unadmit();
    Rejection r;
    r.queued = admission.depth;
    r.capacity = admission.capacity;
    r.actors = admission.workers;
    if (admission.throttled) {
      r.reason = RejectReason::kRateLimited;
      r.retry_after =
          std::max(to_ms_ceil(limiter_.time_until_available()), std::chrono::milliseconds(1));
    } else {
      // The queue drains at about one job per mean run time per actor.
      const auto per_actor = std::max<std::uint64_t>(admission.workers, 1);
      const Duration hint(mean_run_ns_.load(std::memory_order_relaxed) *
                          static_cast<std::int64_t>(admission.depth / per_actor + 1));
      r.reason = RejectReason::kFull;
      r.retry_after = std::clamp(to_ms_ceil(hint), std::chrono::milliseconds(1),
                                 std::chrono::milliseconds(30000));
    }
    return reject(std::move(r));
  }
  lifecycle_.accepted(job);
  if (admission.wake) static_cast<Actor&>(*admission.wake).post_pump();
  return Accepted{job->id, false};
}

Rejection Troupe::store_unavailable() {
  Rejection r{RejectReason::kStoreUnavailable};
  if (auto failure = journal_.journal.failure()) {
    r.store_failure = std::move(failure->message);
  } else {
    r.store_failure = journal_.why_unavailable();
  }
  return r;
}

JudgedAttempt judge_attempt(const TroupeConfig& config, FailureClass outcome,
                            std::uint32_t attempts, std::optional<Duration> retry_after,
                            JitterRng& rng, std::string output) {
  JudgedAttempt judged;
  judged.verdict = classify(outcome, config.options.retry, config.options.circuit_breaker);
  AttemptEnd& end = judged.end;
  end.failure = outcome;
  end.success = judged.verdict.success;
  end.retryable = judged.verdict.retryable;
  end.output = std::move(output);
  end.retry = !judged.verdict.success && config.retry.should_retry(judged.verdict, attempts);
  // Before the transition: the journal records when the retry is due.
  if (end.retry) end.backoff = config.retry.backoff(attempts, retry_after, rng);
  return judged;
}

bool Troupe::recover(const JobPtr& job, std::int64_t next_run_ns, RecoveryReport& report) {
  const JobState state = job->state.load(std::memory_order_relaxed);
  // Closed: never at start (before the first submit); a claim that raced a
  // drain or a removal, or a singleton troupe's lease lost meanwhile.
  if (follower_.load(std::memory_order_acquire)) return false;
  if (!lifecycle_.recovered(job)) return false;
  switch (state) {
    case JobState::kQueued: {
      auto admission = dispatcher_.admit(job, {}, true);
      // Keyed with no actor to pin it to: the shared queue takes it.
      WorkerPtr wake = admission.queued ? std::move(admission.wake) : dispatcher_.requeue(job);
      if (wake) static_cast<Actor&>(*wake).post_pump();
      ++report.queued;
      return true;
    }
    case JobState::kRetryWait: {
      dispatcher_.pin(*job);
      const std::int64_t wait_ns = next_run_ns - to_ns(clock_.wall_now());
      retry(job, Duration(std::max<std::int64_t>(wait_ns, 0)));
      ++report.retry_waiting;
      return true;
    }
    case JobState::kRunning: {
      // The process died while the attempt ran: it counts as a CRASH and
      // the retry policy decides, so a job that kills the daemon every
      // time ends DEAD after max_attempts restarts.
      dispatcher_.pin(*job);
      ++report.crashed;
      std::shared_ptr<const TroupeConfig> config;
      {
        std::lock_guard lock(state_mutex_);
        config = config_;
      }
      JitterRng rng(job->id.value);
      AttemptEnd end =
          judge_attempt(*config, FailureClass::kCrash, job->attempts, std::nullopt, rng,
                        "trouped stopped while attempt " + std::to_string(job->attempts) +
                            " ran (crash or kill); counted as a crash")
              .end;
      const Duration backoff = end.backoff;
      const JobState next = lifecycle_.attempt_ended(job, std::move(end), to_ns(clock_.now()));
      if (next == JobState::kRetryWait) {
        retry(job, backoff);
        ++report.retry_waiting;
      } else if (next == JobState::kDead) {
        ++report.crashed_dead;
      }
      return true;
    }
    default:
      return true;
  }
}

void Troupe::when_durable(std::function<void()> then) {
  // The troupe (and its lifecycle) stays until `then` ran: a removed troupe
  // may drain before the barrier completes.
  journal_.after_durable_noting([self = shared_from_this(), then = std::move(then)] { then(); });
}

void Troupe::lost(const JobPtr& job) {
  auto r = lifecycle_.lost(job);
  if (!r.lost) return;
  if (r.runner) r.runner->post_cancel(job);
  if (r.was == JobState::kRetryWait) retry_.forget(job->id);
}

std::size_t Troupe::room() const {
  if (closed() || follower_.load(std::memory_order_acquire)) return 0;
  const auto d = dispatcher_.load();
  return d.capacity > d.queued ? static_cast<std::size_t>(d.capacity - d.queued) : 0;
}

Rejection Troupe::reject(Rejection rejection) {
  rejected_.fetch_add(1, std::memory_order_relaxed);
  obs_->job_rejected(rejection.reason);
  return rejection;
}

std::optional<Rejection> Troupe::degraded_rejection() const {
  const auto load = dispatcher_.load();
  std::lock_guard lock(state_mutex_);
  const auto given_up = static_cast<std::uint32_t>(given_up_.size());
  if (load.workers > given_up) return std::nullopt;  // some actor still runs
  Rejection r{RejectReason::kDegraded};
  r.actors = load.workers + stopped_actors_;
  if (!given_up_.empty()) {
    auto next = std::min_element(given_up_.begin(), given_up_.end(), [](auto& a, auto& b) {
                  return a.second < b.second;
                })->second;
    r.retry_after = std::max(to_ms_ceil(next - clock_.now()), std::chrono::milliseconds(1));
  }
  return r;
}

Dispatcher::Take Troupe::take(Actor& actor) {
  bool counted = false;
  auto t = dispatcher_.take(actor, [this, &counted] {
    bool permit = false;
    if (breaker_enabled_.load(std::memory_order_relaxed)) {
      if (!breaker_->try_acquire()) return Pass::kBreakerRefused;
      permit = true;
    }
    // The cluster's gates are checked before the local limiter takes a
    // token, so that a refusal there wastes none. Under the dispatcher's
    // lock: takes are serialised, so the count never passes the cap (it
    // falls outside: capped_attempt_done) and a cluster token is never spent
    // twice (grants only add).
    const bool capped = capped_.load(std::memory_order_relaxed);
    if (capped &&
        capped_running_.load(std::memory_order_acquire) >= cap_.load(std::memory_order_acquire)) {
      if (permit) breaker_->release();
      return Pass::kCapped;
    }
    const bool token_limited = token_limited_.load(std::memory_order_relaxed);
    if (token_limited && tokens_.load(std::memory_order_acquire) <= 0) {
      if (permit) breaker_->release();
      return Pass::kNoToken;
    }
    if (limiter_enabled_.load(std::memory_order_relaxed) && !limiter_.try_acquire()) {
      if (permit) breaker_->release();
      return Pass::kRateLimited;
    }
    if (token_limited) tokens_.fetch_sub(1, std::memory_order_acq_rel);
    if (capped) {
      capped_running_.fetch_add(1, std::memory_order_acq_rel);
      counted = true;
    }
    return permit ? Pass::kGoWithPermit : Pass::kGo;
  });
  t.capped = counted;
  if (t.first_park) {
    if (t.parked == Park::kRateLimit) {
      boost::asio::post(control_, [self = shared_from_this()] { self->arm_throttle(); });
    } else if (t.parked == Park::kToken) {
      journal_.journal.want_tokens(*name_);  // never waits
    } else if (breaker_->state() == CircuitState::kOpen) {
      // Open (or half-open with every probe out): nothing runs and no
      // attempt is used; the breaker's next transition wakes the parked.
      boost::asio::post(control_, [self = shared_from_this()] {
        self->breaker_->when_not_open([weak = self->weak_from_this()] {
          if (auto troupe = weak.lock()) troupe->unpark_breaker();
        });
      });
    }
  }
  if (!t.woken.empty()) wake(t.woken);
  if (t.retired) release({std::move(t.retired)});
  return t;
}

void Troupe::arm_throttle() {
  if (!throttle_timer_) throttle_timer_ = clock_.make_timer(control_);
  throttle_timer_->wait(limiter_.time_until_available(), [weak = weak_from_this()](bool fired) {
    if (!fired) return;
    if (auto self = weak.lock()) wake(self->dispatcher_.unpark(Park::kRateLimit));
  });
}

void Troupe::unpark_breaker() {
  wake(dispatcher_.unpark(Park::kBreaker));
}

void Troupe::breaker_recorded() {
  // Posted to the breaker's strand after record() so the result is applied
  // (and a half-open permit returned) before the parked actors look again.
  if (dispatcher_.parked_by_breaker()) {
    boost::asio::post(control_, [self = shared_from_this()] { self->unpark_breaker(); });
  }
}

void Troupe::attempt_started(const Job& job, std::chrono::steady_clock::time_point now) {
  obs_->queue_wait(Duration(to_ns(now) - job.enqueued_ns));
}

void Troupe::attempt_finished(FailureClass outcome, Duration run_time) {
  attempts_.fetch_add(1, std::memory_order_relaxed);
  obs_->attempt_finished(outcome, run_time);
  // A cheap moving average (1/8 weight) for retry-after hints; races between
  // actors only blur it.
  const auto old = mean_run_ns_.load(std::memory_order_relaxed);
  mean_run_ns_.store(old + (run_time.count() - old) / 8, std::memory_order_relaxed);
}

void Troupe::retry(const JobPtr& job, Duration backoff) {
  if (!retry_.schedule(job, backoff)) {
    lifecycle_.abort_waiting(job,
                             "aborted: the drain deadline passed while the job waited to retry");
  }
}

void Troupe::on_retry_due(const JobPtr& job) {
  if (follower_.load(std::memory_order_acquire)) {
    lifecycle_.hand_over(job);  // the singleton's lease was lost meanwhile
    return;
  }
  if (!lifecycle_.requeue(job, to_ns(clock_.now()))) return;  // cancelled meanwhile
  if (auto w = dispatcher_.requeue(job)) static_cast<Actor&>(*w).post_pump();
  if (dispatcher_.load().workers == 0) end_stranded();
}

CancelOutcome Troupe::cancel(const JobPtr& job) {
  auto r = lifecycle_.cancel(job);
  if (r.runner) {
    r.runner->post_cancel(job);
    return r.outcome;
  }
  if (!r.ended) return r.outcome;
  if (r.was == JobState::kRetryWait) retry_.forget(job->id);
  // Finish on a core thread: callbacks never run on the caller's thread.
  boost::asio::post(io_, [self = shared_from_this(), job, r = std::move(r)] {
    self->lifecycle_.cancelled(job, r);
  });
  return r.outcome;
}

void Troupe::close(std::function<void()> when_empty) {
  lifecycle_.gate().close(std::move(when_empty));
}

std::uint64_t Troupe::abort_all() {
  aborting_.store(true, std::memory_order_release);
  std::vector<JobPtr> waiting = dispatcher_.take_all();
  for (auto& job : retry_.close()) waiting.push_back(std::move(job));
  std::uint64_t aborted = 0;
  for (auto& job : waiting) {
    const bool queued = job->state.load(std::memory_order_acquire) == JobState::kQueued;
    if (lifecycle_.abort_waiting(
            job, queued ? "aborted: the drain deadline passed before the job started"
                        : "aborted: the drain deadline passed while the job waited to retry")) {
      ++aborted;
    }
  }
  for (auto& w : dispatcher_.workers()) static_cast<Actor&>(*w).post_abort();
  return aborted;
}

void Troupe::update(TroupeOptions options) {
  breaker_->update(options.circuit_breaker);
  limiter_.update(options.rate_limit);
  breaker_enabled_ = options.circuit_breaker.enabled;
  breaker_rejects_ = options.circuit_breaker.policy == CircuitBreakerOptions::OpenPolicy::kReject;
  limiter_enabled_ = options.rate_limit.enabled;
  lifecycle_.set_dead_letter_limits(options.dead_letter_capacity, options.dead_letter_max_bytes);
  max_timeout_ns_ = max_timeout(options).count();
  std::uint32_t add = 0;
  std::uint32_t remove = 0;
  bool arm = false;
  const auto live = dispatcher_.load().workers;
  {
    std::lock_guard lock(state_mutex_);
    const bool was_dynamic = config_->options.mode == TroupeMode::kDynamic;
    if (config_->options.handler != options.handler) ++handler_generation_;
    RetryPolicy retry(options.retry);
    config_ = std::make_shared<const TroupeConfig>(
        TroupeConfig{std::move(options), std::move(retry), handler_generation_});
    config_version_.fetch_add(1, std::memory_order_release);
    // A reload replaces the actors stopped by strategy `stop`: the operator
    // has had the chance to fix what crashed them.
    stopped_actors_ = 0;
    const auto& o = config_->options;
    const std::uint32_t target =
        o.mode == TroupeMode::kFixed ? o.max_actors : std::clamp(live, o.min_actors, o.max_actors);
    if (target > live) add = target - live;
    if (target < live) remove = live - target;
    arm = !was_dynamic && o.mode == TroupeMode::kDynamic;
    set_degraded_locked(!given_up_.empty());
  }
  const auto& o = config_->options;
  wake(dispatcher_.configure(o.dispatch, o.mailbox_capacity));
  if (remove > 0) release(dispatcher_.remove(remove, false).dropped);
  if (add > 0) add_actors(add);
  if (arm) boost::asio::post(control_, [self = shared_from_this()] { self->arm_autoscale(); });
}

void Troupe::set_degraded_locked(bool degraded) {
  if (degraded == degraded_locked_) return;
  degraded_locked_ = degraded;
  if (!degraded) degraded_cause_.clear();
  degraded_.store(degraded, std::memory_order_relaxed);
  // Under state_mutex_, so the gauge sees the changes in order.
  obs_->degraded_changed(degraded);
}

void Troupe::actor_gave_up(Actor& actor, const std::string& cause, Duration pause) {
  {
    std::lock_guard lock(state_mutex_);
    given_up_[&actor] = clock_.now() + pause;
    degraded_cause_ = cause;
    set_degraded_locked(true);
  }
  obs_->actor_gave_up(actor.index(), cause, pause);
}

void Troupe::actor_recovered(Actor& actor) {
  {
    std::lock_guard lock(state_mutex_);
    given_up_.erase(&actor);
    set_degraded_locked(!given_up_.empty() || stopped_actors_ > 0);
  }
  obs_->actor_recovered(actor.index());
}

void Troupe::actor_stopped(Actor& actor, const std::string& cause) {
  auto drop = dispatcher_.drop(actor);
  {
    std::lock_guard lock(state_mutex_);
    ++stopped_actors_;
    given_up_.erase(&actor);
    degraded_cause_ = cause;
    set_degraded_locked(true);
  }
  obs_->actor_gave_up(actor.index(), cause, Duration::zero());
  wake(drop.woken);
  release({std::move(drop.gone)});
  if (dispatcher_.load().workers == 0) end_stranded();
}

void Troupe::end_stranded() {
  // Strategy `stop` took the last actor: nothing will run what waits, so it
  // ends now rather than at a reload that may never come.
  {
    std::lock_guard lock(state_mutex_);
    if (stopped_actors_ == 0) return;  // scaled to zero, not stopped
  }
  const auto now_ns = to_ns(clock_.now());
  for (auto& job : dispatcher_.take_all()) {
    lifecycle_.end_unstarted(job, JobState::kFailed,
                             "troupe '" + *name_ +
                                 "' has no actor left (supervisor strategy stop); reload to "
                                 "restart it",
                             now_ns);
  }
}

void Troupe::actor_restarted() {
  restarts_.fetch_add(1, std::memory_order_relaxed);
  obs_->actor_restarted();
}

void Troupe::arm_autoscale() {
  if (stopped_.load(std::memory_order_acquire)) return;
  Duration interval;
  {
    std::lock_guard lock(state_mutex_);
    if (config_->options.mode != TroupeMode::kDynamic) return;
    interval = config_->options.autoscale.interval;
  }
  if (!autoscale_timer_) autoscale_timer_ = clock_.make_timer(control_);
  autoscale_timer_->wait(interval, [weak = weak_from_this()](bool fired) {
    if (!fired) return;
    if (auto self = weak.lock()) {
      self->autoscale_tick();
      self->arm_autoscale();
    }
  });
}

void Troupe::autoscale_tick() {
  const auto now = clock_.now();
  const auto d = dispatcher_.load();
  AutoscaleLoad load;
  load.live = d.workers;
  load.idle = d.idle;
  load.queued = d.queued;
  load.breaker_open =
      breaker_enabled_.load(std::memory_order_relaxed) && breaker_->state() == CircuitState::kOpen;
  load.draining = closed();
  std::shared_ptr<const TroupeConfig> config;
  {
    std::lock_guard lock(state_mutex_);
    config = config_;
    load.actors = d.workers + stopped_actors_;
  }
  const AutoscaleDecision decision = decide(config->options, load, now, last_scale_);
  if (decision.add > 0) {
    last_scale_ = now;
    add_actors(decision.add);
    obs_->autoscaled(ScaleDirection::kUp, load.actors + decision.add);
  } else if (decision.remove > 0) {
    auto removal = dispatcher_.remove(decision.remove, true);
    release(std::move(removal.dropped));
    if (removal.removed > 0) {
      last_scale_ = now;
      obs_->autoscaled(ScaleDirection::kDown, load.actors - removal.removed);
    }
  }
}

TroupeStatus Troupe::status() const {
  TroupeStatus s;
  s.name = *name_;
  const auto d = dispatcher_.load();
  s.actors = d.workers;
  s.actors_busy = d.workers - d.idle;
  s.mailbox_depth = d.queued;
  s.mailbox_capacity = d.capacity;
  {
    std::lock_guard lock(state_mutex_);
    const auto& o = config_->options;
    s.mode = o.mode;
    s.handler = describe(o.handler);
    s.min_actors = minimum_actor_count(o);
    s.max_actors = o.max_actors;
    s.degraded = degraded_locked_;
    s.degraded_cause = degraded_cause_;
    const auto given_up = static_cast<std::uint32_t>(given_up_.size());
    s.actors_running = d.workers > given_up ? d.workers - given_up : 0;
  }
  s.dead_letters = lifecycle_.dead_letter_count();
  s.circuit = breaker_->state();
  s.draining = closed();
  s.counters = lifecycle_.counters();
  s.counters.rejected = rejected_.load(std::memory_order_relaxed);
  s.counters.attempts = attempts_.load(std::memory_order_relaxed);
  s.counters.actor_restarts = restarts_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace troupe::core::detail
