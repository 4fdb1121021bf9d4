// The dispatcher alone: plain Workers, no io_context, no clock.
#include "core/dispatcher.h"

#include <gtest/gtest.h>

namespace troupe::core::detail {
namespace {

class Gauges final : public DispatchGauges {
 public:
  void mailbox(std::uint64_t d, std::uint64_t c) override {
    depth = d;
    capacity = c;
  }
  void actors(std::uint32_t t, std::uint32_t b) override {
    total = t;
    busy = b;
  }
  std::uint64_t depth = 0, capacity = 0;
  std::uint32_t total = 0, busy = 0;
};

JobPtr job(std::uint64_t id, std::string key = {}) {
  auto j = std::make_shared<Job>();
  j->id = JobId{id};
  if (!key.empty()) {
    j->extras = std::make_unique<JobExtras>();
    j->extras->key = std::move(key);
  }
  return j;
}

Pass go() {
  return Pass::kGo;
}

struct DispatcherTest : ::testing::Test {
  std::vector<WorkerPtr> workers(int n) {
    std::vector<WorkerPtr> w;
    for (int i = 0; i < n; ++i) w.push_back(std::make_shared<Worker>(next_++));
    d.add(w);
    return w;
  }
  Gauges gauges;
  Dispatcher d{DispatchStrategy::kLeastLoaded, 2, gauges};
  std::uint32_t next_ = 0;
};

TEST_F(DispatcherTest, AdmitsUpToCapacityThenRefusesWithTheFacts) {
  auto w = workers(2);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(d.admit(job(i)).queued);
  auto a = d.admit(job(9));
  EXPECT_FALSE(a.queued);
  EXPECT_EQ(a.depth, 4u);
  EXPECT_EQ(a.capacity, 4u);
  EXPECT_EQ(a.workers, 2u);
  EXPECT_EQ(gauges.depth, 4u);
}

TEST_F(DispatcherTest, OneWakePerBurstAndTheTakerChainsTheNext) {
  auto w = workers(2);
  // Both start busy; they look for work and go idle.
  EXPECT_FALSE(d.take(*w[0], go).job);
  EXPECT_FALSE(d.take(*w[1], go).job);
  EXPECT_EQ(gauges.busy, 0u);
  auto first = d.admit(job(1));
  ASSERT_TRUE(first.wake);
  EXPECT_FALSE(d.admit(job(2)).wake);  // one wake in flight
  auto t = d.take(*first.wake, go);
  ASSERT_TRUE(t.job);
  EXPECT_EQ(t.job->id, JobId{1});
  ASSERT_TRUE(t.chain);  // work remains and a worker idles: wake it
  EXPECT_NE(t.chain.get(), first.wake.get());
}

TEST_F(DispatcherTest, AKeyIsPinnedToOneWorkerWhileItHasJobsPending) {
  Dispatcher keyed{DispatchStrategy::kKey, 8, gauges};
  std::vector<WorkerPtr> w{std::make_shared<Worker>(0), std::make_shared<Worker>(1)};
  keyed.add(w);
  auto a = job(1, "k"), b = job(2, "k");
  ASSERT_TRUE(keyed.admit(a).queued);
  ASSERT_TRUE(keyed.admit(b).queued);
  // Exactly one worker holds both, in order; the other sees nothing.
  auto t0 = keyed.take(*w[0], go);
  auto t1 = keyed.take(*w[1], go);
  Worker& owner = t0.job ? *w[0] : *w[1];
  auto& first = t0.job ? t0 : t1;
  ASSERT_TRUE(first.job);
  EXPECT_EQ(first.job->id, JobId{1});
  EXPECT_FALSE((t0.job ? t1 : t0).job);
  EXPECT_EQ(keyed.take(owner, go).job->id, JobId{2});
}

TEST_F(DispatcherTest, ARefusingBreakerParksTheWorkerOnceAndUnparkWakesIt) {
  auto w = workers(1);
  EXPECT_FALSE(d.take(*w[0], go).job);  // idle
  auto a = d.admit(job(1));
  ASSERT_TRUE(a.wake);
  auto t = d.take(*w[0], [] { return Pass::kBreakerRefused; });
  EXPECT_FALSE(t.job);
  EXPECT_EQ(t.parked, Park::kBreaker);
  EXPECT_TRUE(t.first_park);
  EXPECT_TRUE(d.parked_by_breaker());
  EXPECT_FALSE(d.admit(job(2)).wake);  // parked: a submit does not wake it
  auto woken = d.unpark(Park::kBreaker);
  ASSERT_EQ(woken.size(), 1u);
  auto again = d.take(*woken[0], [] { return Pass::kGoWithPermit; });
  ASSERT_TRUE(again.job);
  EXPECT_TRUE(again.breaker_permit);
}

TEST_F(DispatcherTest, EndedJobsAreSkippedAndTakeAllEmptiesEveryQueue) {
  auto w = workers(1);
  auto a = job(1), b = job(2), c = job(3);
  d.admit(a);
  d.admit(b);
  a->state.store(JobState::kCancelled);
  auto t = d.take(*w[0], go);
  ASSERT_TRUE(t.job);
  EXPECT_EQ(t.job->id, JobId{2});
  d.admit(c);
  auto all = d.take_all();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0]->id, JobId{3});
  EXPECT_EQ(d.load().queued, 0u);
  EXPECT_EQ(gauges.depth, 0u);
}

TEST_F(DispatcherTest, RemovingIdleWorkersShrinksCapacityAndBusyOnesRetireAfterTheirJob) {
  auto w = workers(2);
  EXPECT_FALSE(d.take(*w[0], go).job);  // w0 idle, w1 busy
  auto r = d.remove(2, false);
  EXPECT_EQ(r.removed, 2u);
  ASSERT_EQ(r.dropped.size(), 1u);
  EXPECT_EQ(r.dropped[0], w[0]);
  EXPECT_EQ(d.load().workers, 1u);
  EXPECT_EQ(gauges.capacity, 2u);
  auto t = d.take(*w[1], go);
  EXPECT_EQ(t.retired, w[1]);
  EXPECT_EQ(d.load().workers, 0u);
}

// Shutdown: every worker leaves at once (the troupe releases them, which
// frees it); a worker still finishing its turn parks nowhere afterwards (the
// idle list must not point at it once it is freed), and no worker joins.
TEST_F(DispatcherTest, CloseLetsEveryWorkerGoAndKeepsNone) {
  auto w = workers(2);
  EXPECT_FALSE(d.take(*w[0], go).job);  // idle
  auto gone = d.close();
  EXPECT_EQ(gone.size(), 2u);
  EXPECT_EQ(d.load().workers, 0u);
  EXPECT_EQ(d.load().idle, 0u);
  EXPECT_EQ(gauges.total, 0u);
  EXPECT_FALSE(d.take(*w[1], go).job);
  EXPECT_EQ(d.load().idle, 0u);
  EXPECT_FALSE(d.add({std::make_shared<Worker>(7)}));
  EXPECT_EQ(d.load().workers, 0u);
}

}  // namespace
}  // namespace troupe::core::detail
