// store_bench: what the SQLite journal (store/) sustains: appenders that
// each append one accepted job and wait for its barrier (as a submit waits
// for its acknowledgement), 1, 8 and 64 at once, with sync FULL and NORMAL.
// The database lives in a fresh directory under $TROUPE_BENCH_DIR (default:
// the system's temp directory): fsync costs what that file system's do.
//
//   build/release/tests/bench/store_bench --benchmark_min_time=2
//
// Counters: items_per_second (acknowledged appends), p50_us and p99_us
// (append to acknowledgement, per appender, averaged), entries_per_commit
// (group commit's batch size), commit_us (mean commit latency, first
// arrival to end of fsync). Job ids are random 64-bit numbers, as trouped's.

#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/backoff.h"
#include "store/sqlite_journal.h"

namespace {

namespace fs = std::filesystem;
using namespace troupe;

class CommitCounter : public core::JournalObserver {
 public:
  void committed(std::chrono::nanoseconds latency, std::size_t entries, std::size_t) override {
    commits.fetch_add(1, std::memory_order_relaxed);
    this->entries.fetch_add(entries, std::memory_order_relaxed);
    latency_ns.fetch_add(static_cast<std::uint64_t>(latency.count()), std::memory_order_relaxed);
  }
  std::atomic<std::uint64_t> commits{0}, entries{0}, latency_ns{0};
};

struct Fixture {
  fs::path dir;
  CommitCounter counter;
  std::unique_ptr<core::Journal> journal;
};
Fixture* g_fixture = nullptr;
std::atomic<std::uint64_t> g_next_id{1};

/// A fresh id, random-looking as trouped's (64 random bits): each accept
/// lands on a random place of anything ordered by id, as it does in the
/// daemon. Distinct: SplitMix64's step is a bijection of the counter.
core::JobId next_id() {
  return core::JobId{core::JitterRng{g_next_id.fetch_add(1, std::memory_order_relaxed)}()};
}

void set_up(const benchmark::State& state) {
  const char* base = std::getenv("TROUPE_BENCH_DIR");
  std::string pattern =
      ((base != nullptr ? fs::path(base) : fs::temp_directory_path()) / "store-bench-XXXXXX")
          .string();
  if (::mkdtemp(pattern.data()) == nullptr) std::abort();
  g_fixture = new Fixture;
  g_fixture->dir = pattern;
  store::SqliteJournalOptions options;
  options.path = (g_fixture->dir / "jobs.db").string();
  options.sync_full = state.range(0) != 0;
  options.result_ttl = std::chrono::minutes(10);
  options.observer = &g_fixture->counter;
  g_fixture->journal = store::open_sqlite_journal(options);
}

void tear_down(const benchmark::State&) {
  g_fixture->journal.reset();
  fs::remove_all(g_fixture->dir);
  delete g_fixture;
  g_fixture = nullptr;
}

void BM_AppendAndWaitDurable(benchmark::State& state) {
  core::Journal& journal = *g_fixture->journal;
  const std::string payload(64, 'x');
  std::mutex mutex;
  std::condition_variable durable;
  bool done = false;
  std::vector<std::int64_t> latencies_ns;
  latencies_ns.reserve(1 << 16);
  for (auto _ : state) {
    auto start = std::chrono::steady_clock::now();
    core::JournalAccepted accepted;
    accepted.id = next_id();
    accepted.troupe = "bench";
    accepted.payload = payload;
    accepted.submitted_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
    journal.append(std::move(accepted));
    done = false;
    journal.after_durable([&](const core::JournalFailure* failure) {
      if (failure != nullptr) std::abort();
      std::lock_guard lock(mutex);
      done = true;
      durable.notify_one();
    });
    std::unique_lock lock(mutex);
    durable.wait(lock, [&] { return done; });
    latencies_ns.push_back((std::chrono::steady_clock::now() - start).count());
  }
  state.SetItemsProcessed(state.iterations());
  // This appender's latency percentiles, averaged over the appenders.
  std::sort(latencies_ns.begin(), latencies_ns.end());
  auto percentile_us = [&](double p) {
    if (latencies_ns.empty()) return 0.0;
    auto index = static_cast<std::size_t>(p * static_cast<double>(latencies_ns.size() - 1));
    return static_cast<double>(latencies_ns[index]) / 1000.0;
  };
  state.counters["p50_us"] =
      benchmark::Counter(percentile_us(0.50), benchmark::Counter::kAvgThreads);
  state.counters["p99_us"] =
      benchmark::Counter(percentile_us(0.99), benchmark::Counter::kAvgThreads);
  if (state.thread_index() == 0) {
    // Summed over threads: only thread 0 reports the journal-wide figures.
    const auto& c = g_fixture->counter;
    double commits = static_cast<double>(std::max<std::uint64_t>(1, c.commits.load()));
    state.counters["entries_per_commit"] = static_cast<double>(c.entries.load()) / commits;
    state.counters["commit_us"] = static_cast<double>(c.latency_ns.load()) / commits / 1000.0;
  }
}

BENCHMARK(BM_AppendAndWaitDurable)
    ->ArgName("sync_full")
    ->Arg(1)
    ->Arg(0)
    ->Threads(1)
    ->Threads(8)
    ->Threads(64)
    ->Setup(set_up)
    ->Teardown(tear_down)
    ->UseRealTime();

void wait_durable(core::Journal& journal) {
  std::promise<void> durable;
  journal.after_durable([&](const core::JournalFailure* failure) {
    if (failure != nullptr) std::abort();
    durable.set_value();
  });
  durable.get_future().wait();
}

// The writer's ceiling: one appender queues a job's three entries
// (accepted, started, succeeded) for `range(1)` jobs, then waits once.
// With `range(2)` (split) it waits after the accepts too, so that the
// started and terminal entries are UPDATEs of rows of an earlier commit
// (a job that outlives its accept's batch). items_per_second counts
// entries.
void BM_WriterThroughput(benchmark::State& state) {
  core::Journal& journal = *g_fixture->journal;
  const std::string payload(64, 'x');
  const auto jobs = static_cast<std::uint64_t>(state.range(1));
  const bool split = state.range(2) != 0;
  std::vector<core::JobId> ids(jobs);
  for (auto _ : state) {
    for (auto& id : ids) {
      id = next_id();
      core::JournalAccepted accepted;
      accepted.id = id;
      accepted.troupe = "bench";
      accepted.payload = payload;
      journal.append(std::move(accepted));
      if (split) continue;
      journal.append(core::JournalStarted{id, 1, 1});
      journal.append(core::JournalTerminal{id, core::JobState::kSucceeded,
                                           core::FailureClass::kNone, 1, "ok", 1, 2});
    }
    if (split) {
      wait_durable(journal);
      for (const auto& id : ids) {
        journal.append(core::JournalStarted{id, 1, 1});
        journal.append(core::JournalTerminal{id, core::JobState::kSucceeded,
                                             core::FailureClass::kNone, 1, "ok", 1, 2});
      }
    }
    wait_durable(journal);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(jobs) * 3);
  const auto& c = g_fixture->counter;
  double commits = static_cast<double>(std::max<std::uint64_t>(1, c.commits.load()));
  state.counters["entries_per_commit"] = static_cast<double>(c.entries.load()) / commits;
}

BENCHMARK(BM_WriterThroughput)
    ->ArgNames({"sync_full", "jobs", "split"})
    ->Args({1, 10000, 0})
    ->Args({0, 10000, 0})
    ->Args({1, 10000, 1})
    ->Setup(set_up)
    ->Teardown(tear_down)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// recover() of `range(1)` queued jobs (64-byte payloads), as at a start
// after a crash: the time to read every row back, and the file's size.
void BM_Recover(benchmark::State& state) {
  const auto jobs = static_cast<std::uint64_t>(state.range(1));
  {
    core::Journal& journal = *g_fixture->journal;
    const std::string payload(64, 'x');
    for (std::uint64_t i = 0; i < jobs; ++i) {
      core::JournalAccepted accepted;
      accepted.id = next_id();
      accepted.troupe = "bench";
      accepted.payload = payload;
      accepted.submitted_ns = 1;
      journal.append(std::move(accepted));
    }
    journal.close();
  }
  store::SqliteJournalOptions options;
  options.path = (g_fixture->dir / "jobs.db").string();
  std::uint64_t recovered = 0;
  for (auto _ : state) {
    auto journal = store::open_sqlite_journal(options);
    journal->recover(
        [&](core::RecoveredJob&& job) { recovered += job.request.payload.size() > 0; });
    journal.reset();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(recovered));
  state.counters["bytes_per_job"] =
      static_cast<double>(fs::file_size(options.path)) / static_cast<double>(jobs);
  if (recovered != jobs * state.iterations()) state.SkipWithError("not every job came back");
}

BENCHMARK(BM_Recover)
    ->ArgNames({"sync_full", "jobs"})
    ->Args({0, 1000000})
    ->Iterations(1)
    ->Setup(set_up)
    ->Teardown(tear_down)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
