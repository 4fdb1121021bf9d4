#pragma once

/// The bookkeeping of core::Journal's barriers, shared by the SQLite and
/// PostgreSQL journals: entries appended and made durable are counted, and
/// each barrier waits for the count at the time it was taken.

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

#include "core/journal.h"

namespace troupe::store::detail {

/// Not thread-safe: the journal guards it with the mutex of its pending
/// entries, and runs the callbacks outside that mutex on its writer.
class BarrierQueue {
 public:
  struct Barrier {
    std::uint64_t seq;  // durable once durable() >= seq
    core::DurableCallback done;
  };

  /// One more entry appended.
  void appended() { ++appended_; }
  /// Entries appended so far: what a commit of everything pending covers.
  std::uint64_t appended_count() const { return appended_; }
  /// A commit made the entries up to `seq` durable.
  void durable_up_to(std::uint64_t seq) { durable_ = seq; }

  /// Either `done` may run at once, on the caller's thread (everything
  /// appended is durable and no earlier barrier waits or runs: barrier
  /// order holds) and it is returned untouched with true; or it is queued
  /// (false), with `ready` set when it is already covered (the writer
  /// should run barriers now).
  bool add(core::DurableCallback& done, bool& ready);

  /// Journal::after_durable on top of add(), for a journal whose `mutex`
  /// guards this queue and `failure`: `done` runs at once on the caller's
  /// thread (with the failure, or durable) after `lock` is released, or is
  /// queued. True when the writer should run barriers now. `lock` holds the
  /// mutex on entry and is released on return.
  bool after_durable(core::DurableCallback done, std::unique_lock<std::mutex>& lock,
                     const std::optional<core::JournalFailure>& failure);

  /// Moves the covered barriers, in order, into `out` and marks them
  /// running; false when none is covered. done_running() once they ran.
  bool take_ready(std::vector<Barrier>& out);
  void done_running() { running_ = false; }

  /// Every waiting barrier (the journal failed or gave up).
  std::deque<Barrier> take_all();

 private:
  std::uint64_t appended_ = 0;
  std::uint64_t durable_ = 0;
  std::deque<Barrier> waiting_;  // in barrier order, seq not decreasing
  bool running_ = false;         // the writer runs taken barriers outside the lock
};

}  // namespace troupe::store::detail
