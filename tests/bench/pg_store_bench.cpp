// pg_store_bench: what the PostgreSQL journal (store/pg_journal) sustains on
// a local server (tests/support's PostgresServer: fsync on, loopback):
//
//   build/release/tests/bench/pg_store_bench --benchmark_min_time=2
//
// BM_Job: appenders that each run jobs as trouped does: the accept, its
// barrier (the submit's acknowledgement), then started + succeeded and
// their barrier; 1, 8 and 64 appenders at once. items_per_second: jobs.
// BM_WriterThroughput: one appender queues `jobs` jobs' three entries and
// waits once (split: waits after the accepts too, so the others are fenced
// UPDATEs of an earlier commit). items_per_second: jobs.
// entries_per_commit: the group commit's batch size.

#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "core/backoff.h"
#include "store/pg_journal.h"
#include "tests/support/postgres_server.h"

namespace {

using namespace troupe;

class CommitCounter : public core::JournalObserver {
 public:
  void committed(std::chrono::nanoseconds, std::size_t entries, std::size_t) override {
    commits.fetch_add(1, std::memory_order_relaxed);
    this->entries.fetch_add(entries, std::memory_order_relaxed);
  }
  std::atomic<std::uint64_t> commits{0}, entries{0};
};

struct Fixture {
  std::unique_ptr<test::PostgresServer> server;
  CommitCounter counter;
  std::unique_ptr<core::Journal> journal;
};
Fixture* g_fixture = nullptr;
std::atomic<std::uint64_t> g_next_id{1};

/// Random-looking distinct ids, as trouped's.
core::JobId next_id() {
  return core::JobId{core::JitterRng{g_next_id.fetch_add(1, std::memory_order_relaxed)}()};
}

void set_up(const benchmark::State&) {
  g_fixture = new Fixture;
  g_fixture->server = test::PostgresServer::start();
  store::PgJournalOptions options;
  options.dsn = g_fixture->server->dsn();
  options.replica = "bench";
  options.result_ttl = std::chrono::minutes(10);
  options.observer = &g_fixture->counter;
  g_fixture->journal = store::open_pg_journal(options);
}

void tear_down(const benchmark::State&) {
  g_fixture->journal.reset();
  delete g_fixture;
  g_fixture = nullptr;
}

void wait_durable(core::Journal& journal) {
  std::promise<void> durable;
  journal.after_durable([&](const core::JournalFailure* failure) {
    if (failure != nullptr) std::abort();
    durable.set_value();
  });
  durable.get_future().wait();
}

core::JournalAccepted accepted(core::JobId id) {
  core::JournalAccepted a;
  a.id = id;
  a.troupe = "bench";
  a.payload = std::string(64, 'x');
  return a;
}

void report(benchmark::State& state) {
  const auto& c = g_fixture->counter;
  double commits = static_cast<double>(std::max<std::uint64_t>(1, c.commits.load()));
  state.counters["entries_per_commit"] = static_cast<double>(c.entries.load()) / commits;
}

void BM_Job(benchmark::State& state) {
  core::Journal& journal = *g_fixture->journal;
  for (auto _ : state) {
    core::JobId id = next_id();
    journal.append(accepted(id));
    wait_durable(journal);
    journal.append(core::JournalStarted{id, 1, 1});
    journal.append(core::JournalTerminal{id, core::JobState::kSucceeded, core::FailureClass::kNone,
                                         1, "ok", 1, 2});
    wait_durable(journal);
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) report(state);
}
BENCHMARK(BM_Job)
    ->Threads(1)
    ->Threads(8)
    ->Threads(64)
    ->Setup(set_up)
    ->Teardown(tear_down)
    ->UseRealTime();

void BM_WriterThroughput(benchmark::State& state) {
  core::Journal& journal = *g_fixture->journal;
  const auto jobs = static_cast<std::size_t>(state.range(0));
  const bool split = state.range(1) != 0;
  std::vector<core::JobId> ids(jobs);
  for (auto _ : state) {
    for (auto& id : ids) {
      id = next_id();
      journal.append(accepted(id));
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
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(jobs));
  report(state);
}
BENCHMARK(BM_WriterThroughput)
    ->ArgNames({"jobs", "split"})
    ->Args({10000, 0})
    ->Args({10000, 1})
    ->Setup(set_up)
    ->Teardown(tear_down)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
