#include "core/retry_scheduler.h"

#include <boost/asio/post.hpp>

namespace troupe::core::detail {

RetryScheduler::RetryScheduler(Strand strand, Clock& clock,
                               std::function<void(const JobPtr&)> on_due)
    : strand_(std::move(strand)), clock_(clock), on_due_(std::move(on_due)) {}

bool RetryScheduler::schedule(const JobPtr& job, Duration backoff) {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return false;
    waiting_.emplace(job->id.value, job);
  }
  boost::asio::post(strand_, [this, owner = owner_, job, backoff] {
    auto alive = owner.lock();
    if (!alive) return;
    auto& timer = timers_[job->id.value];
    timer = clock_.make_timer(strand_);
    timer->wait(backoff, [this, owner, job](bool fired) {
      if (!fired) return;
      auto still_alive = owner.lock();
      if (!still_alive) return;
      timers_.erase(job->id.value);
      {
        std::lock_guard lock(mutex_);
        if (waiting_.erase(job->id.value) == 0) return;  // forgotten or closed
      }
      on_due_(job);
    });
  });
  return true;
}

void RetryScheduler::forget(JobId id) {
  {
    std::lock_guard lock(mutex_);
    waiting_.erase(id.value);
  }
  boost::asio::post(strand_, [this, owner = owner_, id] {
    auto alive = owner.lock();
    if (!alive) return;
    auto it = timers_.find(id.value);
    if (it != timers_.end()) {
      it->second->cancel();
      timers_.erase(it);
    }
  });
}

std::vector<JobPtr> RetryScheduler::close() {
  std::vector<JobPtr> jobs;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    jobs.reserve(waiting_.size());
    for (auto& [id, job] : waiting_) jobs.push_back(job);
    waiting_.clear();
  }
  cancel_timers();
  return jobs;
}

void RetryScheduler::shutdown() {
  cancel_timers();
}

void RetryScheduler::cancel_timers() {
  boost::asio::post(strand_, [this, owner = owner_] {
    auto alive = owner.lock();
    if (!alive) return;
    for (auto& [id, timer] : timers_) timer->cancel();
    timers_.clear();
  });
}

}  // namespace troupe::core::detail
