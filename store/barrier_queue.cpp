#include "store/barrier_queue.h"

#include <utility>

namespace troupe::store::detail {

bool BarrierQueue::add(core::DurableCallback& done, bool& ready) {
  ready = durable_ == appended_;
  if (ready && waiting_.empty() && !running_) return true;
  waiting_.push_back(Barrier{appended_, std::move(done)});
  return false;
}

bool BarrierQueue::take_ready(std::vector<Barrier>& out) {
  if (waiting_.empty() || waiting_.front().seq > durable_) return false;
  while (!waiting_.empty() && waiting_.front().seq <= durable_) {
    out.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  running_ = true;
  return true;
}

std::deque<BarrierQueue::Barrier> BarrierQueue::take_all() {
  std::deque<Barrier> all = std::move(waiting_);
  waiting_.clear();
  return all;
}

bool BarrierQueue::after_durable(core::DurableCallback done, std::unique_lock<std::mutex>& lock,
                                 const std::optional<core::JournalFailure>& failure) {
  if (failure) {
    core::JournalFailure copy = *failure;
    lock.unlock();
    done(&copy);
    return false;
  }
  bool ready = false;
  const bool now = add(done, ready);
  lock.unlock();
  if (now) {
    done(nullptr);
    return false;
  }
  return ready;
}

}  // namespace troupe::store::detail
