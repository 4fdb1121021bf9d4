#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include "tools/bench/report.h"

namespace troupe::bench {
namespace {

BenchReport sample_report() {
  BenchReport r;
  r.options.troupe = "echo";
  r.elapsed = std::chrono::seconds(2);
  r.requests = 1010;
  r.ok = 1000;
  r.errors[static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED)] = 10;
  for (int i = 1; i <= 1000; ++i) r.latency.record(std::chrono::microseconds(i));
  return r;
}

TEST(BenchReport, JsonHasTheDocumentedShape) {
  const std::string json = report_json(sample_report());
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &parsed).ok()) << json;
  const auto& f = parsed.fields();
  for (const char* key : {"mode", "troupe", "address", "concurrency", "streams", "window",
                          "threads", "payload_size", "elapsed_seconds", "requests", "ok",
                          "throughput_rps", "errors", "stream_failures", "latency_us"}) {
    EXPECT_TRUE(f.contains(key)) << key;
  }
  EXPECT_EQ(f.at("mode").string_value(), "submit");
  EXPECT_DOUBLE_EQ(f.at("requests").number_value(), 1010);
  EXPECT_DOUBLE_EQ(f.at("throughput_rps").number_value(), 505);
  EXPECT_DOUBLE_EQ(f.at("errors").struct_value().fields().at("RESOURCE_EXHAUSTED").number_value(),
                   10);
  const auto& lat = f.at("latency_us").struct_value().fields();
  EXPECT_DOUBLE_EQ(lat.at("p50").number_value(), 500);
  EXPECT_DOUBLE_EQ(lat.at("p90").number_value(), 900);
  EXPECT_DOUBLE_EQ(lat.at("p99").number_value(), 990);
  EXPECT_DOUBLE_EQ(lat.at("p99.9").number_value(), 999);
  EXPECT_DOUBLE_EQ(lat.at("min").number_value(), 1);
  EXPECT_DOUBLE_EQ(lat.at("max").number_value(), 1000);
}

TEST(BenchReport, TextNamesThroughputPercentilesAndErrors) {
  const std::string text = report_text(sample_report());
  EXPECT_NE(text.find("throughput:  505.0 req/s"), std::string::npos) << text;
  EXPECT_NE(text.find("p99.9 999us"), std::string::npos) << text;
  EXPECT_NE(text.find("RESOURCE_EXHAUSTED=10"), std::string::npos) << text;
}

TEST(BenchReport, ExitCodeIsZeroWithAnySuccessElseTheCommonestError) {
  auto r = sample_report();
  EXPECT_EQ(bench_exit_code(r), 0);
  r.ok = 0;
  EXPECT_EQ(bench_exit_code(r), 4);
  r.errors[static_cast<int>(grpc::StatusCode::INTERNAL)] = 50;
  EXPECT_EQ(bench_exit_code(r), 5);
  r.errors.clear();
  EXPECT_EQ(bench_exit_code(r), 5);
}

}  // namespace
}  // namespace troupe::bench
