// troupe-bench --baseline: side by side against a real echo_server and a
// real trouped; the report's rounds, ratios and the daemon's own counters
// agree.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "support/echo_server_process.h"
#include "support/test_config.h"
#include "support/trouped_process.h"

namespace troupe::test {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

struct BenchRun {
  int rc = -1;
  std::string out;
};

BenchRun run_bench(const std::vector<std::string>& args) {
  std::string cmd = TROUPE_BENCH_PATH;
  for (const auto& a : args) cmd.append(" ").append(a);
  BenchRun run;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) return run;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) run.out += buf;
  const int status = ::pclose(pipe);
  run.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

double number(const Struct& s, const std::string& key) {
  return s.fields().at(key).number_value();
}
const Struct& object(const Struct& s, const std::string& key) {
  return s.fields().at(key).struct_value();
}

/// The ratio daemon/baseline of one figure in each round, sorted.
std::vector<double> ratios(const Struct& report, double (*figure)(const Struct& side)) {
  std::vector<double> out;
  for (const Value& round : report.fields().at("rounds").list_value().values()) {
    out.push_back(figure(object(round.struct_value(), "daemon")) /
                  figure(object(round.struct_value(), "baseline")));
  }
  std::sort(out.begin(), out.end());
  return out;
}

double throughput(const Struct& side) {
  return number(side, "throughput_rps");
}
double p50(const Struct& side) {
  return number(object(side, "latency_us"), "p50");
}
double p99(const Struct& side) {
  return number(object(side, "latency_us"), "p99");
}

class BenchBaseline : public ::testing::Test {
 protected:
  void SetUp() override {
    TroupeSpec noop{.name = "noop", .builtin = "noop", .max_actors = 4, .mailbox_capacity = 4096};
    TroupeSpec stream{
        .name = "noop_stream", .builtin = "noop", .max_actors = 4, .mailbox_capacity = 4096};
    trouped_ = start_trouped({.config_yaml = config_yaml({}, {noop, stream})});
    ASSERT_NE(trouped_, nullptr);
    echo_ = start_echo_server("callback");
    ASSERT_NE(echo_, nullptr);
  }

  double metric(const std::string& series) const {
    const auto scrape = http_get(trouped_->metrics_address(), "/metrics");
    EXPECT_EQ(scrape.status, 200);
    return metric_value(scrape.body, series).value_or(-1);
  }

  /// Runs the side-by-side bench and checks what every such report promises;
  /// returns the daemon-side ok count summed over the rounds.
  double check_side_by_side(const std::vector<std::string>& extra, const char* baseline_mode,
                            const char* daemon_mode) {
    std::vector<std::string> args = {"--address",      trouped_->grpc_address(),
                                     "--baseline",     echo_->address,
                                     "--rounds",       "2",
                                     "--count",        "200",
                                     "--payload-size", "64",
                                     "--output",       "json"};
    args.insert(args.end(), extra.begin(), extra.end());
    const BenchRun run = run_bench(args);
    EXPECT_EQ(run.rc, 0) << run.out;
    Struct report;  // owns every field read below
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(run.out, &report).ok()) << run.out;
    const auto& rounds = report.fields().at("rounds").list_value().values();
    EXPECT_EQ(rounds.size(), 2u) << run.out;
    double daemon_ok = 0;
    for (const Value& round : rounds) {
      const Struct& baseline = object(round.struct_value(), "baseline");
      const Struct& daemon = object(round.struct_value(), "daemon");
      EXPECT_EQ(baseline.fields().at("mode").string_value(), baseline_mode);
      EXPECT_EQ(daemon.fields().at("mode").string_value(), daemon_mode);
      EXPECT_EQ(baseline.fields().at("address").string_value(), echo_->address);
      EXPECT_EQ(daemon.fields().at("address").string_value(), trouped_->grpc_address());
      for (const Struct* side : {&baseline, &daemon}) {
        EXPECT_EQ(number(*side, "requests"), 200);
        EXPECT_GT(throughput(*side), 0);
        EXPECT_GT(p99(*side), 0);
      }
      EXPECT_EQ(number(baseline, "ok"), 200);  // echo_server never refuses
      daemon_ok += number(daemon, "ok");
    }
    // The summary is the spread of the per-round ratios: with two rounds,
    // min, the mean of the two, max. Figures in the JSON carry 6 digits.
    const Struct& ratio = object(report, "ratio");
    const std::pair<const char*, double (*)(const Struct&)> figures[] = {
        {"throughput", throughput}, {"p50", p50}, {"p99", p99}};
    for (const auto& [name, figure] : figures) {
      const auto r = ratios(report, figure);
      const Struct& spread = object(ratio, name);
      EXPECT_NEAR(number(spread, "min"), r.front(), 1e-4 * r.front()) << name;
      EXPECT_NEAR(number(spread, "max"), r.back(), 1e-4 * r.back()) << name;
      EXPECT_NEAR(number(spread, "median"), (r.front() + r.back()) / 2, 1e-4 * r.back()) << name;
      EXPECT_LE(number(spread, "min"), number(spread, "median")) << name;
      EXPECT_LE(number(spread, "median"), number(spread, "max")) << name;
    }
    return daemon_ok;
  }

  std::unique_ptr<TroupedProcess> trouped_;
  std::unique_ptr<EchoServerProcess> echo_;
};

TEST_F(BenchBaseline, UnarySideBySideAgreesWithTheDaemonsCounters) {
  const double ok =
      check_side_by_side({"--troupe", "noop", "--concurrency", "8"}, "echo", "submit");
  EXPECT_GT(ok, 0);
  EXPECT_EQ(metric(R"(troupe_jobs_submitted_total{troupe="noop"})"), ok);
}

TEST_F(BenchBaseline, StreamSideBySideUsesEchoStream) {
  const double ok = check_side_by_side(
      {"--troupe", "noop_stream", "--mode", "stream", "--streams", "2", "--window", "16"},
      "echo-stream", "stream");
  EXPECT_GT(ok, 0);
  EXPECT_EQ(metric(R"(troupe_jobs_submitted_total{troupe="noop_stream"})"), ok);
}

TEST_F(BenchBaseline, TextReportShowsEveryRoundAndTheRatios) {
  const BenchRun run = run_bench({"--address", trouped_->grpc_address(), "--baseline",
                                  echo_->address, "--troupe", "noop", "--mode", "submit-wait",
                                  "--rounds", "2", "--count", "50", "--concurrency", "4"});
  ASSERT_EQ(run.rc, 0) << run.out;
  EXPECT_NE(run.out.find("round 1/2"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("round 2/2"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("vs baseline echo"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("daemon/baseline min / median / max"), std::string::npos) << run.out;
}

}  // namespace
}  // namespace troupe::test
