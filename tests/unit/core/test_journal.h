#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/journal.h"

namespace troupe::core::testing {

/// A durable journal for tests: records every entry, holds every barrier
/// until the test commits or fails them, and recovers the rows the test
/// put in `rows`. Thread-safe.
class TestJournal : public Journal {
 public:
  bool durable() const override { return true; }

  void recover(const std::function<void(RecoveredJob&&)>& each) override {
    std::vector<RecoveredJob> taken;
    {
      std::lock_guard lock(mutex_);
      taken = std::move(rows);
      rows.clear();
    }
    for (auto& r : taken) each(std::move(r));
  }

  std::uint64_t append(JournalEntry entry) override {
    std::lock_guard lock(mutex_);
    if (closed_) return 0;
    entries_.push_back(std::move(entry));
    return entries_.size();
  }

  std::uint64_t durable_position() const override {
    std::lock_guard lock(mutex_);
    return durable_;
  }

  void after_durable(DurableCallback done) override {
    std::optional<JournalFailure> failed;
    {
      std::lock_guard lock(mutex_);
      if (!failure_) {
        if (!commit_at_once) {
          pending_.push_back(std::move(done));
          return;
        }
        durable_ = entries_.size();
      }
      failed = failure_;
    }
    done(failed ? &*failed : nullptr);
  }

  std::optional<JournalFailure> failure() const override {
    std::lock_guard lock(mutex_);
    return failure_;
  }

  void on_failure(std::function<void(const JournalFailure&)> handler) override {
    std::lock_guard lock(mutex_);
    on_failure_ = std::move(handler);
  }

  void close() override {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }

  /// Every entry so far is durable and every barrier so far completes;
  /// returns how many barriers.
  std::size_t commit() {
    std::vector<DurableCallback> due;
    {
      std::lock_guard lock(mutex_);
      durable_ = entries_.size();
      due.swap(pending_);
    }
    for (auto& d : due) d(nullptr);
    return due.size();
  }

  /// The journal fails for good: the failure handler runs, then every
  /// pending barrier gets the failure.
  void fail(std::string message) {
    const JournalFailure failure{message};
    std::function<void(const JournalFailure&)> handler;
    {
      std::lock_guard lock(mutex_);
      failure_ = failure;  // barriers asked from now on fail at once
      handler = on_failure_;
    }
    if (handler) handler(failure);
    fail_barriers(std::move(message));
  }

  /// Every pending barrier fails with `message`, the journal itself not
  /// failed (as a shared journal closing without reaching its store).
  void fail_barriers(std::string message) {
    std::vector<DurableCallback> due;
    {
      std::lock_guard lock(mutex_);
      due.swap(pending_);
    }
    const JournalFailure failure{std::move(message)};
    for (auto& d : due) d(&failure);
  }

  std::size_t pending_barriers() const {
    std::lock_guard lock(mutex_);
    return pending_.size();
  }

  std::vector<JournalEntry> entries() const {
    std::lock_guard lock(mutex_);
    return entries_;
  }

  /// The entries of one job, in append order.
  std::vector<JournalEntry> entries_of(JobId id) const {
    std::vector<JournalEntry> out;
    for (auto& e : entries()) {
      const JobId of = std::visit([](const auto& x) { return x.id; }, e);
      if (of == id) out.push_back(e);
    }
    return out;
  }

  /// Rows recover() hands out (set before the runtime recovers).
  std::vector<RecoveredJob> rows;
  /// Set before use: every barrier completes at once, as durable (a
  /// journal whose commits are instant), instead of waiting for commit().
  bool commit_at_once = false;

 private:
  mutable std::mutex mutex_;
  std::vector<JournalEntry> entries_;
  std::vector<DurableCallback> pending_;
  std::uint64_t durable_ = 0;  // entries_ up to this position are durable
  std::optional<JournalFailure> failure_;
  std::function<void(const JournalFailure&)> on_failure_;
  bool closed_ = false;
};

/// A journal shared with other replicas (docs/cluster.md), as far as the
/// runtime can tell: TestJournal's recording, plus the ClusterHooks the
/// runtime sets (the test calls them as the PostgreSQL journal would, on
/// any thread) and lookups answered from `rows_elsewhere` / `dead_rows`, or
/// not answered at all while `unavailable` is set.
/// The lookup tables are the test thread's; the counters are atomic.
class SharedTestJournal final : public TestJournal {
 public:
  bool shared() const override { return true; }
  void set_cluster_hooks(ClusterHooks h) override { hooks = std::move(h); }

  void find(JobId id, std::function<void(StoreAnswer<std::optional<RecoveredJob>>)> done) override {
    ++finds;
    if (unavailable) return done(StoreUnavailable{*unavailable});
    done(row_elsewhere(id));
  }
  void request_cancel(JobId id,
                      std::function<void(StoreAnswer<std::optional<RecoveredJob>>)> done) override {
    ++cancel_requests;
    if (unavailable) return done(StoreUnavailable{*unavailable});
    done(row_elsewhere(id));
  }
  void dead_jobs(std::string troupe, std::size_t limit,
                 std::function<void(StoreAnswer<std::vector<RecoveredJob>>)> done) override {
    ++dead_lookups;
    if (unavailable) return done(StoreUnavailable{*unavailable});
    std::vector<RecoveredJob> out;
    for (const auto& r : dead_rows) {
      if (r.request.troupe == troupe && out.size() < limit) out.push_back(r);
    }
    done(std::move(out));
  }

  void coordinate(std::vector<CoordinatedTroupe> troupes) override {
    std::lock_guard lock(coordinated_mutex);
    coordinated = std::move(troupes);
  }
  void want_tokens(std::string troupe) override {
    std::lock_guard lock(coordinated_mutex);
    tokens_wanted.push_back(std::move(troupe));
  }
  /// A keyed accept the runtime asked for (accept_keyed), waiting for the
  /// test's answer.
  struct KeyedRequest {
    JournalAccepted row;
    std::function<void(KeyedAccept)> done;
  };
  void accept_keyed(JournalAccepted accepted, std::function<void(KeyedAccept)> done) override {
    std::lock_guard lock(keyed_mutex_);
    keyed_.push_back({std::move(accepted), std::move(done)});
  }
  void withdraw_keyed(JobId id) override {
    std::lock_guard lock(keyed_mutex_);
    withdrawn_.push_back(id);
  }
  /// The keyed accepts asked for and not answered yet.
  std::vector<JournalAccepted> keyed_waiting() const {
    std::lock_guard lock(keyed_mutex_);
    std::vector<JournalAccepted> out;
    for (const auto& k : keyed_) out.push_back(k.row);
    return out;
  }
  /// Answers the oldest keyed accept waiting (as the store would, on the
  /// calling thread); false when none waits.
  bool answer_keyed(KeyedAccept answer) {
    KeyedRequest request;
    {
      std::lock_guard lock(keyed_mutex_);
      if (keyed_.empty()) return false;
      request = std::move(keyed_.front());
      keyed_.erase(keyed_.begin());
    }
    request.done(std::move(answer));
    return true;
  }
  std::vector<JobId> withdrawn() const {
    std::lock_guard lock(keyed_mutex_);
    return withdrawn_;
  }

  ClusterHooks hooks;  // set by the runtime at its construction
  std::map<std::uint64_t, RecoveredJob> rows_elsewhere;
  std::vector<RecoveredJob> dead_rows;
  /// Set: the store does not answer lookups (an outage), for this reason.
  std::optional<std::string> unavailable;
  std::atomic<int> finds{0};
  std::atomic<int> cancel_requests{0};
  std::atomic<int> dead_lookups{0};
  std::mutex coordinated_mutex;                // guards the two below
  std::vector<CoordinatedTroupe> coordinated;  // the last coordinate()
  std::vector<std::string> tokens_wanted;      // want_tokens() calls, in order

 private:
  mutable std::mutex keyed_mutex_;  // guards keyed_ and withdrawn_
  std::vector<KeyedRequest> keyed_;
  std::vector<JobId> withdrawn_;

  std::optional<RecoveredJob> row_elsewhere(JobId id) const {
    auto it = rows_elsewhere.find(id.value);
    if (it == rows_elsewhere.end()) return std::nullopt;
    return it->second;
  }
};

}  // namespace troupe::core::testing
