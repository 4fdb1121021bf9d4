#pragma once

/// Rows of the store per job state, kept from the journal's entries instead
/// of counting the table.

#include <array>
#include <cstdint>
#include <unordered_set>

#include "core/job.h"

namespace troupe::store::detail {

/// Exact rows per state, moved by each applied entry. A Started, Requeued
/// or Terminal entry does not say which state the job leaves; the ids of
/// the running and retry-waiting jobs (few: bounded by the actors and the
/// retry backlog) tell it, and any other non-terminal job is queued.
/// Written by the journal's writer thread only; not thread-safe.
class RowCounts {
 public:
  static constexpr int kStates = 8;

  /// A row read at open.
  void add(core::JobId id, core::JobState state);
  void accepted();
  void started(core::JobId id);
  void retry_wait(core::JobId id);
  void requeued(core::JobId id);
  void terminal(core::JobId id, core::JobState state);
  /// `rows` rows in `state` were deleted (expiry, dead-letter trimming).
  void deleted(core::JobState state, std::uint64_t rows);

  std::uint64_t count(core::JobState state) const;

 private:
  /// Moves `id` out of its non-terminal state.
  void leave(core::JobId id);

  std::array<std::uint64_t, kStates> counts_{};
  std::unordered_set<core::JobId> running_;
  std::unordered_set<core::JobId> retry_waiting_;
};

}  // namespace troupe::store::detail
