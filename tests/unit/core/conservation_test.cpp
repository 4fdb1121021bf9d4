// The conservation law under load and faults: many producers, random handler
// outcomes (success, retryable failure, throw, timeout), cancels, an
// auto-scaling troupe, and a drain that starts while the producers still
// submit. Every accepted job ends in exactly one terminal state, reported
// exactly once; the lifecycle's independent counters balance and it refused
// no transition. Real threads and the real clock: this is the test the tsan
// and asan presets are for.
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <condition_variable>
#include <random>
#include <thread>
#include <unordered_map>

#include "core/clock.h"
#include "core/runtime.h"
#include "tests/unit/core/test_journal.h"
#include "tests/unit/core/test_support.h"

namespace troupe::core {
namespace {

using namespace std::chrono_literals;
using testing::builtin;
using testing::builtin_troupe;
using Kind = BuiltinHandlerOptions::Kind;

std::vector<TroupeOptions> fault_troupes() {
  auto ok = builtin_troupe("ok", Kind::kNoop, 2);
  auto retry = builtin_troupe("retry", Kind::kFail, 2);
  builtin(retry)->fail_every = 2;
  retry.retry.max_attempts = 3;
  retry.retry.initial_backoff = 1ms;
  auto crash = builtin_troupe("crash", Kind::kFail, 2);
  builtin(crash)->fail_mode = BuiltinHandlerOptions::FailMode::kThrow;
  builtin(crash)->fail_every = 3;
  crash.retry.max_attempts = 2;
  crash.retry.initial_backoff = 1ms;
  crash.supervisor.max_restarts = 1000000;
  crash.supervisor.backoff_initial = 100us;
  crash.supervisor.backoff_max = 1ms;
  auto slow = builtin_troupe("slow", Kind::kSleep, 4);
  slow.timeout = 2ms;  // "20ms" payloads time out, "0ms" ones succeed
  slow.retry.max_attempts = 2;
  slow.retry.initial_backoff = 1ms;
  auto keyed = builtin_troupe("keyed", Kind::kFail, 3);
  keyed.dispatch = DispatchStrategy::kKey;
  builtin(keyed)->fail_every = 4;
  keyed.retry.max_attempts = 2;
  keyed.retry.initial_backoff = 1ms;
  auto scaling = builtin_troupe("scaling", Kind::kFail, 1);
  scaling.mode = TroupeMode::kDynamic;
  scaling.min_actors = 1;
  scaling.initial_actors = 1;
  scaling.max_actors = 4;
  scaling.autoscale.interval = 1ms;
  scaling.autoscale.cooldown = 0ms;
  scaling.autoscale.high_threshold = 2;
  scaling.autoscale.low_threshold = 1;
  scaling.autoscale.low_busy_ratio = 1.0;
  builtin(scaling)->fail_mode = BuiltinHandlerOptions::FailMode::kThrow;
  builtin(scaling)->fail_every = 7;
  scaling.retry.max_attempts = 2;
  scaling.retry.initial_backoff = 1ms;
  scaling.supervisor.max_restarts = 2;  // give-ups and recoveries race the rest too
  scaling.supervisor.backoff_initial = 100us;
  scaling.supervisor.backoff_max = 1ms;
  std::vector<TroupeOptions> all{ok, retry, crash, slow, keyed, scaling};
  for (auto& t : all) t.mailbox_capacity = 128;
  return all;
}

/// What a load run saw: every accepted id, the terminal callbacks per id,
/// and the drain's report.
struct LoadRun {
  std::vector<std::uint64_t> accepted;
  std::unordered_map<std::uint64_t, int> terminal_calls;
  std::unordered_map<std::uint64_t, JobState> terminal_state;
  DrainReport report;
};

/// Three producers submit 1,500 jobs each to fault_troupes() (cancelling
/// every tenth at random); the drain (deadline `drain_timeout`) starts when
/// all are halfway. Returns once the drain has reported. `seed` varies the
/// producers' choices. Every 64 submits each producer checks the counters'
/// instantaneous bounds (jobs a durable journal's drain left for the next
/// start count among the ended).
LoadRun run_load_and_drain(Runtime& runtime, unsigned seed, Duration drain_timeout) {
  LoadRun run;
  std::mutex mutex;  // guards run's maps while producers run
  const std::vector<std::string> names{"ok", "retry", "crash", "slow", "keyed", "scaling"};
  std::mutex drain_mutex;
  std::condition_variable drained;
  std::optional<DrainReport> report;
  std::atomic<int> halfway{0};
  constexpr int kProducers = 3;
  constexpr int kJobsEach = 1500;
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::mt19937 rng(seed + p);
      std::vector<JobId> mine;
      for (int i = 0; i < kJobsEach; ++i) {
        JobRequest r;
        r.troupe = names[rng() % names.size()];
        // "20ms" outlives the slow troupe's timeout (and the drain deadline).
        if (r.troupe == "slow") r.payload = rng() % 2 ? "20ms" : "0ms";
        if (r.troupe == "keyed") r.key = "k" + std::to_string(rng() % 5);
        auto result = runtime.submit(std::move(r), [&](const JobRecord& rec) {
          EXPECT_TRUE(is_terminal(rec.state));
          std::lock_guard lock(mutex);
          ++run.terminal_calls[rec.id.value];
          run.terminal_state[rec.id.value] = rec.state;
        });
        if (auto* a = std::get_if<Accepted>(&result)) {
          mine.push_back(a->id);
          std::lock_guard lock(mutex);
          run.accepted.push_back(a->id.value);
        }
        if (!mine.empty() && rng() % 10 == 0) (void)runtime.cancel(mine[rng() % mine.size()]);
        if (i % 64 == 0) {
          // Each counter is read on its own while jobs move: a job is in
          // flight before it is submitted and ended before it leaves
          // in_flight, so these hold at every instant (and exactly once quiet).
          for (const auto& s : runtime.troupes()) {
            const auto& c = s.counters;
            EXPECT_LE(c.submitted, c.succeeded + c.failed + c.dead + c.cancelled + c.aborted +
                                       c.left + c.in_flight);
            EXPECT_LE(c.in_flight, c.submitted + kProducers) << "in_flight underflowed";
          }
        }
        if (i == kJobsEach / 2 && ++halfway == kProducers) {
          // The drain races the second half of the submits.
          runtime.drain(drain_timeout, [&](DrainReport drain_report) {
            std::lock_guard lock(drain_mutex);
            report = drain_report;
            drained.notify_all();
          });
        }
      }
    });
  }
  for (auto& t : producers) t.join();
  std::unique_lock lock(drain_mutex);
  EXPECT_TRUE(drained.wait_for(lock, 60s, [&] { return report.has_value(); }))
      << "drain did not complete";
  if (report) run.report = *report;
  std::lock_guard maps_lock(mutex);
  return run;
}

TEST(Conservation, EveryAcceptedJobEndsExactlyOnceUnderLoadFaultsCancelsAndDrain) {
  auto clock = make_steady_clock();
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  testing::RecordingObserver observer;
  auto runtime = make_runtime(io, *clock, observer, {});
  runtime->apply(fault_troupes());
  std::vector<std::thread> io_threads;
  for (int i = 0; i < 2; ++i) io_threads.emplace_back([&io] { io.run(); });

  LoadRun run = run_load_and_drain(*runtime, 1234, 20ms);
  auto& [accepted, terminal_calls, terminal_state, report] = run;
  std::uint64_t submitted = 0;
  std::uint64_t ended = 0;
  for (const auto& s : runtime->troupes()) {
    const auto& c = s.counters;
    EXPECT_EQ(c.in_flight, 0u) << s.name;
    // The gauges the observer last saw agree with the drained troupe: they
    // are reported under the troupe's lock, in the order of the changes.
    EXPECT_EQ(s.mailbox_depth, 0u) << s.name;
    EXPECT_EQ(observer.of(s.name).last_depth.load(), s.mailbox_depth) << s.name;
    // Actors still settle after the drain (a crashed one restarts, then goes
    // idle): the gauge is read between two equal readings of the troupe
    // (bounded), so a change in between is not taken for a stale gauge.
    std::uint32_t busy = s.actors_busy;
    std::uint32_t seen = 0;
    for (int tries = 0; tries < 1000; ++tries) {
      busy = runtime->troupe(s.name)->actors_busy;
      seen = observer.of(s.name).last_busy.load();
      if (runtime->troupe(s.name)->actors_busy == busy) break;
    }
    EXPECT_EQ(seen, busy) << s.name;
    EXPECT_EQ(c.submitted, c.succeeded + c.failed + c.dead + c.cancelled + c.aborted) << s.name;
    EXPECT_EQ(c.illegal_transitions, 0u) << s.name;
    submitted += c.submitted;
    ended += c.succeeded + c.failed + c.dead + c.cancelled + c.aborted;
  }
  EXPECT_EQ(submitted, accepted.size());
  EXPECT_EQ(ended, accepted.size());
  EXPECT_GT(accepted.size(), 0u);
  // The drain's own accounting covers exactly what was in flight.
  std::uint64_t by_state[8] = {};
  for (auto id : accepted) {
    ASSERT_EQ(terminal_calls[id], 1) << JobId{id}.to_string();
    auto rec = runtime->get(JobId{id});
    ASSERT_TRUE(rec);
    EXPECT_EQ(rec->state, terminal_state[id]);
    ++by_state[static_cast<int>(rec->state)];
  }
  EXPECT_EQ(terminal_calls.size(), accepted.size());
  // Every outcome class actually happened.
  EXPECT_GT(by_state[static_cast<int>(JobState::kSucceeded)], 0u);
  EXPECT_GT(by_state[static_cast<int>(JobState::kCancelled)], 0u);
  EXPECT_GT(by_state[static_cast<int>(JobState::kDead)], 0u);

  work.reset();
  io.stop();
  for (auto& t : io_threads) t.join();
  runtime.reset();
}

// The same load on a durable journal: at the drain deadline the unfinished
// jobs are left for the next start instead of ABORTED. Every accepted job is
// either terminal exactly once (its journal's last entry is that terminal
// state) or left (no callback, its last entry an accept, a retry wait or a
// requeue); the counters balance with `left`; no entry follows a terminal.
TEST(Conservation, WithADurableJournalEveryJobEndsOrIsLeftExactlyOnce) {
  auto clock = make_steady_clock();
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  testing::RecordingObserver observer;
  testing::TestJournal journal;
  journal.commit_at_once = true;  // terminal callbacks wait for durability
  auto runtime = make_runtime(io, *clock, observer, {}, journal);
  runtime->apply(fault_troupes());
  std::vector<std::thread> io_threads;
  for (int i = 0; i < 2; ++i) io_threads.emplace_back([&io] { io.run(); });

  // Slow jobs that outlive the drain deadline are requeued.
  LoadRun run = run_load_and_drain(*runtime, 4321, 5ms);
  auto& [accepted, terminal_calls, terminal_state, report] = run;
  work.reset();
  io.stop();
  for (auto& t : io_threads) t.join();

  std::uint64_t left = 0;
  for (const auto& s : runtime->troupes()) {
    const auto& c = s.counters;
    EXPECT_EQ(c.in_flight, 0u) << s.name;
    EXPECT_EQ(c.aborted, 0u) << s.name;
    EXPECT_EQ(c.submitted, c.succeeded + c.failed + c.dead + c.cancelled + c.left) << s.name;
    EXPECT_EQ(c.illegal_transitions, 0u) << s.name;
    left += c.left;
  }
  EXPECT_EQ(report.left, left);
  EXPECT_EQ(report.aborted, 0u);

  // The journal, job by job.
  std::unordered_map<std::uint64_t, std::vector<JournalEntry>> by_job;
  for (auto& e : journal.entries()) {
    by_job[std::visit([](const auto& x) { return x.id.value; }, e)].push_back(e);
  }
  EXPECT_EQ(by_job.size(), accepted.size());
  std::uint64_t without_terminal = 0;
  for (auto id : accepted) {
    const auto& entries = by_job[id];
    ASSERT_FALSE(entries.empty()) << JobId{id}.to_string();
    EXPECT_TRUE(std::holds_alternative<JournalAccepted>(entries.front()));
    for (std::size_t i = 0; i + 1 < entries.size(); ++i) {
      EXPECT_FALSE(std::holds_alternative<JournalTerminal>(entries[i])) << "entry after terminal";
    }
    const auto& last = entries.back();
    if (terminal_calls.contains(id)) {
      EXPECT_EQ(terminal_calls[id], 1);
      ASSERT_TRUE(std::holds_alternative<JournalTerminal>(last)) << JobId{id}.to_string();
      EXPECT_EQ(std::get<JournalTerminal>(last).state, terminal_state[id]);
    } else {
      ++without_terminal;
      EXPECT_TRUE(std::holds_alternative<JournalAccepted>(last) ||
                  std::holds_alternative<JournalRetryWait>(last) ||
                  std::holds_alternative<JournalRequeued>(last))
          << JobId{id}.to_string() << " was left after entry " << last.index();
    }
  }
  EXPECT_EQ(without_terminal, left);
  EXPECT_GT(left, 0u);  // the deadline did leave some
  runtime.reset();
}

}  // namespace
}  // namespace troupe::core
