// In-process figures for the core runtime (docs/performance.md, "Core
// (in-process)"): submit -> complete throughput of noop jobs through one
// troupe, per-actor memory and memory per queued job. A benchmark, not a
// test: it prints figures and asserts nothing.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <new>
#include <thread>

#include "core/clock.h"
#include "core/runtime.h"
#include "handlers/builtin/builtin_options.h"

namespace {

// Counting allocator: live heap bytes (as malloc_usable_size sees them, so
// allocator rounding is included), only while `g_counting` is set.
std::atomic<bool> g_counting{false};
std::atomic<std::int64_t> g_live{0};

void* counted_alloc(std::size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  if (g_counting.load(std::memory_order_relaxed)) {
    g_live.fetch_add(static_cast<std::int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  }
  return p;
}
void counted_free(void* p) {
  if (p == nullptr) return;
  if (g_counting.load(std::memory_order_relaxed)) {
    g_live.fetch_sub(static_cast<std::int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  }
  std::free(p);
}

// Keep freed heap in the process between iterations (glibc would otherwise
// trim it and every iteration would pay page faults for a fresh heap, which
// a long-running daemon at its job-store limit does not).
const bool g_malloc_tuned = [] {
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  return true;
}();

}  // namespace

void* operator new(std::size_t n) {
  return counted_alloc(n);
}
void* operator new[](std::size_t n) {
  return counted_alloc(n);
}
void operator delete(void* p) noexcept {
  counted_free(p);
}
void operator delete[](void* p) noexcept {
  counted_free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  counted_free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  counted_free(p);
}

namespace troupe::core {
namespace {

TroupeOptions noop_troupe(std::uint32_t actors, std::uint32_t mailbox) {
  TroupeOptions o;
  o.name = "bench";
  o.mode = TroupeMode::kFixed;
  o.max_actors = actors;
  o.mailbox_capacity = mailbox;
  o.circuit_breaker.enabled = false;
  o.handler = BuiltinHandlerOptions{};
  return o;
}

/// submit -> complete of noop jobs: `producers` threads submit (retrying on
/// kFull), two io threads run the troupe; the clock stops when a drain
/// reports every job terminal.
void BM_NoopThroughput(benchmark::State& state) {
  const auto actors = static_cast<std::uint32_t>(state.range(0));
  const auto producers = static_cast<int>(state.range(1));
  constexpr std::int64_t kJobs = 200'000;
  auto clock = make_steady_clock();
  for (auto _ : state) {
    boost::asio::io_context io;
    auto work = boost::asio::make_work_guard(io);
    RuntimeOptions ro;
    ro.job_store.max_jobs = 4 * kJobs;
    auto runtime = make_runtime(io, *clock, null_observer(), ro);
    runtime->apply({noop_troupe(actors, 65536 / actors + 1)});
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i) threads.emplace_back([&io] { io.run(); });

    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;
    const auto start = std::chrono::steady_clock::now();
    auto produce = [&](std::int64_t n) {
      for (std::int64_t i = 0; i < n; ++i) {
        for (;;) {
          JobRequest r;
          r.troupe = "bench";
          if (std::holds_alternative<Accepted>(runtime->submit(std::move(r)))) break;
          std::this_thread::yield();  // full: let the actors catch up
        }
      }
    };
    std::vector<std::thread> extra;
    for (int p = 1; p < producers; ++p) extra.emplace_back(produce, kJobs / producers);
    produce(kJobs - (kJobs / producers) * (producers - 1));
    for (auto& t : extra) t.join();
    runtime->drain(std::chrono::hours(1), [&](DrainReport) {
      std::lock_guard lock(mutex);
      done = true;
      cv.notify_all();
    });
    {
      std::unique_lock lock(mutex);
      cv.wait(lock, [&] { return done; });
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;
    state.SetIterationTime(std::chrono::duration<double>(elapsed).count());
    work.reset();
    io.stop();
    for (auto& t : threads) t.join();
    runtime.reset();
  }
  state.SetItemsProcessed(state.iterations() * kJobs);
}
BENCHMARK(BM_NoopThroughput)
    ->ArgNames({"actors", "producers"})
    ->ArgsProduct({{1, 4, 64}, {1, 2}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(5);

/// Heap bytes per idle actor: a fixed troupe of 1000 actors, after every
/// actor has parked itself idle.
void BM_IdleActorMemory(benchmark::State& state) {
  constexpr std::uint32_t kActors = 1000;
  auto clock = make_steady_clock();
  for (auto _ : state) {
    boost::asio::io_context io;
    auto runtime = make_runtime(io, *clock, null_observer(), {});
    runtime->apply({noop_troupe(1, 16)});
    io.poll();
    g_live = 0;
    g_counting = true;
    runtime->apply({noop_troupe(1 + kActors, 16)});
    io.restart();
    io.poll();
    g_counting = false;
    state.counters["bytes_per_idle_actor"] =
        static_cast<double>(g_live.load()) / static_cast<double>(kActors);
    runtime.reset();
  }
}
BENCHMARK(BM_IdleActorMemory)->Iterations(1);

/// Heap bytes per queued job with a 64-byte payload, beyond the payload:
/// the troupe's actors never run (the io_context is not run), so every
/// submitted job stays queued.
void BM_QueuedJobMemory(benchmark::State& state) {
  constexpr std::int64_t kJobs = 100'000;
  auto clock = make_steady_clock();
  for (auto _ : state) {
    boost::asio::io_context io;
    auto runtime = make_runtime(io, *clock, null_observer(), {});
    runtime->apply({noop_troupe(1, 2 * kJobs)});
    const std::string payload(64, 'x');
    std::vector<std::string> payloads(kJobs, payload);  // allocated before counting
    g_live = 0;
    g_counting = true;
    for (std::int64_t i = 0; i < kJobs; ++i) {
      JobRequest r;
      r.troupe = "bench";
      r.payload = std::move(payloads[i]);
      (void)runtime->submit(std::move(r));
    }
    g_counting = false;
    // The payloads were moved in, so their bytes are not in g_live.
    state.counters["overhead_bytes_per_queued_job"] =
        static_cast<double>(g_live.load()) / static_cast<double>(kJobs);
    runtime.reset();
  }
}
BENCHMARK(BM_QueuedJobMemory)->Iterations(1);

}  // namespace
}  // namespace troupe::core

BENCHMARK_MAIN();
