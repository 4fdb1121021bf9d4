#include "core/job_lifecycle.h"

#include <utility>

#include "core/actor.h"

namespace troupe::core::detail {

JournalLink& JournalLink::none() {
  static const std::unique_ptr<Journal> journal = make_memory_journal();
  static JournalLink link(*journal);
  return link;
}

void JournalLink::after_durable_noting(std::function<void()> then) {
  journal.after_durable([this, then = std::move(then)](const JournalFailure* failure) {
    if (failure != nullptr) note_failure(*failure);
    then();
  });
}

bool JournalLink::outcome_settled_locked(const Job& job) const {
  if (!job.outcome_pending) return true;
  // Positions are compared in 32 bits, modulo: the store is never 2^31
  // entries behind an append. A job asked about that many entries after its
  // end reads as pending: it asks a barrier, which answers it.
  const auto durable = static_cast<std::uint32_t>(journal.durable_position());
  if (static_cast<std::int32_t>(durable - job.terminal_position) < 0) return false;
  job.outcome_pending = false;  // settled for good: no need to ask again
  return true;
}

JobLifecycle::JobLifecycle(Clock& clock, JobStore& store, TroupeObserver& observer,
                           LifecycleHost& host, JournalLink& journal)
    : clock_(clock),
      store_(store),
      obs_(observer),
      host_(host),
      journal_(journal),
      wall_offset_ns_(to_ns(clock.wall_now()) - to_ns(clock.now())) {}

void JobLifecycle::accepted(const JobPtr& job) {
  submitted_.fetch_add(1, std::memory_order_release);
  store_.add(job);
  obs_.job_submitted();
}

JournalAccepted JobLifecycle::accepted_entry(const Job& job) const {
  JournalAccepted e;
  e.id = job.id;
  e.troupe = *job.troupe_name;
  e.payload = job.payload;
  e.submitted_ns = job.submitted_ns;
  if (job.extras) {
    e.key = job.extras->key;
    e.idempotency_key = job.extras->idempotency_key;
    e.metadata = job.extras->metadata;
    if (job.extras->deadline) e.deadline_ns = to_ns(*job.extras->deadline);
    if (job.extras->attempt_timeout) e.attempt_timeout_ns = job.extras->attempt_timeout->count();
  }
  return e;
}

bool JobLifecycle::recovered(const JobPtr& job) {
  if (!gate_.enter()) return false;
  accepted(job);
  return true;
}

void JobLifecycle::handed_back() {
  submitted_.fetch_add(1, std::memory_order_release);
  left_.fetch_add(1, std::memory_order_release);
}

void JobLifecycle::recovered_terminal(const JobPtr& job) {
  store_.add(job);
  store_.finished(job, to_ns(clock_.now()));
  if (job->state.load(std::memory_order_relaxed) == JobState::kDead) keep_dead_letter(job);
}

void JobLifecycle::journal_terminal_locked(Job& job) {
  if (!journal_.durable) return;
  JournalTerminal e;
  e.id = job.id;
  e.state = job.state.load(std::memory_order_relaxed);
  e.failure = job.failure;
  e.attempts = job.attempts;
  e.output = job.output;
  e.started_ns = job.started_ns;
  e.finished_ns = job.finished_ns;
  const std::uint64_t position = journal_.journal.append(std::move(e));
  if (journal_.journal.shared()) {
    job.outcome_pending = true;
    job.terminal_position = static_cast<std::uint32_t>(position);
  }
}

bool JobLifecycle::start(const JobPtr& job, Actor* runner, std::int64_t now_ns,
                         std::uint32_t& attempt, bool& watched) {
  JobState was;
  {
    std::lock_guard lock(job->lock);
    was = job->state.load(std::memory_order_relaxed);
    if (job->left) return false;
    if (was == JobState::kQueued) {
      watched = job->listeners != nullptr;
      attempt = ++job->attempts;
      if (attempt == 1) job->started_ns = wall_ns(now_ns);
      job->runner = runner;
      job->state.store(JobState::kRunning, std::memory_order_release);
      if (journal_.durable) {
        journal_.journal.append(JournalStarted{job->id, attempt, wall_ns(now_ns)});
      }
      return true;
    }
  }
  if (!is_terminal(was)) refuse(*job, was, JobState::kRunning);
  return false;
}

bool JobLifecycle::end_unstarted(const JobPtr& job, JobState terminal, std::string reason,
                                 std::int64_t now_ns) {
  JobState was;
  {
    std::lock_guard lock(job->lock);
    was = job->state.load(std::memory_order_relaxed);
    if (was == JobState::kQueued && !job->left) {
      job->output = std::move(reason);
      job->finished_ns = wall_ns(now_ns);
      job->state.store(terminal, std::memory_order_release);
      journal_terminal_locked(*job);
    } else if (job->left) {
      return false;
    }
  }
  if (was != JobState::kQueued) {
    if (!is_terminal(was)) refuse(*job, was, terminal);
    return false;
  }
  finalize(job, terminal, was, now_ns);
  return true;
}

JobState JobLifecycle::attempt_ended(const JobPtr& job, AttemptEnd end, std::int64_t now_ns) {
  JobState was;
  JobState next = JobState::kRunning;
  bool watched = false;
  bool requeued = false;
  bool lost = false;
  bool handed = false;
  {
    std::lock_guard lock(job->lock);
    was = job->state.load(std::memory_order_relaxed);
    if (was == JobState::kRunning && job->left) {
      // Lost while it ran (another replica owns it): the outcome is
      // discarded and nothing is journaled.
      job->runner = nullptr;
      lost = true;
    } else if (was == JobState::kRunning &&
               (job->hand_over || (job->abort_requested && journal_.durable))) {
      // The drain deadline cancelled it, or it was handed over (a singleton
      // troupe no longer led here): requeued for the next start or the
      // holder, the interrupted attempt not counted against the job.
      handed = job->hand_over;
      job->runner = nullptr;
      if (job->attempts > 0) --job->attempts;
      job->left = true;
      job->state.store(JobState::kQueued, std::memory_order_release);
      journal_.journal.append(JournalRequeued{job->id, job->attempts});
      requeued = true;
    } else if (was == JobState::kRunning) {
      watched = job->listeners != nullptr;
      job->runner = nullptr;
      job->failure = end.failure;
      if (job->abort_requested) {
        next = JobState::kAborted;
        job->output = "aborted: the drain deadline passed while the job ran";
      } else if (job->cancel_requested) {
        next = JobState::kCancelled;
        job->output = "cancelled by request";
      } else if (end.success) {
        next = JobState::kSucceeded;
        job->output = std::move(end.output);
      } else {
        job->output = std::move(end.output);
        if (end.failure == FailureClass::kTimeout && job->output.empty()) {
          job->output = "attempt timed out";
        }
        next = end.retry       ? JobState::kRetryWait
               : end.retryable ? JobState::kDead
                               : JobState::kFailed;
      }
      if (is_terminal(next)) job->finished_ns = wall_ns(now_ns);
      job->state.store(next, std::memory_order_release);
      if (is_terminal(next)) {
        journal_terminal_locked(*job);
      } else if (journal_.durable) {
        journal_.journal.append(JournalRetryWait{job->id, job->attempts,
                                                 wall_ns(now_ns) + end.backoff.count(), job->output,
                                                 job->failure});
      }
    }
  }
  if (lost) {
    left_as_lost(job);
    return JobState::kQueued;
  }
  if (handed) {
    drop_waiters(job, true);
    left_here(job);
    return JobState::kQueued;
  }
  if (requeued) {
    left_for_next_start(job, true);
    return JobState::kQueued;
  }
  if (was != JobState::kRunning) {
    refuse(*job, was, end.success ? JobState::kSucceeded : JobState::kFailed);
    return JobState::kRunning;
  }
  if (is_terminal(next)) {
    finalize(job, next, was, now_ns);
  } else if (watched) {
    notify_watchers(job);
  }
  return next;
}

bool JobLifecycle::requeue(const JobPtr& job, std::int64_t now_ns) {
  JobState was;
  bool watched = false;
  bool left = false;
  {
    std::lock_guard lock(job->lock);
    was = job->state.load(std::memory_order_relaxed);
    left = job->left;
    if (was == JobState::kRetryWait && !left) {
      job->enqueued_ns = now_ns;
      job->state.store(JobState::kQueued, std::memory_order_release);
      watched = job->listeners != nullptr;
    }
  }
  if (was != JobState::kRetryWait || left) {
    if (!is_terminal(was) && was != JobState::kRetryWait) refuse(*job, was, JobState::kQueued);
    return false;
  }
  if (watched) notify_watchers(job);
  return true;
}

bool JobLifecycle::abort_waiting(const JobPtr& job, std::string reason) {
  const std::int64_t now_ns = to_ns(clock_.now());
  JobState was;
  {
    std::lock_guard lock(job->lock);
    was = job->state.load(std::memory_order_relaxed);
    if (was != JobState::kQueued && was != JobState::kRetryWait) return false;
    if (job->left) return false;
    if (journal_.durable) {
      // Left as journaled: it runs (or waits for its retry) after a restart.
      job->left = true;
    } else {
      job->output = std::move(reason);
      job->finished_ns = wall_ns(now_ns);
      job->state.store(JobState::kAborted, std::memory_order_release);
    }
  }
  if (journal_.durable) {
    left_for_next_start(job, false);
  } else {
    finalize(job, JobState::kAborted, was, now_ns);
  }
  return true;
}

void JobLifecycle::left_for_next_start(const JobPtr& job, bool running) {
  // Not terminal: no terminal counter; its waiters learn that it goes on
  // after the restart (or on another replica).
  drop_waiters(job);
  host_.drain_left(running);
  left_here(job);
}

void JobLifecycle::drop_waiters(const JobPtr& job, bool follow) {
  std::vector<JobCallback> dropped;
  {
    std::lock_guard lock(job->lock);
    if (job->listeners) dropped.swap(job->listeners->on_terminal);
  }
  if (follow && journal_.journal.shared()) {
    for (auto& cb : dropped) host_.follow_elsewhere(job->id, std::move(cb));
  }
  dropped.clear();  // uncalled, no lock held: a waiter learns the job went elsewhere
  end_watches(job);
}

void JobLifecycle::left_as_lost(const JobPtr& job) {
  host_.job_lost();
  // Its record here is stale from now on: it expires as a finished one
  // would (Runtime::find asks the store for a lost job).
  store_.finished(job, to_ns(clock_.now()));
  left_here(job);
}

void JobLifecycle::left_here(const JobPtr& job) {
  left_.fetch_add(1, std::memory_order_release);
  host_.job_ended(*job);
  gate_.leave();
}

JobLifecycle::LostResult JobLifecycle::lost(const JobPtr& job) {
  LostResult r;
  {
    std::lock_guard lock(job->lock);
    r.was = job->state.load(std::memory_order_relaxed);
    if (job->left) return r;
    if (is_terminal(r.was)) {
      // It ended here after the store had given it to another replica (a
      // replica paused past its lease: its fenced terminal write matched no
      // row). This outcome is not the job's: lookups ask the store from now
      // on. What ended here stays counted; its waiters have been answered.
      job->left = true;
      return r;
    }
    job->left = true;
    if (r.was == JobState::kRunning && job->runner != nullptr) r.runner = job->runner->self();
  }
  r.lost = true;
  drop_waiters(job, true);
  // A running one leaves when its attempt returns (attempt_ended).
  if (r.was != JobState::kRunning) left_as_lost(job);
  return r;
}

bool JobLifecycle::hand_over(const JobPtr& job, std::shared_ptr<Actor>* runner) {
  JobState was;
  {
    std::lock_guard lock(job->lock);
    was = job->state.load(std::memory_order_relaxed);
    if (is_terminal(was) || job->left || job->hand_over) return false;
    if (was == JobState::kRunning) {
      job->hand_over = true;
      if (runner != nullptr && job->runner != nullptr) *runner = job->runner->self();
      return true;  // leaves when its attempt returns (attempt_ended)
    }
    job->left = true;
    journal_.journal.append(JournalRequeued{job->id, job->attempts});
  }
  drop_waiters(job, true);
  left_here(job);
  return true;
}

void JobLifecycle::accepted_and_handed_over(const Job& job) {
  journal_.journal.append(accepted_entry(job));
  journal_.journal.append(JournalRequeued{job.id, 0});
  handed_back();
}

void JobLifecycle::end_watches(const JobPtr& job) {
  JobListeners* listeners;
  {
    std::lock_guard lock(job->lock);
    listeners = job->listeners.get();
  }
  if (listeners == nullptr) return;
  std::vector<JobListeners::Watcher> ended;
  {
    // Under `notify`: a delivery in progress finishes first, none follows.
    std::lock_guard notify(listeners->notify);
    ended.swap(listeners->watchers);
  }
  for (auto& w : ended) host_.watch_moved(job->id, std::move(w));
}

bool JobLifecycle::request_abort(const JobPtr& job) {
  std::lock_guard lock(job->lock);
  if (job->state.load(std::memory_order_relaxed) != JobState::kRunning) return false;
  if (job->abort_requested) return false;
  job->abort_requested = true;
  return true;
}

JobLifecycle::CancelResult JobLifecycle::cancel(const JobPtr& job) {
  CancelResult r;
  const std::int64_t now_ns = to_ns(clock_.now());  // not under the job's lock
  {
    std::lock_guard lock(job->lock);
    r.was = job->state.load(std::memory_order_relaxed);
    if (is_terminal(r.was) || job->left) {
      r.outcome.job = job->snapshot_locked();
      return r;
    }
    r.outcome.cancelled = true;
    if (r.was == JobState::kRunning) {
      job->cancel_requested = true;
      if (job->runner != nullptr) r.runner = job->runner->self();
    } else {
      r.now_ns = now_ns;
      job->failure = FailureClass::kCancelled;
      job->output = "cancelled by request";
      job->finished_ns = wall_ns(r.now_ns);
      job->state.store(JobState::kCancelled, std::memory_order_release);
      journal_terminal_locked(*job);
      r.ended = true;
    }
    r.outcome.job = job->snapshot_locked();
  }
  return r;
}

void JobLifecycle::cancelled(const JobPtr& job, const CancelResult& r) {
  if (r.ended) finalize(job, JobState::kCancelled, r.was, r.now_ns);
}

void JobLifecycle::finalize(const JobPtr& job, JobState terminal, JobState from,
                            std::int64_t now_ns) {
  switch (terminal) {
    case JobState::kSucceeded:
      succeeded_.fetch_add(1, std::memory_order_release);
      break;
    case JobState::kFailed:
      failed_.fetch_add(1, std::memory_order_release);
      break;
    case JobState::kDead:
      dead_.fetch_add(1, std::memory_order_release);
      keep_dead_letter(job);
      break;
    case JobState::kCancelled:
      cancelled_.fetch_add(1, std::memory_order_release);
      break;
    case JobState::kAborted:
      aborted_.fetch_add(1, std::memory_order_release);
      host_.drain_ended(from == JobState::kRunning);
      break;
    default:
      break;
  }
  store_.finished(job, now_ns);
  obs_.job_completed(terminal);

  std::vector<JobCallback> callbacks;
  bool has_listeners = false;
  {
    std::lock_guard lock(job->lock);
    if (job->listeners) {
      callbacks.swap(job->listeners->on_terminal);
      has_listeners = true;
    }
  }
  // A job nobody waits for asks no barrier: whoever asks about it later
  // finds whether its outcome is settled (JournalLink::outcome_settled_locked).
  if (has_listeners) tell_terminal(job, std::move(callbacks));
  host_.job_ended(*job);
  // Last: a drain or a removal waiting on the gate sees this job ended only
  // after everything above has run.
  gate_.leave();
}

void JobLifecycle::tell_terminal(const JobPtr& job, std::vector<JobCallback> callbacks) {
  if (!journal_.journal.shared()) {
    if (callbacks.empty() || !journal_.durable) return deliver_terminal(job, std::move(callbacks));
    // One process: the outcome is this process's. Watchers are told now (a
    // terminal notification ends them: the delivery below finds none); a
    // submitter waiting for the end once the terminal entry is durable (a
    // wait=true answer promises a durable outcome: Runtime::submit).
    notify_watchers(job);
  }
  // A shared store may refuse the terminal write (fencing): the outcome is
  // told once it committed, and only if it was this replica's. The write is
  // appended under the job's lock as its state turns terminal, so a barrier
  // asked for by whoever saw the terminal state covers it.
  host_.when_durable([this, job, callbacks = std::move(callbacks)]() mutable {
    deliver_terminal(job, std::move(callbacks));
  });
}

void JobLifecycle::deliver_terminal(const JobPtr& job, std::vector<JobCallback> callbacks) {
  bool left;
  {
    std::lock_guard lock(job->lock);
    left = job->left;
    job->outcome_pending = false;  // settled: the outcome here, or the store's
  }
  if (left) {
    for (auto& cb : callbacks) host_.follow_elsewhere(job->id, std::move(cb));
    end_watches(job);
    return;
  }
  if (!callbacks.empty()) {
    const JobRecord record = job->snapshot();
    for (auto& cb : callbacks) cb(record);
  }
  notify_watchers(job);
}

void JobLifecycle::refuse(const Job& job, JobState from, JobState to) {
  illegal_.fetch_add(1, std::memory_order_relaxed);
  obs_.illegal_transition(job.id, from, to);
}

void JobLifecycle::notify_watchers(const JobPtr& job) {
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
      host_.watch_ended(w.id);
    }
    return;
  }
  // Copies: a callback may unwatch (and so erase from the vector).
  std::vector<JobCallback> calls;
  calls.reserve(due.size());
  for (auto& d : due) calls.push_back(*d.second);
  for (auto& cb : calls) cb(record);
}

TroupeCounters JobLifecycle::counters() const {
  TroupeCounters c;
  // Read in this order, each counter rises before the one read earlier
  // falls, so even under load submitted <= ended + in_flight (a job is
  // counted in flight before it is counted submitted, and counted ended
  // before it leaves in_flight).
  c.submitted = submitted_.load(std::memory_order_acquire);
  c.in_flight = gate_.count();
  c.succeeded = succeeded_.load(std::memory_order_acquire);
  c.failed = failed_.load(std::memory_order_acquire);
  c.dead = dead_.load(std::memory_order_acquire);
  c.cancelled = cancelled_.load(std::memory_order_acquire);
  c.aborted = aborted_.load(std::memory_order_acquire);
  c.left = left_.load(std::memory_order_acquire);
  c.illegal_transitions = illegal_.load(std::memory_order_relaxed);
  return c;
}

void JobLifecycle::set_dead_letter_limits(std::size_t count, std::size_t bytes) {
  std::lock_guard lock(dead_mutex_);
  dead_limit_ = count;
  dead_bytes_limit_ = bytes;
  trim_dead_letters_locked();
}

void JobLifecycle::trim_dead_letters_locked() {
  // Oldest first; a dead job's payload and output no longer change.
  while (!dead_letters_.empty() &&
         (dead_letters_.size() > dead_limit_ || dead_bytes_ > dead_bytes_limit_)) {
    const auto& j = dead_letters_.back();
    dead_bytes_ -= j->payload.size() + j->output.size();
    dead_letters_.pop_back();
  }
}

void JobLifecycle::keep_dead_letter(const JobPtr& job) {
  // Terminal: payload and output no longer change.
  const std::size_t bytes = job->payload.size() + job->output.size();
  std::lock_guard lock(dead_mutex_);
  if (dead_limit_ == 0 || bytes > dead_bytes_limit_) return;
  dead_letters_.push_front(job);
  dead_bytes_ += bytes;
  trim_dead_letters_locked();
}

std::vector<JobRecord> JobLifecycle::dead_jobs(std::size_t limit) const {
  std::vector<JobPtr> jobs;
  {
    std::lock_guard lock(dead_mutex_);
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

std::size_t JobLifecycle::dead_letter_count() const {
  std::lock_guard lock(dead_mutex_);
  return dead_letters_.size();
}

}  // namespace troupe::core::detail
