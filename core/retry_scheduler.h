#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/job_entry.h"

namespace troupe::core::detail {

/// Owns a troupe's retry timers: a job that waits to retry is held here
/// until its backoff has passed, then handed to `on_due` (on the strand).
/// Closing it (the drain deadline) hands back every waiting job and
/// refuses new ones.
///
/// Thread-safe: the waiting set has its own mutex; the timers live on
/// `strand`. Timer callbacks hold `owner` weakly: nothing runs once it is gone.
class RetryScheduler {
 public:
  using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;
  RetryScheduler(Strand strand, Clock& clock, std::function<void(const JobPtr&)> on_due);
  /// Before first use (and before the owner is shared with other threads).
  void set_owner(std::weak_ptr<void> owner) { owner_ = std::move(owner); }

  /// False when closed (the caller ends the job instead).
  bool schedule(const JobPtr& job, Duration backoff);
  /// The job ended while it waited (a cancel): its timer goes.
  void forget(JobId id);
  /// Stops scheduling; returns the jobs that were waiting.
  std::vector<JobPtr> close();
  /// Cancels every timer (the troupe goes).
  void shutdown();

 private:
  void cancel_timers();

  Strand strand_;
  Clock& clock_;
  std::weak_ptr<void> owner_;
  std::function<void(const JobPtr&)> on_due_;

  std::mutex mutex_;  // guards waiting_ and closed_
  std::unordered_map<std::uint64_t, JobPtr> waiting_;
  bool closed_ = false;

  // Strand only.
  std::unordered_map<std::uint64_t, std::unique_ptr<Timer>> timers_;
};

}  // namespace troupe::core::detail
