#include "core/dispatcher.h"

#include <algorithm>
#include <functional>

namespace troupe::core::detail {

Dispatcher::Dispatcher(DispatchStrategy strategy, std::uint32_t mailbox_capacity,
                       DispatchGauges& gauges)
    : gauges_(gauges), strategy_(strategy), mailbox_capacity_(mailbox_capacity) {}

Dispatcher::Admission Dispatcher::admit(JobPtr job, const std::function<void()>& on_queued,
                                        bool force) {
  Admission a;
  std::lock_guard lock(mutex_);
  const bool by_key = strategy_ == DispatchStrategy::kKey && job->keyed();
  Worker* owner = nullptr;
  bool full = !force && queued_ >= capacity_;
  if (!full && by_key) {
    owner = route_key_locked(job->key());
    full = owner == nullptr || (!force && owner->keyed_.size() >= mailbox_capacity_);
  }
  a.throttled = throttled_;
  a.workers = static_cast<std::uint32_t>(workers_.size());
  a.capacity = capacity_;
  if (full) {
    if (by_key) {
      auto it = keys_.find(job->key());
      if (it != keys_.end() && it->second.pending == 0) keys_.erase(it);
    }
    a.depth = queued_;
    return a;
  }
  a.queued = true;
  if (on_queued) on_queued();
  if (by_key) {
    keys_[job->key()].pending++;
    owner->keyed_.push_back(std::move(job));
    ++queued_;
    if (owner->idle_ && !parked_locked()) a.wake = claim_idle_locked(*owner);
  } else {
    queue_.push_back(std::move(job));
    ++queued_;
    // One woken worker at a time: it wakes the next if work remains (see
    // take()), so a burst of submits costs one wake, not one per job.
    if (!idle_.empty() && waking_ == 0 && !parked_locked()) a.wake = pick_idle_locked();
  }
  a.depth = queued_;
  report_mailbox_locked();
  return a;
}

WorkerPtr Dispatcher::requeue(JobPtr job) {
  WorkerPtr wake;
  std::lock_guard lock(mutex_);
  const bool by_key = strategy_ == DispatchStrategy::kKey && job->keyed();
  Worker* owner = by_key ? route_key_locked(job->key()) : nullptr;
  if (owner != nullptr) {
    owner->keyed_.push_back(std::move(job));
    ++queued_;
    if (owner->idle_ && !parked_locked()) wake = claim_idle_locked(*owner);
  } else {
    queue_.push_back(std::move(job));
    ++queued_;
    if (waking_ == 0 && !parked_locked()) wake = pick_idle_locked();
  }
  report_mailbox_locked();
  return wake;
}

Worker* Dispatcher::route_key_locked(const std::string& key) {
  auto it = keys_.find(key);
  if (it != keys_.end() && it->second.pending > 0 && it->second.worker != nullptr) {
    return it->second.worker;
  }
  if (workers_.empty()) return nullptr;
  Worker* w = workers_[std::hash<std::string>{}(key) % workers_.size()].get();
  if (w->retiring_) {
    for (auto& other : workers_) {
      if (!other->retiring_) {
        w = other.get();
        break;
      }
    }
  }
  keys_[key].worker = w;
  return w;
}

void Dispatcher::release_key_locked(const std::string& key) {
  auto it = keys_.find(key);
  if (it == keys_.end()) return;
  if (it->second.pending > 0) --it->second.pending;
  if (it->second.pending == 0) keys_.erase(it);
}

void Dispatcher::pin(const Job& job) {
  if (!job.keyed()) return;
  std::lock_guard lock(mutex_);
  if (strategy_ != DispatchStrategy::kKey) return;
  if (route_key_locked(job.key()) == nullptr) return;
  keys_[job.key()].pending++;
}

void Dispatcher::job_ended(const Job& job) {
  if (!job.keyed()) return;
  std::lock_guard lock(mutex_);
  release_key_locked(job.key());
}

WorkerPtr Dispatcher::pick_idle_locked() {
  if (idle_.empty()) return nullptr;
  std::size_t pos = idle_.size() - 1;  // least-loaded: most recently idle
  if (strategy_ == DispatchStrategy::kRoundRobin) {
    // The idle worker that comes next after the cursor in worker order.
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

WorkerPtr Dispatcher::wake_idle_at_locked(std::size_t pos) {
  Worker* w = idle_[pos];
  idle_[pos] = idle_.back();
  idle_.pop_back();
  w->idle_ = false;
  w->woken_ = true;
  ++waking_;
  report_actors_locked();  // one more busy worker
  return w->shared_from_this();
}

WorkerPtr Dispatcher::claim_idle_locked(Worker& worker) {
  auto it = std::find(idle_.begin(), idle_.end(), &worker);
  if (it == idle_.end()) return nullptr;
  return wake_idle_at_locked(static_cast<std::size_t>(it - idle_.begin()));
}

std::vector<WorkerPtr> Dispatcher::wake_locked(std::uint64_t n) {
  std::vector<WorkerPtr> woken;
  // Workers with keyed work first: they are the only ones that can run it.
  for (std::size_t i = 0; i < idle_.size();) {
    if (!idle_[i]->keyed_.empty()) {
      woken.push_back(wake_idle_at_locked(i));  // moves the last idle worker to i
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

void Dispatcher::go_idle_locked(Worker& worker) {
  if (worker.idle_) return;
  worker.idle_ = true;
  idle_.push_back(&worker);
  report_actors_locked();
}

std::vector<WorkerPtr> Dispatcher::unpark(Park which) {
  std::lock_guard lock(mutex_);
  if (which == Park::kBreaker) {
    gate_asked_ = false;
    if (!gated_) return {};
    gated_ = false;
  } else if (which == Park::kCap) {
    if (!capped_) return {};
    capped_ = false;
  } else if (which == Park::kToken) {
    starve_asked_ = false;
    if (!starved_) return {};
    starved_ = false;
  } else {
    throttle_asked_ = false;
    throttled_ = false;
  }
  return wake_locked(queued_);
}

bool Dispatcher::parked_by_breaker() const {
  std::lock_guard lock(mutex_);
  return gated_;
}

bool Dispatcher::add(const std::vector<WorkerPtr>& workers) {
  std::lock_guard lock(mutex_);
  if (closed_) return false;
  for (const auto& w : workers) workers_.push_back(w);
  update_capacity_locked();
  report_actors_locked();
  return true;
}

std::vector<WorkerPtr> Dispatcher::close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  for (Worker* w : idle_) w->idle_ = false;
  idle_.clear();
  for (auto& [key, owner] : keys_) owner.worker = nullptr;
  std::vector<WorkerPtr> gone;
  gone.swap(workers_);
  update_capacity_locked();
  report_actors_locked();
  return gone;
}

Dispatcher::Removal Dispatcher::remove(std::uint32_t n, bool idle_only) {
  Removal r;
  std::lock_guard lock(mutex_);
  // Idle workers with nothing routed to them go at once.
  for (std::size_t i = idle_.size(); i-- > 0 && r.removed < n;) {
    Worker* w = idle_[i];
    if (!w->keyed_.empty()) continue;
    idle_.erase(idle_.begin() + static_cast<std::ptrdiff_t>(i));
    w->idle_ = false;
    r.dropped.push_back(drop_locked(*w));
    ++r.removed;
  }
  if (idle_only) return r;
  // Busy ones leave after their current job; their keyed jobs move then.
  for (auto it = workers_.rbegin(); it != workers_.rend() && r.removed < n; ++it) {
    if ((*it)->retiring_ || (*it)->idle_) continue;
    (*it)->retiring_ = true;
    ++r.removed;
  }
  return r;
}

Dispatcher::Drop Dispatcher::drop(Worker& worker) {
  Drop d;
  std::lock_guard lock(mutex_);
  if (worker.idle_) {
    idle_.erase(std::find(idle_.begin(), idle_.end(), &worker));
    worker.idle_ = false;
  }
  move_keyed_jobs_locked(worker, d.woken);
  d.gone = drop_locked(worker);
  return d;
}

WorkerPtr Dispatcher::drop_locked(Worker& worker) {
  for (auto it = workers_.begin(); it != workers_.end(); ++it) {
    if (it->get() == &worker) {
      WorkerPtr gone = std::move(*it);
      workers_.erase(it);
      for (auto& [key, owner] : keys_) {
        if (owner.worker == &worker) owner.worker = nullptr;
      }
      update_capacity_locked();
      report_actors_locked();
      return gone;
    }
  }
  return nullptr;
}

void Dispatcher::move_keyed_jobs_locked(Worker& from, std::vector<WorkerPtr>& woken) {
  // Pinned keys move to a remaining worker, with their queued jobs in order;
  // nothing of this key runs on `from` any more, so order is preserved.
  while (!from.keyed_.empty()) {
    JobPtr job = from.keyed_.pop_front();
    auto it = keys_.find(job->key());
    Worker* target = nullptr;
    for (auto& w : workers_) {
      if (w.get() != &from && !w->retiring_) {
        if (target == nullptr || std::hash<std::string>{}(job->key()) % workers_.size() ==
                                     w->index() % workers_.size()) {
          target = w.get();
        }
      }
    }
    if (it != keys_.end() && it->second.worker != nullptr && it->second.worker != &from) {
      target = it->second.worker;
    }
    if (target == nullptr) {
      queue_.push_back(std::move(job));  // no worker left: it waits in the shared queue
      continue;
    }
    if (it != keys_.end()) it->second.worker = target;
    target->keyed_.push_back(std::move(job));
    if (target->idle_) {
      if (auto w = claim_idle_locked(*target)) woken.push_back(std::move(w));
    }
  }
}

std::vector<WorkerPtr> Dispatcher::configure(DispatchStrategy strategy,
                                             std::uint32_t mailbox_capacity) {
  std::lock_guard lock(mutex_);
  strategy_ = strategy;
  mailbox_capacity_ = mailbox_capacity;
  update_capacity_locked();
  // Workers parked behind a gate re-check it under the new options.
  return wake_locked(queued_);
}

void Dispatcher::update_capacity_locked() {
  capacity_ = static_cast<std::uint64_t>(workers_.size()) * mailbox_capacity_;
  report_mailbox_locked();
}

std::vector<JobPtr> Dispatcher::take_all() {
  std::vector<JobPtr> jobs;
  std::lock_guard lock(mutex_);
  while (!queue_.empty()) jobs.push_back(queue_.pop_front());
  for (auto& w : workers_) {
    while (!w->keyed_.empty()) jobs.push_back(w->keyed_.pop_front());
  }
  queued_ = 0;
  report_mailbox_locked();
  return jobs;
}

Dispatcher::Load Dispatcher::load() const {
  std::lock_guard lock(mutex_);
  return {static_cast<std::uint32_t>(workers_.size()), static_cast<std::uint32_t>(idle_.size()),
          queued_, capacity_};
}

std::vector<WorkerPtr> Dispatcher::workers() const {
  std::lock_guard lock(mutex_);
  return workers_;
}

}  // namespace troupe::core::detail
