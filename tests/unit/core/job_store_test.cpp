#include "core/job_store.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "core/manual_clock.h"

namespace troupe::core {
namespace {

using namespace std::chrono_literals;
using detail::Job;
using detail::JobPtr;

const std::string kTroupe = "t";
Clock* g_clock = nullptr;  // the test's clock, for make_job

JobPtr make_job(std::uint64_t id, std::string payload = "p") {
  auto j = std::make_shared<Job>();
  j->id = JobId{id};
  j->troupe_name = &kTroupe;
  j->payload = std::move(payload);
  j->enqueued_ns = detail::to_ns(g_clock->now());
  return j;
}

/// A job submitted with an idempotency key.
JobPtr make_idempotent_job(std::uint64_t id, std::string key, std::string payload = "p") {
  auto j = make_job(id, std::move(payload));
  j->extras = std::make_unique<detail::JobExtras>();
  j->extras->idempotency_key = std::move(key);
  return j;
}

void finish(JobStore& store, Clock& clock, const JobPtr& j, std::string output = "r") {
  {
    std::lock_guard lock(j->lock);
    j->output = std::move(output);
    j->state.store(JobState::kSucceeded);
  }
  store.finished(j, detail::to_ns(clock.now()));
}

TEST(InMemoryJobStore, FindsJobsUntilTheirResultExpires) {
  ManualClock clock;
  g_clock = &clock;
  JobStoreOptions o;
  o.result_ttl = 10s;
  InMemoryJobStore store(o, clock);
  auto j = make_job(1);
  store.add(j);
  EXPECT_EQ(store.find(JobId{1}), j);
  EXPECT_EQ(store.find(JobId{2}), nullptr);
  clock.advance(1h);
  EXPECT_EQ(store.find(JobId{1}), j);  // in flight: never expires
  finish(store, clock, j);
  clock.advance(9s);
  EXPECT_EQ(store.find(JobId{1}), j);
  clock.advance(1s);
  EXPECT_EQ(store.find(JobId{1}), nullptr);
  store.add(make_job(1 + 64));  // same shard: the expired record is dropped
  EXPECT_EQ(store.size(), 1u);
  EXPECT_FALSE(store.durable());
}

TEST(InMemoryJobStore, EvictsTerminalRecordsFirstAndNeverInFlightOnes) {
  ManualClock clock;
  g_clock = &clock;
  JobStoreOptions o;
  o.max_jobs = 3;
  InMemoryJobStore store(o, clock);
  auto running = make_job(1);
  auto done1 = make_job(2);
  auto done2 = make_job(3);
  store.add(running);
  store.add(done1);
  store.add(done2);
  finish(store, clock, done1);
  finish(store, clock, done2);
  EXPECT_TRUE(store.has_room(1));
  store.add(make_job(4));
  EXPECT_EQ(store.size(), 3u);
  EXPECT_EQ(store.find(JobId{2}), nullptr);  // oldest terminal went first
  EXPECT_NE(store.find(JobId{3}), nullptr);
  EXPECT_NE(store.find(JobId{1}), nullptr);
  store.add(make_job(5));
  EXPECT_EQ(store.find(JobId{3}), nullptr);
  EXPECT_NE(store.find(JobId{1}), nullptr);  // in flight: kept
  EXPECT_FALSE(store.has_room(1));           // only in-flight records left
}

TEST(InMemoryJobStore, BoundsBytes) {
  ManualClock clock;
  g_clock = &clock;
  JobStoreOptions o;
  o.max_bytes = 100;
  InMemoryJobStore store(o, clock);
  auto a = make_job(1, std::string(60, 'x'));
  store.add(a);
  EXPECT_FALSE(store.has_room(60));
  finish(store, clock, a, "");
  EXPECT_TRUE(store.has_room(60));
  store.add(make_job(2, std::string(60, 'y')));
  EXPECT_EQ(store.find(JobId{1}), nullptr);
  EXPECT_LE(store.bytes(), 100u);
}

TEST(InMemoryJobStore, IdempotencyKeysExpire) {
  ManualClock clock;
  g_clock = &clock;
  JobStoreOptions o;
  o.idempotency_ttl = 1min;
  InMemoryJobStore store(o, clock);
  auto j = make_job(1);
  store.add(j);
  store.remember_idempotent("t", "k", j);
  auto match = store.find_idempotent("t", "k");
  ASSERT_TRUE(match);
  EXPECT_EQ(match->id, JobId{1});
  EXPECT_EQ(match->job, j);
  EXPECT_FALSE(store.find_idempotent("other", "k"));
  clock.advance(1min);
  EXPECT_FALSE(store.find_idempotent("t", "k"));
}

TEST(InMemoryJobStore, AnIdempotencyKeyKeepsTheFinalStateAfterTheResultExpires) {
  ManualClock clock;
  g_clock = &clock;
  JobStoreOptions o;
  o.result_ttl = 1s;
  o.idempotency_ttl = 1h;
  InMemoryJobStore store(o, clock);
  auto j = make_idempotent_job(1, "k");
  j->attempts = 2;
  store.add(j);
  store.remember_idempotent("t", "k", j);
  finish(store, clock, j, "result");
  clock.advance(1s);
  EXPECT_EQ(store.find(JobId{1}), nullptr);
  auto match = store.find_idempotent("t", "k");
  ASSERT_TRUE(match);
  EXPECT_EQ(match->id, JobId{1});
  EXPECT_EQ(match->job, nullptr);
  EXPECT_EQ(match->final_state.id, JobId{1});
  EXPECT_EQ(match->final_state.state, JobState::kSucceeded);
  EXPECT_EQ(match->final_state.attempts, 2u);
  EXPECT_EQ(match->final_state.troupe, "t");
  clock.advance(1h);
  EXPECT_FALSE(store.find_idempotent("t", "k"));
}

TEST(InMemoryJobStore, AJobFinishedBeforeItsKeyIsRememberedKeepsItsFinalState) {
  ManualClock clock;
  g_clock = &clock;
  JobStoreOptions o;
  o.result_ttl = 1s;
  InMemoryJobStore store(o, clock);
  auto j = make_idempotent_job(1, "k");
  store.add(j);
  finish(store, clock, j);  // an actor was quicker than the submitting thread
  store.remember_idempotent("t", "k", j);
  clock.advance(1s);
  auto match = store.find_idempotent("t", "k");
  ASSERT_TRUE(match);
  EXPECT_EQ(match->job, nullptr);
  EXPECT_EQ(match->final_state.state, JobState::kSucceeded);
}

TEST(InMemoryJobStore, IdempotencyKeysCountAgainstTheLimitsAndTheOldestGoFirst) {
  ManualClock clock;
  g_clock = &clock;
  JobStoreOptions o;
  o.max_jobs = 4;
  o.result_ttl = 1s;
  o.idempotency_ttl = 1h;
  InMemoryJobStore store(o, clock);
  const std::string long_key(100, 'k');
  for (std::uint64_t i = 1; i <= 20; ++i) {
    auto j = make_idempotent_job(i, long_key + std::to_string(i));
    store.add(j);
    store.remember_idempotent("t", j->extras->idempotency_key, j);
    finish(store, clock, j);
    clock.advance(2s);  // its result expires; its key stays (a tombstone)
  }
  store.add(make_job(21));
  EXPECT_LE(store.size(), o.max_jobs);
  EXPECT_GE(store.idempotency_keys(), 1u);
  EXPECT_LT(store.idempotency_keys(), o.max_jobs);
  // The keys' bytes are counted (two copies of troupe, separator and key each).
  EXPECT_EQ(store.bytes(), 1 + store.idempotency_keys() * 2 * (1 + 1 + long_key.size() + 2));
  EXPECT_FALSE(store.find_idempotent("t", long_key + "1"));  // the oldest went
  EXPECT_TRUE(store.find_idempotent("t", long_key + "20"));  // the newest stayed
}

TEST(InMemoryJobStore, IdempotencyKeysCountAgainstMaxBytes) {
  ManualClock clock;
  g_clock = &clock;
  JobStoreOptions o;
  o.max_bytes = 1000;
  o.result_ttl = 1s;
  InMemoryJobStore store(o, clock);
  for (std::uint64_t i = 1; i <= 50; ++i) {
    auto j = make_job(i, "");
    store.add(j);
    store.remember_idempotent(
        "t", std::string(100, 'a' + static_cast<char>(i % 26)) + std::to_string(i), j);
    finish(store, clock, j, "");
    clock.advance(2s);
  }
  store.add(make_job(51, ""));
  EXPECT_LE(store.bytes(), o.max_bytes);
  EXPECT_LE(store.idempotency_keys(), o.max_bytes / 200);
  EXPECT_TRUE(store.has_room(0));
}

TEST(InMemoryJobStore, AJobAddedAgainReplacesItsStaleRecord) {
  // A shared store: a job lost to another replica keeps its stale record
  // until it expires; claimed back meanwhile, the new record replaces it
  // and the stale one's expiry never evicts the new one while in flight.
  ManualClock clock;
  g_clock = &clock;
  JobStoreOptions o;
  o.result_ttl = 10s;
  InMemoryJobStore store(o, clock);
  auto stale = make_job(1, "pp");
  store.add(stale);
  finish(store, clock, stale, "rrr");
  EXPECT_EQ(store.bytes(), 5u);
  auto again = make_job(1, "p");
  store.add(again);
  EXPECT_EQ(store.find(JobId{1}), again);
  EXPECT_EQ(store.size(), 1u);
  EXPECT_EQ(store.bytes(), 1u);
  clock.advance(11s);
  store.add(make_job(65));                 // the same shard (64 shards): trims its expired entries
  EXPECT_EQ(store.find(JobId{1}), again);  // in flight: never evicted
  // A late finish of the stale record counts nothing.
  store.finished(stale, detail::to_ns(clock.now()));
  EXPECT_EQ(store.size(), 2u);
  EXPECT_EQ(store.bytes(), 2u);
  finish(store, clock, again, "r");
  clock.advance(10s);
  EXPECT_EQ(store.find(JobId{1}), nullptr);
}

TEST(InMemoryJobStore, AJobFinishedBeforeItsAddIsStillAccounted) {
  ManualClock clock;
  g_clock = &clock;
  InMemoryJobStore store({}, clock);
  auto j = make_job(7);
  finish(store, clock, j, "out");
  store.add(j);
  EXPECT_EQ(store.find(JobId{7}), j);
  EXPECT_EQ(store.bytes(), 4u);  // "p" + "out"
}

}  // namespace
}  // namespace troupe::core
