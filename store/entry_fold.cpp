#include "store/entry_fold.h"

#include <variant>

namespace troupe::store::detail {
namespace {

// Each as the entry's UPDATE statement would change the row.
void fold_into(FoldedRow&, const core::JournalAccepted&) {}
void fold_into(FoldedRow& row, const core::JournalStarted& e) {
  row.state = core::JobState::kRunning;
  row.attempts = e.attempts;
  row.started_ns = e.started_ns;
}
void fold_into(FoldedRow& row, const core::JournalRetryWait& e) {
  row.state = core::JobState::kRetryWait;
  row.attempts = e.attempts;
  row.next_run_ns = e.next_run_ns;
  row.output = e.error;
  row.failure = e.failure;
}
void fold_into(FoldedRow& row, const core::JournalRequeued& e) {
  row.state = core::JobState::kQueued;
  row.attempts = e.attempts;
  row.next_run_ns = 0;
}
void fold_into(FoldedRow& row, const core::JournalTerminal& e) {
  row.state = e.state;
  row.failure = e.failure;
  row.attempts = e.attempts;
  row.output = e.output;
  if (e.started_ns != 0) row.started_ns = e.started_ns;
  row.finished_ns = e.finished_ns;
  row.next_run_ns = 0;
}

}  // namespace

core::JobId id_of(const core::JournalEntry& entry) {
  return std::visit([](const auto& e) { return e.id; }, entry);
}

void EntryFold::fold(const std::vector<core::JournalEntry>& batch) {
  rows_.clear();
  index_.clear();
  row_of_.assign(batch.size(), kOnItsOwn);
  next_.assign(batch.size(), -1);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const core::JournalEntry& entry = batch[i];
    if (const auto* a = std::get_if<core::JournalAccepted>(&entry)) {
      if (index_.try_emplace(a->id.value, rows_.size()).second) {
        row_of_[i] = static_cast<std::int32_t>(rows_.size());
        FoldedRow& row = rows_.emplace_back();
        row.accept = row.last = i;
      } else {
        row_of_[i] = kSecondAccept;
      }
      continue;
    }
    if (index_.empty()) continue;
    auto it = index_.find(id_of(entry).value);
    if (it == index_.end()) continue;  // accepted in an earlier batch
    FoldedRow& row = rows_[it->second];
    row_of_[i] = static_cast<std::int32_t>(it->second);
    next_[row.last] = static_cast<std::int32_t>(i);
    row.last = i;
    std::visit([&](const auto& e) { fold_into(row, e); }, entry);
  }
}

}  // namespace troupe::store::detail
