#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/job_store.h"
#include "core/runtime.h"
#include "core/troupe.h"

namespace troupe::core {

/// The Runtime: a table of troupes, the job store, id generation, watches
/// and the drain (which closes every troupe's gate and waits for them). Thread-safe: the troupe
/// table is guarded by a reader/writer lock (submits take it shared); watches and the drain have
/// their own mutexes; timers run on `control_`. Destroy it only after the io_context has stopped
/// running (or after a completed drain): pending work is then discarded with the io_context.
class RuntimeImpl final : public Runtime, private detail::TroupeHost {
 public:
  /// `journal` null: a memory journal of its own.
  RuntimeImpl(boost::asio::io_context& io, Clock& clock, Observer& observer, RuntimeOptions options,
              Journal* journal = nullptr);
  ~RuntimeImpl() override;

  void apply(const std::vector<TroupeOptions>& troupes) override;
  std::variant<Accepted, Rejection> submit(JobRequest request, JobCallback on_terminal) override;
  std::optional<JobRecord> get(JobId id) const override;
  std::optional<CancelOutcome> cancel(JobId id) override;
  std::variant<WatchId, WatchRefusal> watch(JobId id, JobCallback on_change) override;
  void unwatch(WatchId id) override;
  std::vector<TroupeStatus> troupes() const override;
  std::optional<TroupeStatus> troupe(std::string_view name) const override;
  std::optional<std::vector<JobRecord>> dead_jobs(std::string_view troupe,
                                                  std::size_t limit) const override;
  void drain(Duration timeout, std::function<void(DrainReport)> done) override;
  RecoveryReport recover() override;
  void after_durable(DurableCallback done) override;
  void on_journal_failure(std::function<void(const JournalFailure&)> handler) override;

 private:
  // TroupeHost
  JobId next_id() override;
  void watch_ended(WatchId id) override;
  void drain_ended(bool running) override;
  void drain_left(bool running) override;

  std::shared_ptr<detail::Troupe> find_troupe(std::string_view name) const;
  /// Counts the rejection (no troupe to count it) and says why.
  Rejection reject_unknown();
  std::shared_ptr<detail::Troupe> owner_of(const detail::Job& job) const;
  const std::string* intern(const std::string& name);
  /// A troupe's gate reported empty (or drain() finished closing them).
  void gate_drained();
  void remove_drained(detail::Troupe* troupe);

  boost::asio::io_context& io_;
  Clock& clock_;
  Observer& observer_;
  RuntimeOptions options_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<Journal> own_journal_;  // when none was given
  detail::JournalLink journal_;
  std::mutex failure_mutex_;  // guards on_failure_
  std::function<void(const JournalFailure&)> on_failure_;
  boost::asio::strand<boost::asio::io_context::executor_type> control_;

  mutable std::shared_mutex troupes_mutex_;  // guards troupes_, retiring_ and names_
  std::map<std::string, std::shared_ptr<detail::Troupe>, std::less<>> troupes_;
  std::vector<std::shared_ptr<detail::Troupe>> retiring_;  // removed, still draining
  std::set<std::string> names_;                            // interned, never erased

  std::mutex idempotency_mutex_;  // serialises submits that carry an idempotency key

  std::mutex watches_mutex_;  // guards watches_
  std::unordered_map<WatchId, std::weak_ptr<detail::Job>> watches_;
  std::atomic<WatchId> next_watch_{1};

  std::atomic<bool> draining_{false};
  std::mutex drain_mutex_;  // guards the drain's bookkeeping below
  std::function<void(DrainReport)> drain_done_;
  DrainReport report_;
  std::uint64_t in_flight_at_drain_ = 0;
  std::atomic<std::uint64_t> drain_cancelled_{0};
  std::atomic<std::uint64_t> drain_aborted_{0};
  std::atomic<std::uint64_t> drain_requeued_{0};      // running, left for the next start
  std::atomic<std::uint64_t> drain_left_waiting_{0};  // queued or backing off, left
  std::size_t gates_open_ = 0;  // troupes whose gate has not reported empty, + 1
  bool drain_reported_ = false;
  DrainReport final_report_;            // once reported: what a later drain() is told
  std::unique_ptr<Timer> drain_timer_;  // control_ only
};

}  // namespace troupe::core
