#include "tools/bench/bench_options.h"

#include <gtest/gtest.h>

namespace troupe::bench {
namespace {

using namespace std::chrono_literals;

TEST(BenchOptions, DefaultsToTenSecondsOfUnarySubmit) {
  const auto o = std::get<BenchOptions>(parse_bench_options({}, nullptr));
  EXPECT_EQ(o.mode, Mode::kSubmit);
  EXPECT_EQ(o.duration, std::chrono::nanoseconds(10s));
  EXPECT_FALSE(o.count);
  EXPECT_EQ(o.address, "localhost:50051");
}

TEST(BenchOptions, ParsesEveryOption) {
  const auto o = std::get<BenchOptions>(parse_bench_options(
      {"--mode", "stream",   "--troupe=t", "--concurrency", "32",   "--streams",
       "4",      "--window", "128",        "--count",       "1000", "--payload-size",
       "256",    "--warmup", "1s",         "--threads",     "3",    "--deadline",
       "2s",     "--output", "json",       "--address",     "a:1"},
      "env:2"));
  EXPECT_EQ(o.mode, Mode::kSubmitStream);
  EXPECT_EQ(o.troupe, "t");
  EXPECT_EQ(o.concurrency, 32u);
  EXPECT_EQ(o.streams, 4u);
  EXPECT_EQ(o.window, 128u);
  EXPECT_EQ(o.count, 1000u);
  EXPECT_FALSE(o.duration);
  EXPECT_EQ(o.payload_size, 256u);
  EXPECT_EQ(o.warmup, std::chrono::nanoseconds(1s));
  EXPECT_EQ(o.threads, 3u);
  EXPECT_EQ(o.call_deadline, std::chrono::nanoseconds(2s));
  EXPECT_TRUE(o.json);
  EXPECT_EQ(o.address, "a:1");
  EXPECT_EQ(std::get<BenchOptions>(parse_bench_options({}, "env:2")).address, "env:2");
  EXPECT_EQ(std::get<BenchOptions>(parse_bench_options({"--mode", "submit-wait"}, nullptr)).mode,
            Mode::kSubmitWait);
}

TEST(BenchOptions, RejectsBadValues) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--mode", "udp"},
           {"--concurrency", "0"},
           {"--concurrency", "-1"},
           {"--window", "x"},
           {"--count", "0"},
           {"--duration", "5"},
           {"--duration", "1.5s"},
           {"--warmup", "1.5s"},
           {"--duration", "0s"},
           {"--duration", "1s", "--count", "5"},
           {"--output", "xml"},
           {"--what", "1"},
           {"positional"},
           {"--count"},
       }) {
    auto r = parse_bench_options(args, nullptr);
    ASSERT_TRUE(std::holds_alternative<BenchUsageError>(r)) << args[0];
    EXPECT_NE(std::get<BenchUsageError>(r).message.find("troupe-bench --help"), std::string::npos);
  }
}

TEST(BenchOptions, ParsesTheEchoModes) {
  EXPECT_EQ(std::get<BenchOptions>(parse_bench_options({"--mode", "echo"}, nullptr)).mode,
            Mode::kEcho);
  const auto o = std::get<BenchOptions>(parse_bench_options(
      {"--mode=echo-stream", "--streams", "4", "--window", "64", "--payload-size", "64"}, nullptr));
  EXPECT_EQ(o.mode, Mode::kEchoStream);
  EXPECT_EQ(o.streams, 4u);
  EXPECT_EQ(o.payload_size, 64u);
  EXPECT_STREQ(mode_name(Mode::kEcho), "echo");
  EXPECT_STREQ(mode_name(Mode::kEchoStream), "echo-stream");
  EXPECT_TRUE(streaming_mode(Mode::kEchoStream));
  EXPECT_TRUE(streaming_mode(Mode::kSubmitStream));
  EXPECT_FALSE(streaming_mode(Mode::kEcho));
  EXPECT_FALSE(streaming_mode(Mode::kSubmitWait));
}

TEST(BenchOptions, BaselineModeIsTheEchoCounterpart) {
  EXPECT_EQ(baseline_mode(Mode::kSubmit), Mode::kEcho);
  EXPECT_EQ(baseline_mode(Mode::kSubmitWait), Mode::kEcho);
  EXPECT_EQ(baseline_mode(Mode::kSubmitStream), Mode::kEchoStream);
  // Echo against echo compares two echo servers (server styles).
  EXPECT_EQ(baseline_mode(Mode::kEcho), Mode::kEcho);
  EXPECT_EQ(baseline_mode(Mode::kEchoStream), Mode::kEchoStream);
  const auto o = std::get<BenchOptions>(
      parse_bench_options({"--baseline", "h:1", "--mode", "echo-stream"}, nullptr));
  EXPECT_EQ(o.baseline, "h:1");
}

TEST(BenchOptions, BaselineAndRounds) {
  const auto defaults = std::get<BenchOptions>(parse_bench_options({}, nullptr));
  EXPECT_FALSE(defaults.baseline);
  EXPECT_EQ(defaults.rounds, 5u);
  const auto o = std::get<BenchOptions>(parse_bench_options(
      {"--mode", "submit-wait", "--baseline", "127.0.0.1:7", "--rounds", "3", "--count", "9"},
      nullptr));
  EXPECT_EQ(o.baseline, "127.0.0.1:7");
  EXPECT_EQ(o.rounds, 3u);
  EXPECT_EQ(o.mode, Mode::kSubmitWait);
  EXPECT_EQ(std::get<BenchOptions>(parse_bench_options({"--baseline=h:1"}, nullptr)).rounds, 5u);
}

TEST(BenchOptions, RejectsBadSideBySideOptions) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--rounds", "3"},                       // without --baseline
           {"--baseline", "h:1", "--rounds", "0"},  // no rounds
           {"--baseline", "h:1", "--rounds", "x"},  // not a number
           {"--baseline", ""},                      // no address
       }) {
    auto r = parse_bench_options(args, nullptr);
    ASSERT_TRUE(std::holds_alternative<BenchUsageError>(r)) << args[0] << " " << args[1];
  }
}

}  // namespace
}  // namespace troupe::bench
