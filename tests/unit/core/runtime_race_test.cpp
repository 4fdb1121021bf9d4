// Races between a client and the runtime's own transitions, on real threads
// and the real clock (issue 11, defects 1 and 2). Each trial is bounded in
// jobs and in time; a trial that would hang fails after its bound instead.
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <condition_variable>
#include <random>
#include <thread>
#include <unordered_map>

#include "core/clock.h"
#include "core/runtime.h"
#include "tests/unit/core/test_support.h"

namespace troupe::core {
namespace {

using namespace std::chrono_literals;
using testing::builtin;
using testing::builtin_troupe;
using Kind = BuiltinHandlerOptions::Kind;

/// A runtime run by two io threads, with every terminal callback recorded.
class RaceTrial {
 public:
  explicit RaceTrial(std::vector<TroupeOptions> troupes)
      : clock_(make_steady_clock()),
        work_(boost::asio::make_work_guard(io_)),
        runtime_(make_runtime(io_, *clock_, null_observer(), {})) {
    runtime_->apply(troupes);
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~RaceTrial() {
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
    runtime_.reset();
  }

  Runtime& runtime() { return *runtime_; }

  /// Submits one job; returns its id when accepted.
  std::optional<JobId> submit(const std::string& troupe, std::string idempotency_key = {}) {
    JobRequest r;
    r.troupe = troupe;
    r.idempotency_key = std::move(idempotency_key);
    auto result = runtime_->submit(std::move(r), [this](const JobRecord& rec) {
      std::lock_guard lock(mutex_);
      ++terminal_calls_[rec.id.value];
      terminal_order_[rec.id.value] = ++events_;
    });
    if (const auto* a = std::get_if<Accepted>(&result)) return a->id;
    return std::nullopt;
  }

  /// Starts the drain; wait_drained() reports whether it completed in time.
  void drain(Duration timeout) {
    runtime_->drain(timeout, [this](DrainReport) {
      std::lock_guard lock(mutex_);
      drained_at_ = ++events_;
      drained_.notify_all();
    });
  }
  bool wait_drained(std::chrono::seconds bound) {
    std::unique_lock lock(mutex_);
    return drained_.wait_for(lock, bound, [this] { return drained_at_ != 0; });
  }

  int terminal_calls(JobId id) {
    std::lock_guard lock(mutex_);
    return terminal_calls_[id.value];
  }
  /// Whether the job's terminal callback ran before the drain reported done.
  bool ended_before_drain(JobId id) {
    std::lock_guard lock(mutex_);
    auto it = terminal_order_.find(id.value);
    return it != terminal_order_.end() && it->second < drained_at_;
  }

 private:
  std::unique_ptr<Clock> clock_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::unique_ptr<Runtime> runtime_;
  std::vector<std::thread> threads_;
  std::mutex mutex_;  // guards the bookkeeping below
  std::condition_variable drained_;
  std::unordered_map<std::uint64_t, int> terminal_calls_;
  std::unordered_map<std::uint64_t, std::uint64_t> terminal_order_;
  std::uint64_t events_ = 0;
  std::uint64_t drained_at_ = 0;
};

// Defect 1: a cancel landing between a failed attempt's retry decision and
// its scheduling, after the drain deadline, ended the job twice (CANCELLED
// and ABORTED); in_flight underflowed and the drain never completed.
TEST(RuntimeRace, ACancelRacingARetryAtTheDrainDeadlineEndsTheJobOnce) {
  auto o = builtin_troupe("t", Kind::kFail, 8);
  builtin(o)->fail_mode = BuiltinHandlerOptions::FailMode::kRetryable;
  o.retry.max_attempts = 1000000;
  o.retry.initial_backoff = 1us;
  o.retry.max_backoff = 1us;
  o.mailbox_capacity = 64;
  for (int trial = 0; trial < 40; ++trial) {
    RaceTrial t({o});
    std::vector<JobId> ids;
    for (int i = 0; i < 256; ++i) {
      if (auto id = t.submit("t")) ids.push_back(*id);
    }
    ASSERT_FALSE(ids.empty());
    std::atomic<bool> stop{false};
    std::vector<std::thread> cancellers;
    for (int c = 0; c < 2; ++c) {
      cancellers.emplace_back([&, c] {
        std::mt19937 rng(static_cast<unsigned>(trial * 7 + c));
        while (!stop.load(std::memory_order_relaxed)) {
          (void)t.runtime().cancel(ids[rng() % ids.size()]);
        }
      });
    }
    t.drain(0ms);  // the deadline passes at once, while attempts still fail
    const bool drained = t.wait_drained(20s);
    stop = true;
    for (auto& c : cancellers) c.join();
    ASSERT_TRUE(drained) << "trial " << trial << ": the drain never completed";
    for (const auto id : ids) {
      ASSERT_EQ(t.terminal_calls(id), 1) << "trial " << trial << ", job " << id.to_string();
    }
    for (const auto& s : t.runtime().troupes()) {
      const auto& c = s.counters;
      ASSERT_EQ(c.in_flight, 0u) << "trial " << trial;
      ASSERT_EQ(c.submitted, c.succeeded + c.failed + c.dead + c.cancelled + c.aborted);
    }
  }
}

// Defect 2: a submit racing the drain could be accepted (the client got a
// job id) after the drain had reported done; the daemon then exits and the
// job never ends. Both submit paths, plain and idempotent.
TEST(RuntimeRace, NoSubmitIsAcceptedAfterTheDrainReportedDone) {
  auto o = builtin_troupe("t", Kind::kNoop, 2);
  o.mailbox_capacity = 1024;
  for (int trial = 0; trial < 200; ++trial) {
    RaceTrial t({o});
    std::mutex ids_mutex;
    std::vector<JobId> ids;
    std::atomic<int> started{0};
    std::vector<std::thread> submitters;
    for (int s = 0; s < 2; ++s) {
      submitters.emplace_back([&, s] {
        ++started;
        for (int i = 0; i < 100000; ++i) {
          auto id = t.submit("t", s == 1 ? std::to_string(trial) + "-" + std::to_string(i) : "");
          if (!id) {
            if (t.wait_drained(0s)) return;  // refused because draining
            continue;                        // full: try again
          }
          std::lock_guard lock(ids_mutex);
          ids.push_back(*id);
        }
      });
    }
    while (started.load() < 2) std::this_thread::yield();
    t.drain(10s);
    ASSERT_TRUE(t.wait_drained(20s)) << "trial " << trial;
    for (auto& s : submitters) s.join();
    std::lock_guard lock(ids_mutex);
    for (const auto id : ids) {
      ASSERT_TRUE(t.ended_before_drain(id))
          << "trial " << trial << ": job " << id.to_string()
          << " was accepted but had not ended when the drain reported done";
    }
  }
}

}  // namespace
}  // namespace troupe::core
