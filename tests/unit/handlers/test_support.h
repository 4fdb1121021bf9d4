#pragma once

/// Shared helpers for handler tests: bounded waits on an io_context.

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>

#include "core/clock.h"

namespace troupe::core::testing {

/// Runs `io` on this thread until `done()` holds or `bound` passes. Returns
/// done(). The io_context is restarted first, so it can be called repeatedly.
inline bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
                      std::chrono::milliseconds bound = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  io.restart();
  while (!done()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    io.run_one_for(deadline - now);
  }
  return true;
}

/// Runs what is left (completions posted after `done`), bounded.
inline void drain(boost::asio::io_context& io,
                  std::chrono::milliseconds bound = std::chrono::seconds(5)) {
  io.restart();
  io.run_for(bound);
}

}  // namespace troupe::core::testing

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "core/handler.h"

namespace troupe::core::testing {

/// Runs `jobs_per_actor` sequential attempts on each of `handlers` (one per
/// actor, each built on its own strand in `strands`) with `io` run by two
/// threads, as the daemon does. `check(actor, job, result)` sees every result
/// (on the actor's strand). Returns false when the bound passed first.
inline bool run_actors_concurrently(
    boost::asio::io_context& io, std::vector<boost::asio::any_io_executor>& strands,
    std::vector<std::unique_ptr<Handler>>& handlers, int jobs_per_actor,
    const std::function<void(int, int, const AttemptResult&)>& check,
    std::chrono::seconds bound = std::chrono::seconds(120)) {
  struct Actor {
    int next_job = 0;
    std::string payload;
  };
  const Metadata metadata;
  std::vector<Actor> actors(handlers.size());
  std::atomic<std::size_t> finished{0};
  boost::asio::steady_timer guard(io, bound);
  auto timed_out = std::make_shared<std::atomic<bool>>(false);
  guard.async_wait([timed_out, &io](const boost::system::error_code& ec) {
    if (!ec) {
      *timed_out = true;
      io.stop();
    }
  });
  std::function<void(std::size_t)> start_next = [&](std::size_t a) {
    Actor& actor = actors[a];
    const int job = actor.next_job++;
    actor.payload = "actor-" + std::to_string(a) + "-job-" + std::to_string(job);
    AttemptContext ctx{JobId{a * 1'000'000 + static_cast<std::uint64_t>(job)},
                       "t",
                       1,
                       actor.payload,
                       metadata,
                       std::chrono::seconds(10),
                       {}};
    handlers[a]->start(ctx, [&, a, job](AttemptResult r) {
      check(static_cast<int>(a), job, r);
      if (actors[a].next_job < jobs_per_actor) {
        boost::asio::post(strands[a], [&, a] { start_next(a); });
      } else if (++finished == handlers.size()) {
        // Stop rather than wait for run() to run out of work: kept-alive
        // connections (a test server's) may keep it busy forever.
        boost::asio::post(io, [&] {
          guard.cancel();
          io.stop();
        });
      }
    });
  };
  for (std::size_t a = 0; a < handlers.size(); ++a) {
    boost::asio::post(strands[a], [&, a] { start_next(a); });
  }
  io.restart();
  std::thread second([&] { io.run(); });
  io.run();
  second.join();
  return !*timed_out && finished == handlers.size();
}

}  // namespace troupe::core::testing
