#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include "tools/bench/compare.h"

namespace troupe::bench {
namespace {

TEST(BenchCompare, SpreadOfAnOddCountTakesTheMiddleValue) {
  const Spread s = spread_of({3.0, 1.0, 2.0});
  EXPECT_DOUBLE_EQ(s.min, 1.0);
  EXPECT_DOUBLE_EQ(s.median, 2.0);
  EXPECT_DOUBLE_EQ(s.max, 3.0);
}

TEST(BenchCompare, SpreadOfAnEvenCountAveragesTheMiddleTwo) {
  const Spread s = spread_of({4.0, 1.0, 3.0, 10.0});
  EXPECT_DOUBLE_EQ(s.min, 1.0);
  EXPECT_DOUBLE_EQ(s.median, 3.5);
  EXPECT_DOUBLE_EQ(s.max, 10.0);
  const Spread one = spread_of({7.0});
  EXPECT_DOUBLE_EQ(one.min, 7.0);
  EXPECT_DOUBLE_EQ(one.median, 7.0);
  EXPECT_DOUBLE_EQ(one.max, 7.0);
  const Spread none = spread_of({});
  EXPECT_DOUBLE_EQ(none.median, 0.0);
}

TEST(BenchCompare, RatiosAreDaemonOverBaselinePerRound) {
  // Baseline throughput 1000, 2000, 4000; daemon 500, 1500, 1000:
  // ratios 0.5, 0.75, 0.25. Latencies: daemon twice, thrice, four times.
  const std::vector<RoundFigures> rounds = {
      {{1000, 100, 1000}, {500, 200, 2000}},
      {{2000, 50, 500}, {1500, 150, 1500}},
      {{4000, 10, 100}, {1000, 40, 400}},
  };
  const CompareSummary s = summarize_rounds(rounds);
  EXPECT_EQ(s.rounds, 3u);
  EXPECT_DOUBLE_EQ(s.throughput_ratio.min, 0.25);
  EXPECT_DOUBLE_EQ(s.throughput_ratio.median, 0.5);
  EXPECT_DOUBLE_EQ(s.throughput_ratio.max, 0.75);
  EXPECT_DOUBLE_EQ(s.p50_ratio.min, 2.0);
  EXPECT_DOUBLE_EQ(s.p50_ratio.median, 3.0);
  EXPECT_DOUBLE_EQ(s.p50_ratio.max, 4.0);
  EXPECT_DOUBLE_EQ(s.p99_ratio.median, 3.0);
  // Medians of the raw figures, each side on its own (not the ratio's round).
  EXPECT_DOUBLE_EQ(s.baseline_median.throughput, 2000);
  EXPECT_DOUBLE_EQ(s.daemon_median.throughput, 1000);
  EXPECT_DOUBLE_EQ(s.baseline_median.p50_us, 50);
  EXPECT_DOUBLE_EQ(s.daemon_median.p50_us, 150);
  EXPECT_DOUBLE_EQ(s.baseline_median.p99_us, 500);
  EXPECT_DOUBLE_EQ(s.daemon_median.p99_us, 1500);
}

TEST(BenchCompare, RoundsWithAZeroBaselineHaveNoRatio) {
  const std::vector<RoundFigures> rounds = {
      {{0, 0, 0}, {100, 10, 10}},  // the baseline completed nothing
      {{200, 10, 20}, {100, 30, 40}},
  };
  const CompareSummary s = summarize_rounds(rounds);
  EXPECT_DOUBLE_EQ(s.throughput_ratio.min, 0.5);
  EXPECT_DOUBLE_EQ(s.throughput_ratio.max, 0.5);
  EXPECT_DOUBLE_EQ(s.p99_ratio.median, 2.0);
  EXPECT_DOUBLE_EQ(s.baseline_median.throughput, 100);  // both rounds count here
}

BenchReport report(Mode mode, std::uint64_t ok, int latency_us) {
  BenchReport r;
  r.options.mode = mode;
  r.elapsed = std::chrono::seconds(1);
  r.requests = ok;
  r.ok = ok;
  for (std::uint64_t i = 0; i < ok; ++i) r.latency.record(std::chrono::microseconds(latency_us));
  return r;
}

TEST(BenchCompare, FiguresComeFromTheReport) {
  const SideFigures f = figures_of(report(Mode::kEcho, 400, 250));
  EXPECT_DOUBLE_EQ(f.throughput, 400);
  EXPECT_DOUBLE_EQ(f.p50_us, 250);
  EXPECT_DOUBLE_EQ(f.p99_us, 250);
}

TEST(BenchCompare, JsonHasRoundsRatiosAndMedians) {
  const std::vector<CompareRound> rounds = {
      {report(Mode::kEcho, 1000, 100), report(Mode::kSubmit, 500, 300)},
      {report(Mode::kEcho, 800, 100), report(Mode::kSubmit, 600, 200)},
  };
  std::vector<RoundFigures> figures;
  for (const auto& r : rounds) figures.push_back({figures_of(r.baseline), figures_of(r.daemon)});
  const std::string json = compare_json(rounds, summarize_rounds(figures));
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &parsed).ok()) << json;
  const auto& f = parsed.fields();
  const auto& list = f.at("rounds").list_value().values();
  ASSERT_EQ(list.size(), 2);
  EXPECT_EQ(list[0]
                .struct_value()
                .fields()
                .at("baseline")
                .struct_value()
                .fields()
                .at("mode")
                .string_value(),
            "echo");
  EXPECT_DOUBLE_EQ(
      list[1].struct_value().fields().at("daemon").struct_value().fields().at("ok").number_value(),
      600);
  const auto& tp = f.at("ratio").struct_value().fields().at("throughput").struct_value().fields();
  EXPECT_DOUBLE_EQ(tp.at("min").number_value(), 0.5);
  EXPECT_DOUBLE_EQ(tp.at("median").number_value(), 0.625);
  EXPECT_DOUBLE_EQ(tp.at("max").number_value(), 0.75);
  const auto& p50 = f.at("ratio").struct_value().fields().at("p50").struct_value().fields();
  EXPECT_DOUBLE_EQ(p50.at("median").number_value(), 2.5);
  EXPECT_TRUE(f.at("ratio").struct_value().fields().contains("p99"));
  EXPECT_DOUBLE_EQ(f.at("median")
                       .struct_value()
                       .fields()
                       .at("baseline")
                       .struct_value()
                       .fields()
                       .at("throughput_rps")
                       .number_value(),
                   900);
}

TEST(BenchCompare, TextShowsEachRoundAndTheRatioSpread) {
  const CompareRound round{report(Mode::kEcho, 1000, 100), report(Mode::kSubmit, 500, 300)};
  const std::string line = compare_round_text(0, 2, round);
  EXPECT_NE(line.find("round 1/2"), std::string::npos) << line;
  EXPECT_NE(line.find("1000.0 req/s"), std::string::npos) << line;
  EXPECT_NE(line.find("p99 300us"), std::string::npos) << line;
  BenchOptions o;
  o.baseline = "127.0.0.1:1";
  const std::string summary = compare_summary_text(
      o, summarize_rounds({{figures_of(round.baseline), figures_of(round.daemon)}}));
  EXPECT_NE(summary.find("0.500 / 0.500 / 0.500"), std::string::npos) << summary;
  EXPECT_NE(summary.find("3.000 / 3.000 / 3.000"), std::string::npos) << summary;
}

TEST(BenchCompare, ExitCodeIsNonZeroWhenASideHadNoSuccess) {
  std::vector<CompareRound> rounds = {
      {report(Mode::kEcho, 10, 100), report(Mode::kSubmit, 10, 300)}};
  EXPECT_EQ(compare_exit_code(rounds), 0);
  rounds.push_back({report(Mode::kEcho, 10, 100), report(Mode::kSubmit, 0, 300)});
  EXPECT_NE(compare_exit_code(rounds), 0);
}

}  // namespace
}  // namespace troupe::bench
