// One Troupe on its own: a fake host, an injected handler factory, a
// ManualClock and io.poll() on the test thread.
#include "core/troupe.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <stdexcept>

#include "core/manual_clock.h"
#include "tests/unit/core/test_support.h"

namespace troupe::core::detail {
namespace {

using namespace std::chrono_literals;
using Kind = BuiltinHandlerOptions::Kind;

class Host final : public TroupeHost {
 public:
  JobId next_id() override { return JobId{++id}; }
  void watch_ended(WatchId) override {}
  void drain_ended(bool) override {}
  void drain_left(bool) override {}
  std::uint64_t id = 0;
};

class TroupeTest : public ::testing::Test {
 protected:
  void start(TroupeOptions o, HandlerFactory factory) {
    troupe_ = std::make_shared<Troupe>(std::move(o), io_, clock_, observer_, *store_, host_, &name_,
                                       std::move(factory));
    troupe_->start();
    run();
  }
  ~TroupeTest() override {
    if (troupe_) troupe_->shutdown();
    run();
  }
  void run() {
    io_.restart();
    io_.poll();
  }
  void advance(Duration d) {
    clock_.advance(d);
    run();
  }
  testing::RecordingTroupeObserver& obs() { return observer_.of(name_); }

  const std::string name_ = "t";
  ManualClock clock_;
  boost::asio::io_context io_;
  testing::RecordingObserver observer_;
  std::unique_ptr<JobStore> store_ = std::make_unique<InMemoryJobStore>(JobStoreOptions{}, clock_);
  Host host_;
  std::shared_ptr<Troupe> troupe_;
};

// Issue 11, defect 5: a handler that could not be rebuilt after a crash was
// swallowed: the actor stopped, the troupe said "degraded" and nobody knew
// why. Now it is a give-up with its cause, reported, and retried later.
TEST_F(TroupeTest, AHandlerThatCannotBeRebuiltIsReportedWithItsCauseAndRetried) {
  auto o = testing::builtin_troupe("t", Kind::kFail, 1);
  testing::builtin(o)->fail_mode = BuiltinHandlerOptions::FailMode::kThrow;
  o.supervisor.backoff_initial = 10ms;
  o.supervisor.backoff_max = 100ms;
  int builds = 0;
  start(o, [&](const HandlerOptions& h, boost::asio::any_io_executor ex, Clock& c) {
    ++builds;
    if (builds == 2 || builds == 3) throw std::runtime_error("worker binary missing");
    return make_handler(h, std::move(ex), c);
  });
  JobRequest r;
  r.troupe = "t";
  ASSERT_TRUE(std::holds_alternative<Accepted>(troupe_->submit(std::move(r), {})));
  run();          // build 1, the job crashes the actor
  advance(10ms);  // restart: build 2 throws -> give up for backoff_max
  auto s = troupe_->status();
  EXPECT_TRUE(s.degraded);
  EXPECT_EQ(s.actors_running, 0u);
  EXPECT_NE(s.degraded_cause.find("worker binary missing"), std::string::npos) << s.degraded_cause;
  {
    std::lock_guard lock(obs().mutex);
    ASSERT_EQ(obs().gave_up.size(), 1u);
    EXPECT_NE(obs().gave_up[0].cause.find("could not be rebuilt: worker binary missing"),
              std::string::npos)
        << obs().gave_up[0].cause;
    EXPECT_EQ(obs().gave_up[0].retry_in, 100ms);
  }
  advance(100ms);  // build 3 throws again: a longer pause
  advance(200ms);  // build 4 works: the actor runs again
  EXPECT_EQ(builds, 4);
  s = troupe_->status();
  EXPECT_FALSE(s.degraded);
  EXPECT_EQ(s.actors_running, 1u);
  std::lock_guard lock(obs().mutex);
  ASSERT_EQ(obs().gave_up.size(), 2u);
  EXPECT_EQ(obs().gave_up[1].retry_in, 200ms);
  EXPECT_EQ(obs().recovered.size(), 1u);
}

TEST_F(TroupeTest, AClosedGateRefusesSubmitsAndReportsWhenTheLastJobEnded) {
  auto o = testing::builtin_troupe("t", Kind::kSleep, 1);
  start(o, make_handler);
  JobRequest r;
  r.troupe = "t";
  r.payload = "1s";
  ASSERT_TRUE(std::holds_alternative<Accepted>(troupe_->submit(std::move(r), {})));
  run();
  int reported = 0;
  troupe_->close([&] { ++reported; });
  JobRequest late;
  late.troupe = "t";
  auto refused = troupe_->submit(std::move(late), {});
  ASSERT_TRUE(std::holds_alternative<Rejection>(refused));
  EXPECT_EQ(std::get<Rejection>(refused).reason, RejectReason::kDraining);
  EXPECT_EQ(reported, 0);
  EXPECT_EQ(troupe_->in_flight(), 1u);
  advance(1s);
  EXPECT_EQ(reported, 1);
  EXPECT_EQ(troupe_->in_flight(), 0u);
}

TEST_F(TroupeTest, AFullTroupeRejectsWithTheNumbersBehindIt) {
  auto o = testing::builtin_troupe("t", Kind::kSleep, 2);
  o.mailbox_capacity = 1;
  start(o, make_handler);
  for (int i = 0; i < 4; ++i) {
    JobRequest r;
    r.troupe = "t";
    r.payload = "1s";
    (void)troupe_->submit(std::move(r), {});
    run();
  }
  JobRequest r;
  r.troupe = "t";
  auto refused = troupe_->submit(std::move(r), {});
  ASSERT_TRUE(std::holds_alternative<Rejection>(refused));
  const auto& rej = std::get<Rejection>(refused);
  EXPECT_EQ(rej.reason, RejectReason::kFull);
  EXPECT_EQ(rej.queued, 2u);
  EXPECT_EQ(rej.capacity, 2u);
  EXPECT_EQ(rej.actors, 2u);
  EXPECT_GT(rej.retry_after, 0ms);
}

}  // namespace
}  // namespace troupe::core::detail
