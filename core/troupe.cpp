#include "core/troupe.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <functional>

#include "core/backoff.h"
#include "core/handler.h"

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
               JobStore& store, TroupeHost& host, const std::string* name)
    : io_(io),
      clock_(clock),
      store_(store),
      host_(host),
      name_(name),
      control_(boost::asio::make_strand(io.get_executor())),
      observer_(observer.troupe_added(*name)),
      obs_(observer_.get()),
      limiter_(options.rate_limit, clock),
      wall_offset_ns_(to_ns(clock.wall_now()) - to_ns(clock.now())),
      rng_(std::random_device{}()) {
  breaker_enabled_ = options.circuit_breaker.enabled;
  breaker_rejects_ = options.circuit_breaker.policy == CircuitBreakerOptions::OpenPolicy::kReject;
  limiter_enabled_ = options.rate_limit.enabled;
  max_timeout_ns_ = max_timeout(options).count();
  // The breaker's transitions wake actors that went idle waiting for it.
  breaker_ = std::make_unique<CircuitBreaker>(options.circuit_breaker, control_, clock,
                                              [this, obs = observer_](CircuitState to) {
                                                obs->circuit_changed(to);
                                                if (to != CircuitState::kOpen) wake_gated();
                                              });
  RetryPolicy retry(options.retry);
  config_ = std::make_shared<const TroupeConfig>(
      TroupeConfig{std::move(options), std::move(retry), handler_generation_});
}

Troupe::~Troupe() = default;

void Troupe::start() {
  add_actors(initial_actor_count(config_->options));
  if (config_->options.mode == TroupeMode::kDynamic) {
    boost::asio::post(control_, [self = shared_from_this()] { self->arm_autoscale(); });
  }
}

void Troupe::shutdown() {
  std::vector<std::shared_ptr<Actor>> actors;
  {
    std::lock_guard lock(mutex_);
    stopped_.store(true, std::memory_order_release);
    actors.swap(actors_);
    idle_.clear();
  }
  // Each actor holds the troupe: destroyed on its own strand after whatever
  // it runs now, the last one frees the troupe with its handlers (their
  // keep-alive sockets) and dead letters, once nothing can reach it.
  for (auto& a : actors) Actor::release(std::move(a));
  boost::asio::post(control_, [self = shared_from_this()] {
    if (self->autoscale_timer_) self->autoscale_timer_->cancel();
    if (self->throttle_timer_) self->throttle_timer_->cancel();
    for (auto& [id, timer] : self->retry_timers_) timer->cancel();
  });
}

std::shared_ptr<Actor> Troupe::make_actor() {
  std::uint32_t index;
  {
    std::lock_guard lock(mutex_);
    index = next_actor_index_++;
  }
  return std::make_shared<Actor>(shared_from_this(), boost::asio::make_strand(io_.get_executor()),
                                 index);
}

void Troupe::add_actors(std::uint32_t n) {
  std::vector<std::shared_ptr<Actor>> fresh;
  fresh.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i) fresh.push_back(make_actor());
  bool recovered = false;
  {
    std::lock_guard lock(mutex_);
    if (stopped_.load(std::memory_order_relaxed)) {
      // Shut down meanwhile (an auto-scaler tick raced it): they would keep
      // the troupe alive for good.
      for (auto& a : fresh) Actor::release(std::move(a));
      return;
    }
    for (auto& a : fresh) {
      a->config_ = config_;
      a->config_version_ = config_version_;
      actors_.push_back(a);
    }
    update_capacity_locked();
    report_actors_locked();
    // Degraded ends once the troupe runs its minimum of actors again (the
    // replacements a reload starts, or new ones from the autoscaler).
    if (degraded_ && actors_.size() >= minimum_actor_count(config_->options)) {
      degraded_ = false;
      recovered = true;
    }
  }
  if (recovered) obs_->degraded_changed(false);
  // A new actor starts busy (not in the idle list) and looks for work at
  // once: it either takes a queued job or parks itself as idle.
  for (auto& a : fresh) a->post_pump();
}

std::uint32_t Troupe::total_actors_locked() const {
  return static_cast<std::uint32_t>(actors_.size()) + stopped_actors_;
}

void Troupe::update_capacity_locked() {
  capacity_ = static_cast<std::uint64_t>(actors_.size()) * config_->options.mailbox_capacity;
  report_mailbox_locked();
}

void Troupe::report_mailbox_locked() {
  // Under mutex_, so the gauge's updates are in the order of the changes
  // (set outside it, a stale depth could be written last and stay).
  obs_->mailbox(queued_, capacity_);
}

void Troupe::report_actors_locked() {
  const auto total = static_cast<std::uint32_t>(actors_.size());
  const auto busy = total - static_cast<std::uint32_t>(idle_.size());
  obs_->actors(total, busy);
}

std::variant<Accepted, Rejection> Troupe::submit(JobRequest&& request, JobCallback on_terminal) {
  if (request.attempt_timeout) {
    const Duration cap(max_timeout_ns_.load(std::memory_order_relaxed));
    if (*request.attempt_timeout > cap) {
      // The daemon words it (it formats durations as the config does).
      Rejection r = reject(RejectReason::kTimeoutOverMax, {}, std::chrono::milliseconds(0));
      r.limit = cap;
      return r;
    }
  }
  if (draining()) {
    return reject(RejectReason::kDraining,
                  "troupe '" + *name_ +
                      "' is draining and accepts no new jobs; retry on another "
                      "instance",
                  std::chrono::milliseconds(0));
  }
  if (breaker_enabled_.load(std::memory_order_relaxed) &&
      breaker_rejects_.load(std::memory_order_relaxed) &&
      breaker_->state() == CircuitState::kOpen) {
    return reject(RejectReason::kCircuitOpen,
                  "the circuit breaker of troupe '" + *name_ +
                      "' is open after repeated failures; retry after the hinted delay",
                  to_ms_ceil(breaker_->time_until_half_open()));
  }
  if (!store_.has_room(request.payload.size())) {
    return reject(RejectReason::kFull,
                  "the job store is full of unfinished jobs; retry later or raise "
                  "job_store.max_jobs / max_bytes",
                  std::chrono::milliseconds(1000));
  }

  auto job = std::make_shared<Job>();
  job->id = host_.next_id();
  job->troupe_name = name_;
  job->troupe = this;
  job->payload = std::move(request.payload);
  if (!request.key.empty() || !request.idempotency_key.empty() || !request.metadata.empty() ||
      request.attempt_timeout || request.deadline) {
    job->extras = std::make_unique<JobExtras>();
    job->extras->key = std::move(request.key);
    job->extras->idempotency_key = std::move(request.idempotency_key);
    job->extras->metadata = std::move(request.metadata);
    job->extras->attempt_timeout = request.attempt_timeout;
    job->extras->deadline = request.deadline;
  }
  if (on_terminal) {
    job->listeners = std::make_unique<JobListeners>();
    job->listeners->on_terminal.push_back(std::move(on_terminal));
  }
  job->enqueued_ns = to_ns(clock_.now());
  job->submitted_ns = wall_ns(job->enqueued_ns);

  std::shared_ptr<Actor> wake;
  {
    std::lock_guard lock(mutex_);
    const bool by_key = config_->options.dispatch == DispatchStrategy::kKey && job->keyed();
    Actor* owner = nullptr;
    bool full = queued_ >= capacity_;
    if (!full && by_key) {
      owner = route_key_locked(job->key());
      full = owner == nullptr || owner->keyed_.size() >= config_->options.mailbox_capacity;
    }
    if (full) {
      if (by_key) {
        auto it = keys_.find(job->key());
        if (it != keys_.end() && it->second.pending == 0) keys_.erase(it);
      }
      const bool throttled = throttled_;
      const auto per_actor = std::max<std::uint64_t>(actors_.size(), 1);
      const auto hint = throttled ? limiter_.time_until_available()
                                  : Duration(mean_run_ns_.load(std::memory_order_relaxed) *
                                             static_cast<std::int64_t>(queued_ / per_actor + 1));
      // Leave the lock before calling the observer.
      mutex_.unlock();
      auto r = throttled
                   ? reject(RejectReason::kRateLimited,
                            "troupe '" + *name_ +
                                "' is rate limited and its queue is full; retry after the hinted "
                                "delay",
                            std::max(to_ms_ceil(hint), std::chrono::milliseconds(1)))
                   : reject(RejectReason::kFull,
                            "troupe '" + *name_ +
                                "' is full (every mailbox is at capacity); retry after the "
                                "hinted delay or raise mailbox_capacity / max_actors",
                            std::clamp(to_ms_ceil(hint), std::chrono::milliseconds(1),
                                       std::chrono::milliseconds(30000)));
      mutex_.lock();
      return r;
    }
    counters_.submitted.fetch_add(1, std::memory_order_relaxed);
    if (by_key) {
      keys_[job->key()].pending++;
      owner->keyed_.push_back(job);
      ++queued_;
      if (owner->idle_ && !gated_ && !throttled_) wake = claim_idle_locked(*owner);
    } else {
      queue_.push_back(job);
      ++queued_;
      // One woken actor at a time: it wakes the next if work remains (see
      // take()), so a burst of submits costs one post, not one per job.
      if (!idle_.empty() && waking_ == 0 && !gated_ && !throttled_) wake = pick_idle_locked();
    }
    report_mailbox_locked();
  }
  store_.add(job);
  if (wake) wake->post_pump();
  obs_->job_submitted();
  return Accepted{job->id, false};
}

Rejection Troupe::reject(RejectReason reason, std::string message,
                         std::chrono::milliseconds after) {
  counters_.rejected.fetch_add(1, std::memory_order_relaxed);
  obs_->job_rejected(reason);
  return Rejection{reason, std::move(message), after};
}

Actor* Troupe::route_key_locked(const std::string& key) {
  auto it = keys_.find(key);
  if (it != keys_.end() && it->second.pending > 0 && it->second.actor != nullptr) {
    return it->second.actor;
  }
  if (actors_.empty()) return nullptr;
  Actor* a = actors_[std::hash<std::string>{}(key) % actors_.size()].get();
  if (a->retiring_) {
    for (auto& other : actors_) {
      if (!other->retiring_) {
        a = other.get();
        break;
      }
    }
  }
  keys_[key].actor = a;
  return a;
}

void Troupe::release_key_locked(const std::string& key) {
  auto it = keys_.find(key);
  if (it == keys_.end()) return;
  if (it->second.pending > 0) --it->second.pending;
  if (it->second.pending == 0) keys_.erase(it);
}

std::shared_ptr<Actor> Troupe::pick_idle_locked() {
  if (idle_.empty()) return nullptr;
  std::size_t pos = idle_.size() - 1;  // least-loaded: most recently idle
  if (config_->options.dispatch == DispatchStrategy::kRoundRobin) {
    // The idle actor that comes next after the cursor in actor order.
    std::uint32_t best_distance = ~0u;
    for (std::size_t i = 0; i < idle_.size(); ++i) {
      const std::uint32_t d = idle_[i]->index() - rr_cursor_;
      if (d < best_distance) {
        best_distance = d;
        pos = i;
      }
    }
    rr_cursor_ = idle_[pos]->index() + 1;
  }
  return wake_idle_at_locked(pos);
}

std::shared_ptr<Actor> Troupe::wake_idle_at_locked(std::size_t pos) {
  Actor* a = idle_[pos];
  idle_[pos] = idle_.back();
  idle_.pop_back();
  a->idle_ = false;
  a->woken_ = true;
  ++waking_;
  report_actors_locked();  // one more busy actor
  return a->shared_from_this();
}

std::shared_ptr<Actor> Troupe::claim_idle_locked(Actor& actor) {
  auto it = std::find(idle_.begin(), idle_.end(), &actor);
  if (it == idle_.end()) return nullptr;
  return wake_idle_at_locked(static_cast<std::size_t>(it - idle_.begin()));
}

std::vector<std::shared_ptr<Actor>> Troupe::wake_locked(std::uint64_t n) {
  std::vector<std::shared_ptr<Actor>> woken;
  // Actors with keyed work first: they are the only ones that can run it.
  for (std::size_t i = 0; i < idle_.size();) {
    if (!idle_[i]->keyed_.empty()) {
      woken.push_back(wake_idle_at_locked(i));  // moves the last idle actor to i
    } else {
      ++i;
    }
  }
  const std::uint64_t shared = queue_.size();
  for (std::uint64_t i = 0; i < std::min(n, shared) && !idle_.empty(); ++i) {
    woken.push_back(pick_idle_locked());
  }
  return woken;
}

void Troupe::go_idle_locked(Actor& actor) {
  // Shut down: the actor is on its way out (idle_ must not point at it).
  if (actor.idle_ || stopped_.load(std::memory_order_relaxed)) return;
  actor.idle_ = true;
  idle_.push_back(&actor);
  report_actors_locked();
}

JobPtr Troupe::take(Actor& actor, bool& breaker_permit, std::shared_ptr<Actor>& chain) {
  breaker_permit = false;
  std::lock_guard lock(mutex_);
  if (actor.woken_) {
    actor.woken_ = false;
    --waking_;
  }
  if (actor.config_version_ != config_version_) {
    actor.config_ = config_;
    actor.config_version_ = config_version_;
  }
  if (actor.retiring_) {
    retire_locked(actor);
    return nullptr;
  }
  for (;;) {
    RingQueue<JobPtr>* q = !actor.keyed_.empty() ? &actor.keyed_
                           : !queue_.empty()     ? &queue_
                                                 : nullptr;
    if (q == nullptr) {
      go_idle_locked(actor);
      return nullptr;
    }
    if (q->front()->state.load(std::memory_order_acquire) != JobState::kQueued) {
      q->pop_front();  // cancelled or aborted while queued: already finalised
      --queued_;
      report_mailbox_locked();
      continue;
    }
    if (breaker_enabled_.load(std::memory_order_relaxed)) {
      if (!breaker_->try_acquire()) {
        // Open (or half-open with every probe out): nothing runs and no
        // attempt is used; a breaker transition or a probe's result wakes
        // the idle actors again.
        go_idle_locked(actor);
        gated_ = true;
        if (!hold_armed_ && breaker_->state() == CircuitState::kOpen) {
          hold_armed_ = true;
          boost::asio::post(control_, [self = shared_from_this()] {
            self->breaker_->when_not_open([weak = self->weak_from_this()] {
              if (auto t = weak.lock()) t->wake_gated();
            });
          });
        }
        return nullptr;
      }
      breaker_permit = true;
    }
    if (limiter_enabled_.load(std::memory_order_relaxed) && !limiter_.try_acquire()) {
      if (breaker_permit) breaker_->release();
      breaker_permit = false;
      go_idle_locked(actor);
      throttled_ = true;
      if (!throttle_armed_) {
        throttle_armed_ = true;
        boost::asio::post(control_, [self = shared_from_this()] { self->arm_throttle(); });
      }
      return nullptr;
    }
    JobPtr job = q->pop_front();
    --queued_;
    report_mailbox_locked();
    // Chain wake: more shared work and an idle actor, and nobody on the way
    // to take it. This keeps "no job waits while an actor is idle" with one
    // wake in flight at a time.
    if (!queue_.empty() && waking_ == 0 && !idle_.empty()) chain = pick_idle_locked();
    return job;
  }
}

void Troupe::arm_throttle() {
  if (!throttle_timer_) throttle_timer_ = clock_.make_timer(control_);
  throttle_timer_->wait(limiter_.time_until_available(), [weak = weak_from_this()](bool fired) {
    if (!fired) return;
    auto self = weak.lock();
    if (!self) return;
    std::vector<std::shared_ptr<Actor>> woken;
    {
      std::lock_guard lock(self->mutex_);
      self->throttled_ = false;
      self->throttle_armed_ = false;
      woken = self->wake_locked(self->queued_);
    }
    for (auto& a : woken) a->post_pump();
  });
}

void Troupe::wake_gated() {
  std::vector<std::shared_ptr<Actor>> woken;
  {
    std::lock_guard lock(mutex_);
    hold_armed_ = false;
    if (!gated_) return;
    gated_ = false;
    woken = wake_locked(queued_);
  }
  for (auto& a : woken) a->post_pump();
}

void Troupe::breaker_recorded() {
  // Posted to the breaker's strand after record() so the result is applied
  // (and a half-open permit returned) before the idle actors look again.
  bool gated;
  {
    std::lock_guard lock(mutex_);
    gated = gated_;
  }
  if (gated) {
    boost::asio::post(control_, [self = shared_from_this()] { self->wake_gated(); });
  }
}

void Troupe::attempt_started(const Job& job, std::chrono::steady_clock::time_point now) {
  obs_->queue_wait(Duration(to_ns(now) - job.enqueued_ns));
}

bool Troupe::watched(const Job& job) {
  std::lock_guard lock(job.lock);
  return job.listeners != nullptr;
}

void Troupe::attempt_finished(FailureClass outcome, Duration run_time) {
  counters_.attempts.fetch_add(1, std::memory_order_relaxed);
  obs_->attempt_finished(outcome, run_time);
  // A cheap moving average (1/8 weight) for retry-after hints; races between
  // actors only blur it.
  const auto old = mean_run_ns_.load(std::memory_order_relaxed);
  mean_run_ns_.store(old + (run_time.count() - old) / 8, std::memory_order_relaxed);
}

Duration Troupe::retry_backoff(const TroupeConfig& config, std::uint32_t attempts,
                               std::optional<Duration> retry_after) {
  std::lock_guard lock(mutex_);
  return config.retry.backoff(attempts, retry_after, rng_);
}

Duration Troupe::restart_backoff(const SupervisorOptions& options, std::uint32_t n) {
  std::lock_guard lock(mutex_);
  return exponential_backoff(options.backoff_initial, options.backoff_max, 2.0, n, true, rng_);
}

void Troupe::complete(const JobPtr& job, JobState terminal, std::int64_t now_ns) {
  if (now_ns == 0) now_ns = to_ns(clock_.now());
  switch (terminal) {
    case JobState::kSucceeded:
      counters_.succeeded.fetch_add(1, std::memory_order_release);
      break;
    case JobState::kFailed:
      counters_.failed.fetch_add(1, std::memory_order_release);
      break;
    case JobState::kDead:
      counters_.dead.fetch_add(1, std::memory_order_release);
      break;
    case JobState::kCancelled:
      counters_.cancelled.fetch_add(1, std::memory_order_release);
      break;
    case JobState::kAborted:
      counters_.aborted.fetch_add(1, std::memory_order_release);
      break;
    default:
      break;
  }
  store_.finished(job, now_ns);
  if (terminal == JobState::kDead || job->keyed()) {
    std::lock_guard lock(mutex_);
    if (terminal == JobState::kDead) {
      dead_letters_.push_front(job);
      while (dead_letters_.size() > config_->options.dead_letter_capacity) {
        dead_letters_.pop_back();
      }
    }
    if (job->keyed()) release_key_locked(job->key());
  }
  obs_->job_completed(terminal);

  std::vector<JobCallback> callbacks;
  bool has_listeners = false;
  {
    std::lock_guard lock(job->lock);
    if (job->listeners) {
      callbacks.swap(job->listeners->on_terminal);
      has_listeners = true;
    }
  }
  if (!callbacks.empty()) {
    const JobRecord record = job->snapshot();
    for (auto& cb : callbacks) cb(record);
  }
  if (has_listeners) notify_watchers(job, host_);
  host_.job_terminal(*this);
}

void Troupe::notify_watchers(const JobPtr& job, TroupeHost& host) {
  JobListeners* listeners;
  {
    std::lock_guard lock(job->lock);
    listeners = job->listeners.get();
  }
  if (listeners == nullptr) return;
  std::lock_guard notify(listeners->notify);
  if (listeners->watchers.empty()) return;
  // Snapshot under `notify`: deliveries are ordered, and two notifications
  // that raced to the same state deliver it once.
  const JobRecord record = job->snapshot();
  std::vector<std::pair<WatchId, JobCallback*>> due;
  for (auto& w : listeners->watchers) {
    if (w.last_state == record.state && w.last_attempts == record.attempts) continue;
    w.last_state = record.state;
    w.last_attempts = record.attempts;
    due.emplace_back(w.id, &w.callback);
  }
  if (is_terminal(record.state)) {
    auto ended = std::move(listeners->watchers);
    listeners->watchers.clear();
    for (auto& w : ended) {
      for (auto& d : due) {
        if (d.first == w.id) w.callback(record);
      }
      host.watch_ended(w.id);
    }
    return;
  }
  // Copies: a callback may unwatch (and so erase from the vector).
  std::vector<JobCallback> calls;
  calls.reserve(due.size());
  for (auto& d : due) calls.push_back(*d.second);
  for (auto& cb : calls) cb(record);
}

void Troupe::schedule_retry(const JobPtr& job, Duration backoff) {
  {
    std::lock_guard lock(mutex_);
    if (!aborting()) {
      retry_waiting_.emplace(job->id.value, job);
    } else {
      backoff = Duration::min();
    }
  }
  if (backoff == Duration::min()) {
    host_.drain_ended(false);
    {
      std::lock_guard lock(job->lock);
      job->output = "aborted: the drain deadline passed while the job waited to retry";
      job->finished_ns = wall_ns(to_ns(clock_.now()));
      job->state.store(JobState::kAborted, std::memory_order_release);
    }
    complete(job, JobState::kAborted);
    return;
  }
  if (watched(*job)) notify_watchers(job, host_);
  boost::asio::post(control_, [self = shared_from_this(), job, backoff] {
    auto& timer = self->retry_timers_[job->id.value];
    timer = self->clock_.make_timer(self->control_);
    timer->wait(backoff, [weak = self->weak_from_this(), job](bool fired) {
      if (!fired) return;
      auto t = weak.lock();
      if (!t) return;
      t->retry_timers_.erase(job->id.value);
      std::shared_ptr<Actor> wake;
      bool requeued = false;
      {
        std::lock_guard lock(t->mutex_);
        if (t->retry_waiting_.erase(job->id.value) == 0) return;  // cancelled or aborted
        {
          std::lock_guard job_lock(job->lock);
          if (job->state.load(std::memory_order_relaxed) == JobState::kRetryWait) {
            job->state.store(JobState::kQueued, std::memory_order_release);
            job->enqueued_ns = to_ns(t->clock_.now());
            requeued = true;
          }
        }
        if (requeued) t->enqueue_locked(job, wake);
      }
      if (wake) wake->post_pump();
      if (requeued && watched(*job)) notify_watchers(job, t->host_);
    });
  });
}

void Troupe::enqueue_locked(JobPtr job, std::shared_ptr<Actor>& wake) {
  // Re-entry of an accepted job (a retry): it is never refused for capacity.
  const bool by_key = config_->options.dispatch == DispatchStrategy::kKey && job->keyed();
  Actor* owner = by_key ? route_key_locked(job->key()) : nullptr;
  if (owner != nullptr) {
    owner->keyed_.push_back(std::move(job));
    ++queued_;
    if (owner->idle_ && !gated_ && !throttled_) wake = claim_idle_locked(*owner);
  } else {
    queue_.push_back(std::move(job));
    ++queued_;
    if (waking_ == 0 && !gated_ && !throttled_) wake = pick_idle_locked();
  }
  report_mailbox_locked();
}

CancelOutcome Troupe::cancel(const JobPtr& job) {
  CancelOutcome out;
  std::shared_ptr<Actor> runner;
  JobState was;
  {
    std::lock_guard lock(job->lock);
    was = job->state.load(std::memory_order_relaxed);
    if (is_terminal(was)) {
      out.job = job->snapshot_locked();
      return out;
    }
    out.cancelled = true;
    if (was == JobState::kRunning) {
      job->cancel_requested = true;
      if (job->runner != nullptr) runner = job->runner->shared_from_this();
    } else {
      job->failure = FailureClass::kCancelled;
      job->output = "cancelled by request";
      job->finished_ns = wall_ns(to_ns(clock_.now()));
      job->state.store(JobState::kCancelled, std::memory_order_release);
    }
    out.job = job->snapshot_locked();
  }
  if (runner) {
    runner->post_cancel(job);
    return out;
  }
  // Finalise on a core thread: callbacks never run on the caller's thread.
  boost::asio::post(io_, [self = shared_from_this(), job, was] {
    if (was == JobState::kRetryWait) {
      {
        std::lock_guard lock(self->mutex_);
        self->retry_waiting_.erase(job->id.value);
      }
      boost::asio::post(self->control_, [self, job] {
        auto it = self->retry_timers_.find(job->id.value);
        if (it != self->retry_timers_.end()) {
          it->second->cancel();
          self->retry_timers_.erase(it);
        }
      });
    }
    self->complete(job, JobState::kCancelled);
  });
  return out;
}

void Troupe::begin_drain() {
  draining_.store(true, std::memory_order_release);
}

std::uint64_t Troupe::abort_all() {
  std::vector<JobPtr> waiting;
  std::vector<std::shared_ptr<Actor>> actors;
  {
    std::lock_guard lock(mutex_);
    aborting_.store(true, std::memory_order_release);
    while (!queue_.empty()) waiting.push_back(queue_.pop_front());
    for (auto& a : actors_) {
      while (!a->keyed_.empty()) waiting.push_back(a->keyed_.pop_front());
      actors.push_back(a);
    }
    queued_ = 0;
    report_mailbox_locked();
    for (auto& [id, job] : retry_waiting_) waiting.push_back(job);
    retry_waiting_.clear();
  }
  boost::asio::post(control_, [self = shared_from_this()] {
    for (auto& [id, timer] : self->retry_timers_) timer->cancel();
    self->retry_timers_.clear();
  });
  std::uint64_t aborted = 0;
  const auto now = wall_ns(to_ns(clock_.now()));
  for (auto& job : waiting) {
    bool mine = false;
    {
      std::lock_guard lock(job->lock);
      const JobState s = job->state.load(std::memory_order_relaxed);
      if (s == JobState::kQueued || s == JobState::kRetryWait) {
        job->output = s == JobState::kQueued
                          ? "aborted: the drain deadline passed before the job started"
                          : "aborted: the drain deadline passed while the job waited to retry";
        job->finished_ns = now;
        job->state.store(JobState::kAborted, std::memory_order_release);
        mine = true;
      }
    }
    if (mine) {
      ++aborted;
      host_.drain_ended(false);
      complete(job, JobState::kAborted);
    }
  }
  for (auto& a : actors) a->post_abort();
  return aborted;
}

void Troupe::update(TroupeOptions options) {
  breaker_->update(options.circuit_breaker);
  limiter_.update(options.rate_limit);
  breaker_enabled_ = options.circuit_breaker.enabled;
  breaker_rejects_ = options.circuit_breaker.policy == CircuitBreakerOptions::OpenPolicy::kReject;
  limiter_enabled_ = options.rate_limit.enabled;
  max_timeout_ns_ = max_timeout(options).count();
  std::uint32_t add = 0;
  std::vector<std::shared_ptr<Actor>> woken;
  {
    std::lock_guard lock(mutex_);
    const bool was_dynamic = config_->options.mode == TroupeMode::kDynamic;
    if (config_->options.handler != options.handler) ++handler_generation_;
    RetryPolicy retry(options.retry);
    config_ = std::make_shared<const TroupeConfig>(
        TroupeConfig{std::move(options), std::move(retry), handler_generation_});
    ++config_version_;
    // A reload replaces the actors that stopped after too many restarts:
    // the operator has had the chance to fix what crashed them.
    stopped_actors_ = 0;
    const auto& o = config_->options;
    const std::uint32_t total = total_actors_locked();
    const std::uint32_t target =
        o.mode == TroupeMode::kFixed ? o.max_actors : std::clamp(total, o.min_actors, o.max_actors);
    if (target > total) add = target - total;
    if (target < total) remove_actors_locked(total - target, false);
    update_capacity_locked();
    if (!was_dynamic && o.mode == TroupeMode::kDynamic) {
      boost::asio::post(control_, [self = shared_from_this()] { self->arm_autoscale(); });
    }
    // Actors parked behind a gate re-check it under the new options.
    woken = wake_locked(queued_);
  }
  for (auto& a : woken) a->post_pump();
  if (add > 0) add_actors(add);
}

std::uint32_t Troupe::remove_actors_locked(std::uint32_t n, bool idle_only) {
  std::uint32_t removed = 0;
  // Idle actors with nothing routed to them go at once.
  for (std::size_t i = idle_.size(); i-- > 0 && removed < n;) {
    Actor* a = idle_[i];
    if (!a->keyed_.empty()) continue;
    idle_.erase(idle_.begin() + static_cast<std::ptrdiff_t>(i));
    a->idle_ = false;
    drop_actor_locked(*a);
    ++removed;
  }
  if (idle_only) return removed;
  // Busy ones leave after their current job; their keyed jobs move then.
  for (auto it = actors_.rbegin(); it != actors_.rend() && removed < n; ++it) {
    if ((*it)->retiring_ || (*it)->idle_) continue;
    (*it)->retiring_ = true;
    ++removed;
  }
  return removed;
}

void Troupe::drop_actor_locked(Actor& actor) {
  for (auto it = actors_.begin(); it != actors_.end(); ++it) {
    if (it->get() == &actor) {
      std::shared_ptr<Actor> gone = std::move(*it);
      actors_.erase(it);
      for (auto& [key, owner] : keys_) {
        if (owner.actor == &actor) owner.actor = nullptr;
      }
      update_capacity_locked();
      report_actors_locked();
      Actor::release(std::move(gone));
      return;
    }
  }
}

void Troupe::move_keyed_jobs_locked(Actor& from) {
  // Pinned keys move to a remaining actor, with their queued jobs in order;
  // nothing of this key runs on `from` any more, so order is preserved.
  std::vector<std::shared_ptr<Actor>> woken;
  while (!from.keyed_.empty()) {
    JobPtr job = from.keyed_.pop_front();
    auto it = keys_.find(job->key());
    Actor* target = nullptr;
    for (auto& a : actors_) {
      if (a.get() != &from && !a->retiring_) {
        if (target == nullptr ||
            std::hash<std::string>{}(job->key()) % actors_.size() == a->index() % actors_.size()) {
          target = a.get();
        }
      }
    }
    if (it != keys_.end() && it->second.actor != nullptr && it->second.actor != &from) {
      target = it->second.actor;
    }
    if (target == nullptr) {
      queue_.push_back(std::move(job));  // no actor left: it waits in the shared queue
      continue;
    }
    if (it != keys_.end()) it->second.actor = target;
    target->keyed_.push_back(std::move(job));
    if (target->idle_) {
      if (auto w = claim_idle_locked(*target)) w->post_pump();
    }
  }
}

void Troupe::retire_locked(Actor& actor) {
  move_keyed_jobs_locked(actor);
  drop_actor_locked(actor);
}

void Troupe::actor_stopped(Actor& actor) {
  bool newly_degraded = false;
  {
    std::lock_guard lock(mutex_);
    move_keyed_jobs_locked(actor);
    ++stopped_actors_;
    newly_degraded = !degraded_;
    degraded_ = true;
    drop_actor_locked(actor);
  }
  if (newly_degraded) obs_->degraded_changed(true);
}

void Troupe::actor_restarted() {
  counters_.restarts.fetch_add(1, std::memory_order_relaxed);
  obs_->actor_restarted();
}

void Troupe::arm_autoscale() {
  if (stopped_.load(std::memory_order_acquire)) return;
  Duration interval;
  {
    std::lock_guard lock(mutex_);
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
  std::uint32_t add = 0;
  std::uint32_t removed = 0;
  std::uint32_t now_total = 0;
  const auto now = clock_.now();
  const bool breaker_open =
      breaker_enabled_.load(std::memory_order_relaxed) && breaker_->state() == CircuitState::kOpen;
  {
    std::lock_guard lock(mutex_);
    const auto& o = config_->options;
    if (o.mode != TroupeMode::kDynamic || draining()) return;
    const auto& a = o.autoscale;
    if (last_scale_ && now - *last_scale_ < a.cooldown) return;
    const std::uint32_t total = total_actors_locked();
    const double live = static_cast<double>(std::max<std::size_t>(actors_.size(), 1));
    const double mean = static_cast<double>(queued_) / live;
    const double busy = static_cast<double>(actors_.size() - idle_.size()) / live;
    if (mean > a.high_threshold && !breaker_open && total < o.max_actors) {
      add = std::min(a.scale_up_step, o.max_actors - total);
      now_total = total + add;
    } else if (mean < a.low_threshold && busy < a.low_busy_ratio && total > o.min_actors) {
      removed = remove_actors_locked(std::min(a.scale_down_step, total - o.min_actors), true);
      now_total = total - removed;
    }
    if (add > 0 || removed > 0) last_scale_ = now;
  }
  if (add > 0) {
    add_actors(add);
    obs_->autoscaled(ScaleDirection::kUp, now_total);
  } else if (removed > 0) {
    obs_->autoscaled(ScaleDirection::kDown, now_total);
  }
}

TroupeStatus Troupe::status() const {
  TroupeStatus s;
  s.name = *name_;
  {
    std::lock_guard lock(mutex_);
    const auto& o = config_->options;
    s.mode = o.mode;
    s.handler = describe(o.handler);
    s.actors = static_cast<std::uint32_t>(actors_.size());
    s.actors_busy = static_cast<std::uint32_t>(actors_.size() - idle_.size());
    s.min_actors = minimum_actor_count(o);
    s.max_actors = o.max_actors;
    s.mailbox_depth = queued_;
    s.mailbox_capacity = capacity_;
    s.degraded = degraded_;
    s.dead_letters = dead_letters_.size();
  }
  s.circuit = breaker_->state();
  s.draining = draining();
  auto& c = s.counters;
  // Terminal counts first, then submitted: a job is counted as submitted
  // before it can end, so in_flight never underflows.
  c.succeeded = counters_.succeeded.load(std::memory_order_acquire);
  c.failed = counters_.failed.load(std::memory_order_acquire);
  c.dead = counters_.dead.load(std::memory_order_acquire);
  c.cancelled = counters_.cancelled.load(std::memory_order_acquire);
  c.aborted = counters_.aborted.load(std::memory_order_acquire);
  c.submitted = counters_.submitted.load(std::memory_order_acquire);
  c.in_flight = c.submitted - c.succeeded - c.failed - c.dead - c.cancelled - c.aborted;
  c.rejected = counters_.rejected.load(std::memory_order_relaxed);
  c.attempts = counters_.attempts.load(std::memory_order_relaxed);
  c.actor_restarts = counters_.restarts.load(std::memory_order_relaxed);
  return s;
}

std::uint64_t Troupe::in_flight() const {
  const auto done = counters_.succeeded.load(std::memory_order_acquire) +
                    counters_.failed.load(std::memory_order_acquire) +
                    counters_.dead.load(std::memory_order_acquire) +
                    counters_.cancelled.load(std::memory_order_acquire) +
                    counters_.aborted.load(std::memory_order_acquire);
  return counters_.submitted.load(std::memory_order_acquire) - done;
}

std::vector<JobRecord> Troupe::dead_jobs(std::size_t limit) const {
  std::vector<JobPtr> jobs;
  {
    std::lock_guard lock(mutex_);
    for (const auto& j : dead_letters_) {
      if (jobs.size() >= limit) break;
      jobs.push_back(j);
    }
  }
  std::vector<JobRecord> out;
  out.reserve(jobs.size());
  for (const auto& j : jobs) out.push_back(j->snapshot());
  return out;
}

}  // namespace troupe::core::detail
