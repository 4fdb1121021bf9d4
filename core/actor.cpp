#include "core/actor.h"

#include <boost/asio/post.hpp>
#include <exception>

#include "core/backoff.h"
#include "core/failure_policy.h"
#include "core/troupe.h"

namespace troupe::core::detail {

namespace {
// Jobs one actor runs in a single strand turn before it re-posts itself, so
// a stream of synchronous handlers cannot monopolise an io thread.
constexpr int kBatch = 64;
}  // namespace

Actor::Actor(std::shared_ptr<Troupe> troupe, Strand strand, std::uint32_t index)
    : troupe_(*troupe),
      troupe_alive_(std::move(troupe)),
      strand_(std::move(strand)),
      index_(index) {}

Actor::~Actor() = default;

void Actor::post_pump() {
  boost::asio::post(strand_, [self = shared_from_this()] { self->pump(); });
}

void Actor::release(std::shared_ptr<Actor> actor) {
  Strand strand = actor->strand_;
  boost::asio::post(strand, [a = std::move(actor)]() mutable { a.reset(); });
}

void Actor::post_cancel(const JobPtr& job) {
  boost::asio::post(strand_, [self = shared_from_this(), job] {
    if (self->current_ == job) self->signal_.emit(boost::asio::cancellation_type::terminal);
  });
}

void Actor::post_abort() {
  boost::asio::post(strand_, [self = shared_from_this()] {
    if (!self->current_) return;
    {
      std::lock_guard lock(self->current_->lock);
      if (self->current_->abort_requested) return;
      self->current_->abort_requested = true;
    }
    self->troupe_.host().drain_ended(true);
    self->signal_.emit(boost::asio::cancellation_type::terminal);
  });
}

Timer& Actor::timer() {
  if (!timer_) timer_ = troupe_.clock().make_timer(strand_);
  return *timer_;
}

void Actor::pump() {
  for (int n = 0; n < kBatch; ++n) {
    if (restarting_ || stopped_ || current_) return;
    bool permit = false;
    std::shared_ptr<Actor> chain;
    JobPtr job = troupe_.take(*this, permit, chain);
    if (chain) chain->post_pump();
    if (!job) return;
    if (!run_job(std::move(job), permit)) return;
  }
  post_pump();
}

bool Actor::run_job(JobPtr job, bool breaker_permit) {
  const TroupeConfig& config = *config_;
  Clock& clock = troupe_.clock();
  const auto now = clock.now();
  const std::int64_t now_ns = to_ns(now);
  const bool deadline_passed =
      job->extras && job->extras->deadline && clock.wall_now() > *job->extras->deadline;

  JobState terminal = JobState::kQueued;
  std::uint32_t attempt = 0;
  bool watched = false;
  {
    std::lock_guard lock(job->lock);
    if (job->state.load(std::memory_order_relaxed) != JobState::kQueued) {
      // Cancelled between the queue and here: it was finalised by cancel().
      if (breaker_permit) troupe_.breaker().release();
      return true;
    }
    if (troupe_.aborting()) {
      troupe_.host().drain_ended(false);
      terminal = JobState::kAborted;
      job->output = "aborted: the drain deadline passed before the job started";
    } else if (deadline_passed) {
      // Checked before every attempt, never while one runs (docs/api.md).
      terminal = JobState::kFailed;
      job->output = job->attempts == 0 ? "deadline passed before the job started"
                                       : "deadline passed before attempt " +
                                             std::to_string(job->attempts + 1) + " started";
    }
    if (terminal != JobState::kQueued) {
      job->finished_ns = troupe_.wall_ns(now_ns);
      job->state.store(terminal, std::memory_order_release);
    } else {
      watched = job->listeners != nullptr;
      attempt = ++job->attempts;
      if (attempt == 1) job->started_ns = troupe_.wall_ns(now_ns);
      job->runner = this;
      job->state.store(JobState::kRunning, std::memory_order_release);
    }
  }
  if (terminal != JobState::kQueued) {
    if (breaker_permit) troupe_.breaker().release();
    troupe_.complete(job, terminal, now_ns);
    return true;
  }

  troupe_.attempt_started(*job, now);
  if (watched) Troupe::notify_watchers(job, troupe_.host());
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
                           signal_.slot()};
  in_start_ = true;
  try {
    // A new handler generation (reload) takes effect between attempts.
    if (handler_generation_ != config.handler_generation || !handler_) {
      handler_.reset();
      handler_ = make_handler(config.options.handler, strand_, clock);
      handler_generation_ = config.handler_generation;
    }
    handler_->start(ctx, [this, seq](AttemptResult r) { on_done(seq, std::move(r)); });
  } catch (const std::exception& e) {
    // The supervisor's boundary: a throwing handler is a crash of this
    // actor, never of the daemon.
    if (!inline_result_) {
      inline_result_ =
          AttemptResult::failed(FailureClass::kCrash, std::string("handler threw: ") + e.what());
    }
  } catch (...) {
    if (!inline_result_) {
      inline_result_ =
          AttemptResult::failed(FailureClass::kCrash, "handler threw an exception of unknown type");
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
  boost::asio::post(strand_, [self = shared_from_this(), seq, r = std::move(result)]() mutable {
    self->complete_async(seq, std::move(r));
  });
}

void Actor::complete_async(std::uint32_t seq, AttemptResult result) {
  if (seq != seq_ || !current_) return;  // stale: a completion after its attempt ended
  finish_attempt(std::move(result));
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
  const TroupeConfig& config = *config_;
  const Verdict verdict = classify(outcome, config.options.retry, config.options.circuit_breaker);
  troupe_.attempt_finished(outcome, run_time);

  bool cancelled = false;
  bool retry = false;
  JobState next = JobState::kQueued;
  std::uint32_t attempts = 0;
  {
    std::lock_guard lock(job->lock);
    job->runner = nullptr;
    attempts = job->attempts;
    job->failure = outcome;
    if (job->abort_requested) {
      next = JobState::kAborted;
      job->output = "aborted: the drain deadline passed while the job ran";
      cancelled = true;
    } else if (job->cancel_requested) {
      next = JobState::kCancelled;
      job->output = "cancelled by request";
      cancelled = true;
    } else if (verdict.success) {
      next = JobState::kSucceeded;
      job->output = std::move(result.output);
    } else {
      job->output = std::move(result.output);
      if (outcome == FailureClass::kTimeout && job->output.empty()) {
        job->output = "attempt timed out";
      }
      if (config.retry.should_retry(verdict, attempts)) {
        next = JobState::kRetryWait;
        retry = true;
      } else {
        next = verdict.retryable ? JobState::kDead : JobState::kFailed;
      }
    }
    if (is_terminal(next)) job->finished_ns = troupe_.wall_ns(end_ns);
    job->state.store(next, std::memory_order_release);
  }

  if (permit_) {
    permit_ = false;
    if (cancelled && outcome == FailureClass::kCancelled) {
      troupe_.breaker().release();
    } else {
      troupe_.breaker().record(verdict.breaker_failure, run_time);
    }
    troupe_.breaker_recorded();
  }
  if (retry) {
    troupe_.schedule_retry(job, troupe_.retry_backoff(config, attempts, result.retry_after));
  } else {
    troupe_.complete(job, next, end_ns);
  }
  if (outcome == FailureClass::kCrash) supervise();
}

void Actor::supervise() {
  const SupervisorOptions& options = config_->options.supervisor;
  switch (options.strategy) {
    case SupervisorOptions::Strategy::kResume:
      return;
    case SupervisorOptions::Strategy::kStop:
      stopped_ = true;
      handler_.reset();
      troupe_.actor_stopped(*this);
      return;
    case SupervisorOptions::Strategy::kRestart:
      break;
  }
  const auto now = troupe_.clock().now();
  std::erase_if(restarts_, [&](auto t) { return now - t >= options.window; });
  if (restarts_.size() >= options.max_restarts) {
    stopped_ = true;
    handler_.reset();
    troupe_.actor_stopped(*this);
    return;
  }
  const auto n = static_cast<std::uint32_t>(restarts_.size());
  restarts_.push_back(now);
  restarting_ = true;
  handler_.reset();
  timer().wait(troupe_.restart_backoff(options, n), [this](bool fired) {
    if (!fired) return;
    restart_now();
  });
}

void Actor::restart_now() {
  restarting_ = false;
  try {
    handler_ = make_handler(config_->options.handler, strand_, troupe_.clock());
    handler_generation_ = config_->handler_generation;
  } catch (const std::exception&) {
    // A handler that cannot even be built is not worth restarting again.
    stopped_ = true;
    troupe_.actor_stopped(*this);
    return;
  }
  troupe_.actor_restarted();
  pump();
}

}  // namespace troupe::core::detail
