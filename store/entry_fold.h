#pragma once

/// Folding a batch of journal entries before it is written: a job accepted
/// in the batch gets one INSERT of its latest state instead of an INSERT
/// and an UPDATE per later entry (a fast job's accepted, started and
/// terminal often share a commit). Shared by the SQLite and PostgreSQL
/// journals.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/journal.h"

namespace troupe::store::detail {

/// A job accepted in the batch, with the later entries of that job in the
/// same batch folded in: the row as its INSERT and their UPDATEs, one by
/// one, would leave it. `output` points into the batch.
struct FoldedRow {
  std::size_t accept = 0;  // the accept's index in the batch
  std::size_t last = 0;    // the last entry folded in (accept when none)
  core::JobState state = core::JobState::kQueued;
  std::uint32_t attempts = 0;
  core::FailureClass failure = core::FailureClass::kNone;
  std::string_view output;
  std::int64_t started_ns = 0;
  std::int64_t finished_ns = 0;
  std::int64_t next_run_ns = 0;
};

/// The job an entry is about.
core::JobId id_of(const core::JournalEntry& entry);

/// The fold of one batch. Not thread-safe: one per writer, reused from
/// batch to batch (its buffers keep their capacity).
class EntryFold {
 public:
  /// row_of() of an entry written on its own (an UPDATE), and of a second
  /// accept of an id in one batch (which does nothing, as an accept of a
  /// known id does).
  static constexpr std::int32_t kOnItsOwn = -1;
  static constexpr std::int32_t kSecondAccept = -2;

  /// Folds each job's entries into its accept when both are in `batch`.
  /// The results below hold until the next call; `batch` must outlive them.
  void fold(const std::vector<core::JournalEntry>& batch);

  /// The rows of the jobs accepted in the batch, in accept order.
  const std::vector<FoldedRow>& rows() const { return rows_; }
  /// Entry `i`'s row (an index into rows()), or kOnItsOwn, kSecondAccept.
  std::int32_t row_of(std::size_t i) const { return row_of_[i]; }
  /// The entry folded into the same row after entry `i`; -1 at the end.
  std::int32_t next(std::size_t i) const { return next_[i]; }

 private:
  std::vector<FoldedRow> rows_;
  std::unordered_map<std::uint64_t, std::size_t> index_;  // job id -> rows_ index
  std::vector<std::int32_t> row_of_;
  std::vector<std::int32_t> next_;
};

}  // namespace troupe::store::detail
