#pragma once

/// A scripted core::Runtime for the daemon's unit tests: accepts or rejects
/// by troupe name, and lets the test fire terminal and watch callbacks.

#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/runtime.h"

namespace troupe::daemon::testing {

/// Thread-safe; callbacks are fired on the test's thread by complete()/emit().
/// Jobs put_elsewhere() are held by "another replica": get() and cancel()
/// do not know them, and the any-replica calls (find, cancel_anywhere,
/// dead_jobs_anywhere) answer for them later, on a store thread of its own,
/// as a shared journal does.
class FakeRuntime final : public core::Runtime {
 public:
  ~FakeRuntime() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    if (store_thread_.joinable()) store_thread_.join();
  }

  void apply(const std::vector<core::TroupeOptions>& troupes) override {
    std::lock_guard lock(mutex_);
    applied_ = troupes;
  }

  std::variant<core::Accepted, core::Rejection> submit(core::JobRequest request,
                                                       core::JobCallback on_terminal) override {
    std::unique_lock lock(mutex_);
    if (auto it = reject_.find(request.troupe); it != reject_.end()) return it->second;
    if (!request.idempotency_key.empty()) {
      if (auto it = by_key_.find(request.idempotency_key); it != by_key_.end()) {
        auto& job = jobs_.at(it->second);
        if (on_terminal) {
          if (core::is_terminal(job.record.state)) {
            auto record = job.record;
            lock.unlock();
            on_terminal(record);  // inline, like a duplicate of a finished job
            lock.lock();
          } else {
            job.on_terminal.push_back(std::move(on_terminal));
          }
        }
        return core::Accepted{job.record.id, true};
      }
    }
    core::JobId id{next_id_++};
    Job job;
    job.record.id = id;
    job.record.troupe = request.troupe;
    job.record.key = request.key;
    job.record.idempotency_key = request.idempotency_key;
    job.record.metadata = request.metadata;
    job.record.submitted_at = std::chrono::system_clock::now();
    if (on_terminal) job.on_terminal.push_back(std::move(on_terminal));
    if (!request.idempotency_key.empty()) by_key_[request.idempotency_key] = id;
    submitted_.push_back(std::move(request));
    jobs_.emplace(id, std::move(job));
    changed_.notify_all();
    return core::Accepted{id, false};
  }

  std::optional<core::JobRecord> get(core::JobId id) const override {
    std::lock_guard lock(mutex_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return std::nullopt;
    return it->second.record;
  }

  std::optional<core::CancelOutcome> cancel(core::JobId id) override {
    std::unique_lock lock(mutex_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return std::nullopt;
    core::CancelOutcome out{it->second.record, !core::is_terminal(it->second.record.state)};
    lock.unlock();
    if (out.cancelled) complete(id, core::JobState::kCancelled, "");
    return out;
  }

  std::variant<core::WatchId, core::WatchRefusal> watch(core::JobId id,
                                                        core::JobCallback on_change) override {
    std::unique_lock lock(mutex_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return core::WatchRefusal::kUnknownJob;
    if (refuse_watches_) return core::WatchRefusal::kTooManyListeners;
    const core::WatchId watch_id = next_watch_++;
    auto record = it->second.record;
    watches_[watch_id] = {id, on_change};
    changed_.notify_all();
    lock.unlock();
    on_change(record);  // the current snapshot, inline
    return watch_id;
  }

  void unwatch(core::WatchId id) override {
    std::lock_guard lock(mutex_);
    if (watches_.erase(id) > 0) ++unwatched_;
    changed_.notify_all();
  }

  std::vector<core::TroupeStatus> troupes() const override {
    std::lock_guard lock(mutex_);
    return statuses_;
  }
  std::optional<core::TroupeStatus> troupe(std::string_view name) const override {
    std::lock_guard lock(mutex_);
    for (const auto& s : statuses_) {
      if (s.name == name) return s;
    }
    return std::nullopt;
  }
  std::optional<std::vector<core::JobRecord>> dead_jobs(std::string_view troupe,
                                                        std::size_t limit) const override {
    std::lock_guard lock(mutex_);
    if (!troupe_known(troupe)) return std::nullopt;
    last_dead_limit_ = limit;
    std::vector<core::JobRecord> out;
    for (const auto& [id, job] : jobs_) {
      if (job.record.troupe == troupe && job.record.state == core::JobState::kDead &&
          out.size() < limit) {
        out.push_back(job.record);
      }
    }
    return out;
  }

  void find(
      core::JobId id,
      std::function<void(core::StoreAnswer<std::optional<core::JobRecord>>)> done) const override {
    if (auto here = get(id)) return done(std::move(here));
    answer_from_store([this, id, done = std::move(done)] {
      std::optional<core::JobRecord> found;
      std::optional<std::string> down;
      {
        std::lock_guard lock(mutex_);
        down = store_down_;
        if (auto it = elsewhere_.find(id); it != elsewhere_.end()) found = it->second;
      }
      if (down) return done(core::StoreUnavailable{*down});
      done(std::move(found));
    });
  }
  void cancel_anywhere(
      core::JobId id,
      std::function<void(core::StoreAnswer<std::optional<core::CancelOutcome>>)> done) override {
    if (auto here = cancel(id)) return done(std::move(here));
    answer_from_store([this, id, done = std::move(done)] {
      std::optional<core::CancelOutcome> outcome;
      std::optional<std::string> down;
      {
        std::lock_guard lock(mutex_);
        down = store_down_;
        if (down) {
          // Not answered: nothing was asked of the store.
        } else if (auto it = elsewhere_.find(id); it != elsewhere_.end()) {
          outcome = core::CancelOutcome{it->second, !core::is_terminal(it->second.state)};
          cancel_requests_.push_back(id);
        }
      }
      if (down) return done(core::StoreUnavailable{*down});
      done(std::move(outcome));
    });
  }
  void dead_jobs_anywhere(
      std::string_view troupe, std::size_t limit,
      std::function<void(core::StoreAnswer<std::optional<std::vector<core::JobRecord>>>)> done)
      const override {
    auto here = dead_jobs(troupe, limit);
    if (!here) return done(std::nullopt);
    answer_from_store([this, limit, here = std::move(*here), done = std::move(done),
                       troupe = std::string(troupe)]() mutable {
      std::optional<std::string> down;
      {
        std::lock_guard lock(mutex_);
        down = store_down_;
        for (const auto& [id, record] : elsewhere_) {
          if (record.troupe == troupe && record.state == core::JobState::kDead &&
              here.size() < limit) {
            here.push_back(record);
          }
        }
      }
      if (down) return done(core::StoreUnavailable{*down});
      done(std::move(here));
    });
  }

  void drain(core::Duration, std::function<void(core::DrainReport)> done) override {
    done(core::DrainReport{});
  }

  core::RecoveryReport recover() override { return {}; }

  /// Inline (as the memory journal) unless hold_barriers(true): then held
  /// until release_barriers().
  void after_durable(core::DurableCallback done) override {
    std::unique_lock lock(mutex_);
    if (hold_barriers_) {
      barriers_.push_back(std::move(done));
      changed_.notify_all();
      return;
    }
    lock.unlock();
    done(nullptr);
  }
  void on_journal_failure(std::function<void(const core::JournalFailure&)>) override {}

  // ---- test controls ----

  void hold_barriers(bool hold) {
    std::lock_guard lock(mutex_);
    hold_barriers_ = hold;
  }
  /// Completes every held barrier: durable (`failure` null) or failed (the
  /// journal has then failed for good: journal_failure()).
  void release_barriers(const core::JournalFailure* failure = nullptr) {
    std::vector<core::DurableCallback> due;
    {
      std::lock_guard lock(mutex_);
      due.swap(barriers_);
      if (failure != nullptr) journal_failure_ = *failure;
    }
    for (auto& d : due) d(failure);
  }
  std::optional<core::JournalFailure> journal_failure() const override {
    std::lock_guard lock(mutex_);
    return journal_failure_;
  }
  /// Waits (bounded) until `n` barriers are held.
  bool wait_barriers(std::size_t n) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(10), [&] { return barriers_.size() >= n; });
  }

  void reject(const std::string& troupe, core::Rejection rejection) {
    std::lock_guard lock(mutex_);
    reject_[troupe] = std::move(rejection);
  }
  void set_troupes(std::vector<core::TroupeStatus> statuses) {
    std::lock_guard lock(mutex_);
    statuses_ = std::move(statuses);
  }

  /// Moves a job to `state`, fires watches, and on a terminal state the
  /// on_terminal callbacks once it is durable (after_durable, as the
  /// runtime promises).
  void complete(core::JobId id, core::JobState state, std::string result) {
    std::vector<core::JobCallback> callbacks;
    std::vector<core::JobCallback> at_end;
    core::JobRecord record;
    {
      std::lock_guard lock(mutex_);
      auto& job = jobs_.at(id);
      job.record.state = state;
      job.record.result = std::move(result);
      if (state == core::JobState::kRunning) ++job.record.attempts;
      record = job.record;
      for (auto& [watch_id, w] : watches_) {
        if (w.job == id) callbacks.push_back(w.on_change);
      }
      if (core::is_terminal(state)) {
        at_end.swap(job.on_terminal);
        std::erase_if(watches_, [&](const auto& w) { return w.second.job == id; });
      }
    }
    for (auto& cb : callbacks) cb(record);
    if (at_end.empty()) return;
    after_durable([at_end = std::move(at_end), record](const core::JournalFailure*) {
      for (const auto& cb : at_end) cb(record);
    });
  }

  /// Waits (bounded) until `n` jobs were submitted; returns them.
  std::vector<core::JobRequest> wait_submitted(std::size_t n) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, std::chrono::seconds(10), [&] { return submitted_.size() >= n; });
    return submitted_;
  }
  /// Waits (bounded) until a watch is registered (or, with false, none is).
  bool wait_watching(bool watching) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(10),
                             [&] { return watches_.empty() != watching; });
  }
  std::size_t unwatched() const {
    std::lock_guard lock(mutex_);
    return unwatched_;
  }
  std::size_t last_dead_limit() const {
    std::lock_guard lock(mutex_);
    return last_dead_limit_;
  }
  /// Makes watch() refuse every job it knows as having too many listeners.
  void refuse_watches(bool refuse) {
    std::lock_guard lock(mutex_);
    refuse_watches_ = refuse;
  }
  /// Adds a record directly (e.g. a DEAD job for ListDeadJobs).
  void put(core::JobRecord record) {
    std::lock_guard lock(mutex_);
    jobs_[record.id].record = std::move(record);
  }
  /// A job another replica holds: only the any-replica calls find it.
  void put_elsewhere(core::JobRecord record) {
    std::lock_guard lock(mutex_);
    elsewhere_[record.id] = std::move(record);
  }
  /// Set: the store does not answer (an outage, for this reason); reset:
  /// it answers again.
  void set_store_down(std::optional<std::string> why) {
    std::lock_guard lock(mutex_);
    store_down_ = std::move(why);
  }
  /// Jobs held elsewhere that cancel_anywhere() asked the store to cancel.
  std::vector<core::JobId> cancel_requests() const {
    std::lock_guard lock(mutex_);
    return cancel_requests_;
  }
  /// Answers given (or being given) from the store thread so far.
  std::size_t store_answers() const {
    std::lock_guard lock(mutex_);
    return store_answers_;
  }

 private:
  struct Job {
    core::JobRecord record;
    std::vector<core::JobCallback> on_terminal;
  };
  struct Watch {
    core::JobId job;
    core::JobCallback on_change;
  };
  /// Runs `answer` on the store thread, after the caller returned.
  void answer_from_store(std::function<void()> answer) const {
    std::lock_guard lock(mutex_);
    store_queue_.push_back(std::move(answer));
    if (!store_thread_.joinable()) store_thread_ = std::thread([this] { run_store(); });
    changed_.notify_all();
  }
  void run_store() const {
    std::unique_lock lock(mutex_);
    while (true) {
      changed_.wait(lock, [&] { return stopping_ || !store_queue_.empty(); });
      if (store_queue_.empty()) return;  // stopping, nothing left
      auto answer = std::move(store_queue_.front());
      store_queue_.erase(store_queue_.begin());
      ++store_answers_;  // before the answer: the client may see it at once
      lock.unlock();
      answer();
      lock.lock();
    }
  }
  bool troupe_known(std::string_view name) const {
    for (const auto& s : statuses_) {
      if (s.name == name) return true;
    }
    return false;
  }

  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::map<std::string, core::Rejection> reject_;
  std::map<core::JobId, Job> jobs_;
  std::map<std::string, core::JobId> by_key_;
  std::map<core::WatchId, Watch> watches_;
  std::vector<core::JobRequest> submitted_;
  std::vector<core::TroupeOptions> applied_;
  std::vector<core::TroupeStatus> statuses_;
  std::uint64_t next_id_ = 0x1000;
  core::WatchId next_watch_ = 1;
  std::size_t unwatched_ = 0;
  bool refuse_watches_ = false;
  bool hold_barriers_ = false;
  std::vector<core::DurableCallback> barriers_;
  std::optional<core::JournalFailure> journal_failure_;
  std::map<core::JobId, core::JobRecord> elsewhere_;
  std::vector<core::JobId> cancel_requests_;
  std::optional<std::string> store_down_;  // set_store_down()
  mutable std::vector<std::function<void()>> store_queue_;
  mutable std::thread store_thread_;
  mutable std::size_t store_answers_ = 0;
  bool stopping_ = false;
  mutable std::size_t last_dead_limit_ = 0;
};

}  // namespace troupe::daemon::testing
