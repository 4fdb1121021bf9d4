#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include "tests/unit/tools/fake_troupe_server.h"
#include "tools/bench/load.h"
#include "tools/bench/report.h"
#include "tools/bench/targets.h"
#include "tools/common/health_client.h"

namespace troupe::bench {
namespace {

std::vector<std::shared_ptr<grpc::Channel>> channels(const std::string& address, int n) {
  std::vector<std::shared_ptr<grpc::Channel>> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  }
  return out;
}

TEST(BenchLoad, UnarySubmitRunsExactlyCountCalls) {
  tools::testing::FakeTroupeServer server;
  BenchOptions o;
  o.address = server.address();
  o.count = 300;
  o.concurrency = 8;
  auto target = make_target(o);
  const auto report = run_bench(o, *target, channels(o.address, 2));
  EXPECT_EQ(report.requests, 300u);
  EXPECT_EQ(report.ok, 300u);
  EXPECT_TRUE(report.errors.empty());
  EXPECT_EQ(server.submits(), 300u);  // closed loop: nothing beyond the count
  EXPECT_EQ(report.latency.count(), 300u);
  EXPECT_GT(report.throughput(), 0.0);
  EXPECT_LE(report.latency.percentile(50), report.latency.percentile(99));
  EXPECT_EQ(bench_exit_code(report), 0);
}

TEST(BenchLoad, ErrorsAreCountedByCode) {
  tools::testing::FakeTroupeServer server;
  BenchOptions o;
  o.address = server.address();
  o.troupe = "nope";
  o.count = 20;
  o.concurrency = 4;
  auto target = make_target(o);
  const auto report = run_bench(o, *target, channels(o.address, 1));
  EXPECT_EQ(report.requests, 20u);
  EXPECT_EQ(report.ok, 0u);
  ASSERT_EQ(report.errors.size(), 1u);
  EXPECT_EQ(report.errors.at(static_cast<int>(grpc::StatusCode::NOT_FOUND)), 20u);
  EXPECT_EQ(bench_exit_code(report), 3);
}

TEST(BenchLoad, StreamModeAcksEveryJobAcrossStreams) {
  tools::testing::FakeTroupeServer server;
  BenchOptions o;
  o.address = server.address();
  o.mode = Mode::kSubmitStream;
  o.count = 500;
  o.streams = 3;
  o.window = 16;
  auto target = make_target(o);
  const auto report = run_bench(o, *target, channels(o.address, 2));
  EXPECT_EQ(report.requests, 500u);
  EXPECT_EQ(report.ok, 500u);
  EXPECT_EQ(report.stream_failures, 0u);
  EXPECT_EQ(server.stream_requests(), 500u);
}

TEST(BenchLoad, RejectedStreamJobsCountAsErrors) {
  tools::testing::FakeTroupeServer server;
  BenchOptions o;
  o.address = server.address();
  o.mode = Mode::kSubmitStream;
  o.troupe = "missing";
  o.count = 40;
  o.streams = 2;
  o.window = 4;
  auto target = make_target(o);
  const auto report = run_bench(o, *target, channels(o.address, 1));
  EXPECT_EQ(report.requests, 40u);
  EXPECT_EQ(report.errors.at(static_cast<int>(grpc::StatusCode::NOT_FOUND)), 40u);
}

TEST(BenchLoad, ShortStreamsAlwaysHalfCloseAndEnd) {
  // A short stream's last ack can overtake its last write completion; the
  // stream must still half-close (a hang here fails by the ctest timeout).
  tools::testing::FakeTroupeServer server;
  auto chans = channels(server.address(), 1);
  for (int round = 0; round < 100; ++round) {
    BenchOptions o;
    o.address = server.address();
    o.mode = Mode::kSubmitStream;
    o.count = 1 + round % 5;
    o.streams = 1;
    o.window = 8;
    auto target = make_target(o);
    const auto report = run_bench(o, *target, chans);
    ASSERT_EQ(report.requests, *o.count) << "round " << round;
    ASSERT_EQ(report.stream_failures, 0u);
  }
}

TEST(BenchLoad, DurationModeStopsByItself) {
  tools::testing::FakeTroupeServer server;
  BenchOptions o;
  o.address = server.address();
  o.duration = std::chrono::milliseconds(200);
  o.warmup = std::chrono::milliseconds(50);
  o.concurrency = 4;
  auto target = make_target(o);
  const auto report = run_bench(o, *target, channels(o.address, 1));
  EXPECT_GT(report.requests, 0u);
  // Warm-up calls are not reported: the server saw more than were measured.
  EXPECT_GT(server.submits(), report.requests);
  EXPECT_GE(report.elapsed, std::chrono::milliseconds(150));
  EXPECT_LT(report.elapsed, std::chrono::seconds(30));
}

TEST(HealthClient, ReportsServingPerServiceAndUnknown) {
  tools::testing::FakeTroupeServer server;
  auto ch = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  const auto overall = tools::check_health(ch, "", std::chrono::seconds(10));
  ASSERT_TRUE(overall.status.ok()) << overall.status.error_message();
  EXPECT_EQ(overall.serving, tools::ServingStatus::kServing);
  EXPECT_EQ(tools::check_health(ch, "echo", std::chrono::seconds(10)).serving,
            tools::ServingStatus::kServing);
  server.set_serving(false);
  EXPECT_EQ(tools::check_health(ch, "", std::chrono::seconds(10)).serving,
            tools::ServingStatus::kNotServing);
  EXPECT_EQ(tools::check_health(ch, "nope", std::chrono::seconds(10)).status.error_code(),
            grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace troupe::bench
