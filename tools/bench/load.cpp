#include "tools/bench/load.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>

namespace troupe::bench {
namespace {

using Clock = std::chrono::steady_clock;

/// Decides whether one more call may start: free during warm-up, then
/// bounded by count or by the end of the measured duration. Thread-safe.
class Budget {
 public:
  Budget(const BenchOptions& o, Clock::time_point start)
      : measure_start_(start + o.warmup),
        end_(o.duration ? measure_start_ + *o.duration : Clock::time_point::max()),
        count_(o.count) {}

  /// True when a call may start; `measured` says whether it is reported.
  bool acquire(bool& measured) {
    const auto now = Clock::now();
    if (now < measure_start_) {
      measured = false;
      return true;
    }
    measured = true;
    if (count_) return issued_.fetch_add(1, std::memory_order_relaxed) < *count_;
    return now < end_;
  }

  Clock::time_point measure_start() const { return measure_start_; }

 private:
  const Clock::time_point measure_start_;
  const Clock::time_point end_;
  const std::optional<std::uint64_t> count_;
  std::atomic<std::uint64_t> issued_{0};
};

/// Counts finished load slots; the main thread waits for all of them.
class Latch {
 public:
  explicit Latch(std::size_t n) : remaining_(n) {}
  void count_down() {
    std::lock_guard lock(mu_);
    if (--remaining_ == 0) cv_.notify_all();
  }
  void wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return remaining_ == 0; });
  }

 private:
  std::mutex mu_;  // guards remaining_
  std::condition_variable cv_;
  std::size_t remaining_;
};

/// Results of one slot or stream; touched only by that slot's serial callbacks.
struct SlotRecord {
  tools::LatencyStats latency;
  std::uint64_t requests = 0;
  std::uint64_t ok = 0;
  std::map<int, std::uint64_t> errors;
  Clock::time_point last_completion{};

  void record(grpc::StatusCode code, Clock::time_point started, Clock::time_point now) {
    ++requests;
    if (code == grpc::StatusCode::OK) {
      ++ok;
      latency.record(now - started);
    } else {
      ++errors[static_cast<int>(code)];
    }
    last_completion = std::max(last_completion, now);
  }
};

/// One unary load slot: one call in flight at a time, the next started from
/// the previous call's completion callback.
struct UnarySlot {
  std::unique_ptr<UnaryCall> call;
  std::unique_ptr<grpc::ClientContext> ctx;
  SlotRecord record;
  Clock::time_point started;
  bool measured = false;
};

void issue(UnarySlot& slot, Budget& budget, Latch& latch, std::chrono::nanoseconds deadline) {
  bool measured = false;
  if (!budget.acquire(measured)) {
    latch.count_down();
    return;
  }
  // A ClientContext serves one call only.
  slot.ctx = std::make_unique<grpc::ClientContext>();
  slot.ctx->set_deadline(std::chrono::system_clock::now() +
                         std::chrono::duration_cast<std::chrono::system_clock::duration>(deadline));
  slot.measured = measured;
  slot.started = Clock::now();
  slot.call->start(*slot.ctx, [&slot, &budget, &latch, deadline](const grpc::Status& status) {
    if (slot.measured) slot.record.record(status.error_code(), slot.started, Clock::now());
    issue(slot, budget, latch, deadline);
  });
}

void merge_into(BenchReport& report, const SlotRecord& r, Clock::time_point& last) {
  report.requests += r.requests;
  report.ok += r.ok;
  for (const auto& [code, n] : r.errors) report.errors[code] += n;
  report.latency.merge(r.latency);
  last = std::max(last, r.last_completion);
}

}  // namespace

double BenchReport::throughput() const {
  const double seconds = std::chrono::duration<double>(elapsed).count();
  return seconds > 0 ? static_cast<double>(requests) / seconds : 0.0;
}

BenchReport run_bench(const BenchOptions& options, Target& target,
                      const std::vector<std::shared_ptr<grpc::Channel>>& channels) {
  BenchReport report;
  report.options = options;
  Budget budget(options, Clock::now());
  Clock::time_point last = budget.measure_start();

  if (!target.streaming()) {
    std::vector<UnarySlot> slots(options.concurrency);
    for (std::size_t i = 0; i < slots.size(); ++i) {
      slots[i].call = target.unary_call(channels[i % channels.size()]);
    }
    Latch latch(slots.size());
    for (auto& slot : slots) issue(slot, budget, latch, options.call_deadline);
    latch.wait();
    for (const auto& slot : slots) merge_into(report, slot.record, last);
  } else {
    struct StreamSlot {
      std::unique_ptr<StreamCall> call;
      SlotRecord record;
      // Send times of requests awaiting their ack, oldest first (acks come in order).
      std::deque<std::pair<Clock::time_point, bool>> outstanding;
    };
    std::vector<StreamSlot> streams(options.streams);
    for (std::size_t i = 0; i < streams.size(); ++i) {
      auto& s = streams[i];
      s.call = target.stream_call(channels[i % channels.size()]);
      StreamHooks hooks;
      hooks.acquire = [&s, &budget] {
        bool measured = false;
        if (!budget.acquire(measured)) return false;
        s.outstanding.emplace_back(Clock::now(), measured);
        return true;
      };
      hooks.sent = [] {};
      hooks.acked = [&s](grpc::StatusCode code) {
        if (s.outstanding.empty()) return;  // more acks than requests: ignore
        const auto [started, measured] = s.outstanding.front();
        s.outstanding.pop_front();
        if (measured) s.record.record(code, started, Clock::now());
      };
      s.call->start(options.window, std::move(hooks));
    }
    for (auto& s : streams) {
      const grpc::Status status = s.call->wait();
      if (!status.ok()) {
        ++report.stream_failures;
        // Requests that never got an ack count as errors with the stream's code.
        for (const auto& [started, measured] : s.outstanding) {
          if (measured) s.record.record(status.error_code(), started, Clock::now());
        }
      }
      merge_into(report, s.record, last);
    }
  }
  report.elapsed =
      last > budget.measure_start() ? last - budget.measure_start() : std::chrono::nanoseconds{0};
  return report;
}

}  // namespace troupe::bench
