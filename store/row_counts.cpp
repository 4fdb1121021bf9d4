#include "store/row_counts.h"

namespace troupe::store::detail {

namespace {

std::size_t index(core::JobState state) {
  return static_cast<std::size_t>(state);
}

void decrement(std::uint64_t& count, std::uint64_t by = 1) {
  count = count >= by ? count - by : 0;
}

}  // namespace

void RowCounts::add(core::JobId id, core::JobState state) {
  if (index(state) >= kStates) return;
  ++counts_[index(state)];
  if (state == core::JobState::kRunning) running_.insert(id);
  if (state == core::JobState::kRetryWait) retry_waiting_.insert(id);
}

void RowCounts::accepted() {
  ++counts_[index(core::JobState::kQueued)];
}

void RowCounts::leave(core::JobId id) {
  if (running_.erase(id) > 0) {
    decrement(counts_[index(core::JobState::kRunning)]);
  } else if (retry_waiting_.erase(id) > 0) {
    decrement(counts_[index(core::JobState::kRetryWait)]);
  } else {
    decrement(counts_[index(core::JobState::kQueued)]);
  }
}

void RowCounts::started(core::JobId id) {
  leave(id);
  running_.insert(id);
  ++counts_[index(core::JobState::kRunning)];
}

void RowCounts::retry_wait(core::JobId id) {
  leave(id);
  retry_waiting_.insert(id);
  ++counts_[index(core::JobState::kRetryWait)];
}

void RowCounts::requeued(core::JobId id) {
  leave(id);
  ++counts_[index(core::JobState::kQueued)];
}

void RowCounts::terminal(core::JobId id, core::JobState state) {
  if (index(state) >= kStates) return;
  leave(id);
  ++counts_[index(state)];
}

void RowCounts::deleted(core::JobState state, std::uint64_t rows) {
  if (index(state) < kStates) decrement(counts_[index(state)], rows);
}

std::uint64_t RowCounts::count(core::JobState state) const {
  return index(state) < kStates ? counts_[index(state)] : 0;
}

}  // namespace troupe::store::detail
