#include "core/actor.h"

#include <boost/asio/post.hpp>
#include <exception>

#include "core/failure_policy.h"
#include "core/troupe.h"

namespace troupe::core::detail {

namespace {
// Jobs one actor runs in a single strand turn before it re-posts itself, so
// a stream of synchronous handlers cannot monopolise an io thread.
constexpr int kBatch = 64;

std::string describe_exception(const char* what_failed) {
  try {
    throw;
  } catch (const std::exception& e) {
    return std::string(what_failed) + ": " + e.what();
  } catch (...) {
    return std::string(what_failed) + ": an exception of unknown type";
  }
}
}  // namespace

Actor::Actor(std::shared_ptr<Troupe> troupe, Strand strand, std::uint32_t index)
    : Worker(index),
      troupe_(*troupe),
      troupe_alive_(std::move(troupe)),
      strand_(std::move(strand)),
      rng_(std::random_device{}()) {}

Actor::~Actor() = default;

void Actor::post_pump() {
  boost::asio::post(strand_, [self = self()] { self->pump(); });
}

void Actor::release(std::shared_ptr<Actor> actor) {
  Strand strand = actor->strand_;
  boost::asio::post(strand, [a = std::move(actor)]() mutable {
    if (a->current_) {
      // An attempt still runs (a troupe shut down undrained): its handler
      // answers the cancellation into this actor, which must outlive it.
      // The actor keeps itself until then (complete_async lets it go).
      a->released_ = a;
      a->signal_.emit(boost::asio::cancellation_type::terminal);
      return;
    }
    a.reset();
  });
}

void Actor::post_cancel(const JobPtr& job) {
  boost::asio::post(strand_, [self = self(), job] {
    if (self->current_ == job) self->signal_.emit(boost::asio::cancellation_type::terminal);
  });
}

void Actor::post_abort() {
  boost::asio::post(strand_, [self = self()] {
    if (!self->current_) return;
    if (self->troupe_.lifecycle().request_abort(self->current_)) {
      self->signal_.emit(boost::asio::cancellation_type::terminal);
    }
  });
}

void Actor::post_hand_over() {
  boost::asio::post(strand_, [self = self()] {
    if (!self->current_) return;
    if (self->troupe_.lifecycle().hand_over(self->current_)) {
      self->signal_.emit(boost::asio::cancellation_type::terminal);
    }
  });
}

Timer& Actor::timer() {
  if (!timer_) timer_ = troupe_.clock().make_timer(strand_);
  return *timer_;
}

void Actor::refresh_config() {
  if (auto c = troupe_.config_if_changed(config_version_)) config_ = std::move(c);
}

void Actor::pump() {
  for (int n = 0; n < kBatch; ++n) {
    if (restarting_ || stopped_ || current_) return;
    auto t = troupe_.take(*this);
    if (t.chain) static_cast<Actor&>(*t.chain).post_pump();
    if (!t.job) return;
    capped_ = t.capped;
    if (!run_job(std::move(t.job), t.breaker_permit)) return;
  }
  post_pump();
}

bool Actor::run_job(JobPtr job, bool breaker_permit) {
  refresh_config();
  const TroupeConfig& config = *config_;
  Clock& clock = troupe_.clock();
  JobLifecycle& lifecycle = troupe_.lifecycle();
  const auto now = clock.now();
  const std::int64_t now_ns = to_ns(now);

  bool ended = false;
  if (troupe_.follower()) {
    lifecycle.hand_over(job);  // a singleton's lease was lost after the job was queued
    ended = true;
  } else if (troupe_.aborting()) {
    // ABORTED, or left for the next start with a durable journal.
    lifecycle.abort_waiting(job, "aborted: the drain deadline passed before the job started");
    ended = true;
  } else if (job->extras && job->extras->deadline && clock.wall_now() > *job->extras->deadline) {
    // Checked before every attempt, never while one runs (docs/api.md).
    std::uint32_t done;
    {
      std::lock_guard lock(job->lock);  // attempts is the lifecycle's, read under the job's lock
      done = job->attempts;
    }
    lifecycle.end_unstarted(
        job, JobState::kFailed,
        done == 0 ? "deadline passed before the job started"
                  : "deadline passed before attempt " + std::to_string(done + 1) + " started",
        now_ns);
    ended = true;
  }
  std::uint32_t attempt = 0;
  bool watched = false;
  if (ended || !lifecycle.start(job, this, now_ns, attempt, watched)) {
    // Ended before it started (or cancelled between the queue and here).
    if (breaker_permit) troupe_.breaker().release();
    if (capped_) {
      capped_ = false;
      troupe_.capped_attempt_done();
    }
    return true;
  }

  troupe_.attempt_started(*job, now);
  if (watched) lifecycle.notify_watchers(job);
  current_ = std::move(job);
  permit_ = breaker_permit;
  timed_out_ = false;
  attempt_started_ = now;
  const std::uint32_t seq = ++seq_;
  const Duration timeout = current_->extras && current_->extras->attempt_timeout
                               ? *current_->extras->attempt_timeout
                               : config.options.timeout;
  const AttemptContext ctx{current_->id,      *current_->troupe_name, attempt,
                           current_->payload, current_->metadata(),   timeout,
                           signal_.slot(),    troupe_.fence_term()};
  in_start_ = true;
  try {
    // A new handler generation (reload) takes effect between attempts.
    if (handler_generation_ != config.handler_generation || !handler_) {
      handler_.reset();
      handler_ = troupe_.build_handler(config.options.handler, strand_);
      handler_generation_ = config.handler_generation;
    }
    handler_->start(ctx, [this, seq](AttemptResult r) { on_done(seq, std::move(r)); });
  } catch (...) {
    // The supervisor's boundary: a throwing handler is a crash of this
    // actor, never of the daemon.
    if (!inline_result_) {
      inline_result_ =
          AttemptResult::failed(FailureClass::kCrash, describe_exception("handler threw"));
    }
  }
  in_start_ = false;
  if (inline_result_) {
    AttemptResult r = std::move(*inline_result_);
    inline_result_.reset();
    finish_attempt(std::move(r));
    return !restarting_ && !stopped_;
  }
  timer_armed_ = true;
  timer().wait(timeout, [this, seq](bool fired) {
    // Checked before touching `this`: a cancelled wait may be delivered
    // after the actor is gone.
    if (!fired) return;
    timer_armed_ = false;
    if (seq != seq_ || !current_) return;
    timed_out_ = true;
    signal_.emit(boost::asio::cancellation_type::terminal);
  });
  return false;
}

void Actor::on_done(std::uint32_t seq, AttemptResult result) {
  if (strand_.running_in_this_thread()) {
    if (in_start_ && seq == seq_) {
      inline_result_ = std::move(result);
      return;
    }
    complete_async(seq, std::move(result));
    return;
  }
  boost::asio::post(strand_, [self = self(), seq, r = std::move(result)]() mutable {
    self->complete_async(seq, std::move(r));
  });
}

void Actor::complete_async(std::uint32_t seq, AttemptResult result) {
  if (seq != seq_ || !current_) return;  // stale: a completion after its attempt ended
  finish_attempt(std::move(result));
  if (released_) {
    release(std::move(released_));
    return;
  }
  pump();
}

void Actor::finish_attempt(AttemptResult result) {
  if (timer_armed_) {
    timer_armed_ = false;
    timer_->cancel();
  }
  signal_.slot().clear();
  JobPtr job = std::move(current_);
  current_.reset();
  const auto end = troupe_.clock().now();
  const std::int64_t end_ns = to_ns(end);
  const auto run_time = end - attempt_started_;
  FailureClass outcome = result.failure;
  if (timed_out_ && outcome != FailureClass::kNone) outcome = FailureClass::kTimeout;
  troupe_.attempt_finished(outcome, run_time);
  std::uint32_t attempts;
  {
    std::lock_guard lock(job->lock);  // attempts is the lifecycle's, read under the job's lock
    attempts = job->attempts;
  }
  auto [verdict, attempt] = judge_attempt(*config_, outcome, attempts, result.retry_after, rng_,
                                          std::move(result.output));
  const Duration backoff = attempt.backoff;
  const JobState next = troupe_.lifecycle().attempt_ended(job, std::move(attempt), end_ns);

  if (permit_) {
    permit_ = false;
    // kQueued: the drain deadline requeued it for the next start (durable journal).
    const bool ended_by_request =
        next == JobState::kCancelled || next == JobState::kAborted || next == JobState::kQueued;
    if (ended_by_request && outcome == FailureClass::kCancelled) {
      troupe_.breaker().release();
    } else {
      troupe_.breaker().record(verdict.breaker_failure, run_time);
    }
    troupe_.breaker_recorded();
  }
  if (capped_) {
    capped_ = false;
    troupe_.capped_attempt_done();
  }
  if (next == JobState::kRetryWait) {
    troupe_.retry(job, backoff);
  }
  if (outcome == FailureClass::kCrash) supervise();
}

void Actor::supervise() {
  const auto decision =
      supervisor_.on_crash(config_->options.supervisor, troupe_.clock().now(), rng_);
  apply(decision, "restart limit exceeded (" +
                      std::to_string(config_->options.supervisor.max_restarts) +
                      " restarts within the supervisor window): its handler keeps crashing");
}

void Actor::apply(const SupervisorDecision& decision, const std::string& cause) {
  using Action = SupervisorDecision::Action;
  switch (decision.action) {
    case Action::kResume:
      return;
    case Action::kStop:
      stopped_ = true;
      handler_.reset();
      troupe_.actor_stopped(*this, "actor " + std::to_string(index()) +
                                       " stopped (supervisor strategy stop): " +
                                       (cause.empty() ? "its handler crashed" : cause));
      return;
    case Action::kRestart:
    case Action::kGiveUp:
      break;
  }
  const bool give_up = decision.action == Action::kGiveUp;
  if (give_up) troupe_.actor_gave_up(*this, cause, decision.wait);
  restarting_ = true;
  handler_.reset();
  timer().wait(decision.wait, [this, give_up](bool fired) {
    if (!fired) return;
    restart_now(give_up);
  });
}

void Actor::restart_now(bool recovering) {
  restarting_ = false;
  refresh_config();
  try {
    handler_ = troupe_.build_handler(config_->options.handler, strand_);
    handler_generation_ = config_->handler_generation;
  } catch (...) {
    // Reported, never swallowed: the operator sees why the actor is out.
    const std::string cause = describe_exception("its handler could not be rebuilt");
    apply(supervisor_.on_rebuild_failed(config_->options.supervisor, troupe_.clock().now()), cause);
    return;
  }
  troupe_.actor_restarted();
  if (recovering) troupe_.actor_recovered(*this);
  pump();
}

}  // namespace troupe::core::detail
