// troupectl and troupe-bench against the real trouped (started by the
// integration harness on 127.0.0.1:0): every troupectl command, bulk stdin,
// JSON output and exit codes; troupe-bench reports that agree with /metrics.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "support/test_config.h"
#include "support/trouped_process.h"
#include "tests/support/run_process.h"

namespace troupe::test {
namespace {

google::protobuf::Struct parse_json(const std::string& text) {
  google::protobuf::Struct s;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(text, &s).ok()) << text;
  return s;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

/// One trouped for the whole suite: echo, a failing troupe, a slow one and
/// one for the bench (so its counters are the bench's alone).
class ToolsIntegration : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    TroupeSpec echo{.name = "echo", .builtin = "echo", .max_actors = 2};
    TroupeSpec failing{.name = "failing", .builtin = "fail", .max_actors = 1, .max_attempts = 2};
    TroupeSpec slow{.name = "slow", .builtin = "sleep", .sleep = "30s", .max_actors = 1};
    TroupeSpec bench{.name = "bench", .builtin = "noop", .max_actors = 4};
    TroupeSpec bench_stream{.name = "bench_stream", .builtin = "noop", .max_actors = 4};
    TroupeSpec bench_wait{.name = "bench_wait", .builtin = "echo", .max_actors = 4};
    trouped_ = start_trouped({.config_yaml = config_yaml(
                                  {}, {echo, failing, slow, bench, bench_stream, bench_wait})})
                   .release();
  }
  static void TearDownTestSuite() {
    delete trouped_;
    trouped_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(trouped_, nullptr);
    char tmpl[] = "/tmp/tools_integration_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static ProcessResult run(const char* binary, const std::vector<std::string>& args,
                           const std::string& stdin_text = "") {
    std::vector<std::string> argv = {binary};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process({.argv = std::move(argv),
                        .env = {{"TROUPE_ADDRESS", trouped_->grpc_address()}},
                        .stdin_text = stdin_text,
                        .time_limit = 120s});
  }
  ProcessResult ctl(const std::vector<std::string>& args, const std::string& in = "") {
    return run(TROUPECTL_PATH, args, in);
  }
  ProcessResult bench(const std::vector<std::string>& args) { return run(TROUPE_BENCH_PATH, args); }

  static double metric(const std::string& series) {
    const auto scrape = http_get(trouped_->metrics_address(), "/metrics");
    EXPECT_EQ(scrape.status, 200);
    return metric_value(scrape.body, series).value_or(0);
  }

  static TroupedProcess* trouped_;
  std::filesystem::path dir_;
};

TroupedProcess* ToolsIntegration::trouped_ = nullptr;

TEST_F(ToolsIntegration, HealthOfDaemonAndTroupes) {
  const auto all = ctl({"health"});
  EXPECT_EQ(all.exit_code, 0) << all;
  EXPECT_EQ(all.out, "SERVING\n");
  EXPECT_EQ(ctl({"health", "echo"}).exit_code, 0);
  const auto json = ctl({"health", "echo", "--output", "json"});
  EXPECT_EQ(parse_json(json.out).fields().at("status").string_value(), "SERVING");
  const auto unknown = ctl({"health", "no-such-troupe"});
  EXPECT_EQ(unknown.exit_code, 3) << unknown.out << unknown.err;
}

TEST_F(ToolsIntegration, ClusterOnAStoreOfOneProcessSaysItIsNotACluster) {
  const auto cluster = ctl({"cluster"});
  EXPECT_EQ(cluster.exit_code, 5) << cluster;  // FAILED_PRECONDITION: any other RPC error
  EXPECT_NE(cluster.err.find("FAILED_PRECONDITION"), std::string::npos) << cluster;
  EXPECT_NE(cluster.err.find("not a cluster store"), std::string::npos) << cluster;
  EXPECT_EQ(cluster.out, "");
}

TEST_F(ToolsIntegration, SubmitGetWatch) {
  const auto submit = ctl({"submit", "echo", "--payload", "hello"});
  ASSERT_EQ(submit.exit_code, 0) << submit;
  const std::string id = trim(submit.out);
  ASSERT_FALSE(id.empty());
  const auto watch = ctl({"watch", id});
  EXPECT_EQ(watch.exit_code, 0) << watch;
  EXPECT_NE(watch.out.find(id + " SUCCEEDED"), std::string::npos) << watch.out;
  EXPECT_NE(watch.out.find("result: hello"), std::string::npos) << watch.out;
  const auto get = ctl({"get", id, "--output", "json"});
  ASSERT_EQ(get.exit_code, 0) << get;
  const auto job = parse_json(get.out);
  EXPECT_EQ(job.fields().at("id").string_value(), id);
  EXPECT_EQ(job.fields().at("troupe").string_value(), "echo");
  EXPECT_EQ(job.fields().at("state").string_value(), "JOB_STATE_SUCCEEDED");
  EXPECT_EQ(job.fields().at("result").string_value(), "aGVsbG8=");  // base64("hello")
  const auto text = ctl({"get", id});
  EXPECT_NE(text.out.find("result:      hello"), std::string::npos) << text.out;
}

TEST_F(ToolsIntegration, WaitAndIdempotencyAndPayloadFile) {
  std::ofstream(dir_ / "payload") << "file payload";
  const auto waited =
      ctl({"submit", "echo", "--payload-file", (dir_ / "payload").string(), "--wait"});
  EXPECT_EQ(waited.exit_code, 0) << waited;
  EXPECT_NE(waited.out.find("SUCCEEDED"), std::string::npos) << waited.out;
  EXPECT_NE(waited.out.find("result:      file payload"), std::string::npos) << waited.out;

  const auto first = ctl({"submit", "echo", "--payload", "a", "--idempotency-key", "k-1"});
  const auto second = ctl({"submit", "echo", "--payload", "a", "--idempotency-key", "k-1"});
  ASSERT_EQ(first.exit_code, 0);
  ASSERT_EQ(second.exit_code, 0);
  EXPECT_EQ(trim(second.out), trim(first.out) + " (duplicate)");
}

TEST_F(ToolsIntegration, FailedJobExitsOneAndShowsInDead) {
  const auto failed = ctl({"submit", "failing", "--payload", "x", "--wait", "--output", "json"});
  EXPECT_EQ(failed.exit_code, 1) << failed;
  const auto resp = parse_json(failed.out);
  const auto& job = resp.fields().at("job").struct_value().fields();
  EXPECT_EQ(job.at("state").string_value(), "JOB_STATE_DEAD");
  const std::string id = resp.fields().at("job_id").string_value();
  const auto dead = ctl({"dead", "failing", "--limit", "100"});
  EXPECT_EQ(dead.exit_code, 0) << dead;
  EXPECT_NE(dead.out.find(id), std::string::npos) << dead.out;
  const auto dead_json = ctl({"dead", "failing", "--output", "json"});
  EXPECT_GE(parse_json(dead_json.out).fields().at("jobs").list_value().values_size(), 1);
}

TEST_F(ToolsIntegration, CancelARunningJob) {
  const auto submit = ctl({"submit", "slow", "--payload", "30s"});
  ASSERT_EQ(submit.exit_code, 0) << submit;
  const std::string id = trim(submit.out);
  const auto cancel = ctl({"cancel", id});
  EXPECT_EQ(cancel.exit_code, 0) << cancel;
  EXPECT_EQ(cancel.out, id + " cancelled\n");
  const auto watch = ctl({"watch", id, "--deadline", "30s"});
  EXPECT_EQ(watch.exit_code, 1);  // ended, not SUCCEEDED
  EXPECT_NE(watch.out.find(id + " CANCELLED"), std::string::npos) << watch.out;
  const auto again = ctl({"cancel", id});
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_NE(again.out.find("nothing to cancel"), std::string::npos) << again.out;
}

TEST_F(ToolsIntegration, TroupesAndTroupe) {
  const auto list = ctl({"troupes"});
  ASSERT_EQ(list.exit_code, 0) << list;
  for (const char* name : {"echo", "failing", "slow", "bench"}) {
    EXPECT_NE(list.out.find(name), std::string::npos) << list.out;
  }
  const auto json = parse_json(ctl({"troupes", "--output", "json"}).out);
  EXPECT_EQ(json.fields().at("troupes").list_value().values_size(), 6);
  const auto one = ctl({"troupe", "echo"});
  EXPECT_EQ(one.exit_code, 0);
  EXPECT_NE(one.out.find("name:         echo"), std::string::npos) << one.out;
  EXPECT_NE(one.out.find("circuit:      CLOSED"), std::string::npos) << one.out;
  const auto one_json = parse_json(ctl({"troupe", "echo", "--output", "json"}).out);
  EXPECT_EQ(one_json.fields().at("actors").number_value(), 2);
}

TEST_F(ToolsIntegration, ErrorsMapToExitCodes) {
  const auto nf = ctl({"submit", "no-such-troupe", "--payload", "x"});
  EXPECT_EQ(nf.exit_code, 3);
  EXPECT_NE(nf.err.find("NOT_FOUND"), std::string::npos) << nf.err;
  EXPECT_EQ(ctl({"get", "no-such-job"}).exit_code, 2);  // malformed id: INVALID_ARGUMENT
  EXPECT_EQ(ctl({"get", "ffffffffffffffff"}).exit_code, 3);
  EXPECT_EQ(ctl({"troupe", "no-such-troupe"}).exit_code, 3);
  EXPECT_EQ(ctl({"dead", "no-such-troupe"}).exit_code, 3);
  const auto down = ctl({"--address", "127.0.0.1:1", "--deadline", "5s", "troupes"});
  EXPECT_EQ(down.exit_code, 4);
  EXPECT_NE(down.err.find("is trouped running"), std::string::npos) << down.err;
}

TEST_F(ToolsIntegration, BulkStdinSubmitsEveryLine) {
  const double before = metric(R"(troupe_jobs_submitted_total{troupe="echo"})");
  std::string lines;
  constexpr int kLines = 500;
  for (int i = 0; i < kLines; ++i) lines += "line " + std::to_string(i) + "\n";
  const auto bulk = ctl({"submit", "echo", "-", "--window", "32"}, lines);
  ASSERT_EQ(bulk.exit_code, 0) << bulk;
  EXPECT_EQ(std::count(bulk.out.begin(), bulk.out.end(), '\n'), kLines);
  EXPECT_NE(bulk.err.find("500 accepted, 0 rejected"), std::string::npos) << bulk.err;
  EXPECT_EQ(metric(R"(troupe_jobs_submitted_total{troupe="echo"})") - before, kLines);
  // The ids are in input order: the last one ran the last line.
  const std::string last_id = bulk.out.substr(bulk.out.rfind('\n', bulk.out.size() - 2) + 1);
  const auto last = ctl({"watch", trim(last_id)});
  EXPECT_NE(last.out.find("result: line 499"), std::string::npos) << last.out;

  const auto json = ctl({"submit", "no-such-troupe", "-", "--output", "json"}, "a\nb\n");
  EXPECT_EQ(json.exit_code, 3);
  const auto summary = parse_json(json.out);
  EXPECT_EQ(summary.fields().at("rejected").number_value(), 2);
  EXPECT_EQ(summary.fields()
                .at("rejected_by_code")
                .struct_value()
                .fields()
                .at("NOT_FOUND")
                .number_value(),
            2);
}

TEST_F(ToolsIntegration, BenchUnaryAgreesWithMetrics) {
  const auto r =
      bench({"--troupe", "bench", "--count", "400", "--concurrency", "8", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto report = parse_json(r.out);
  const auto& f = report.fields();
  EXPECT_EQ(f.at("requests").number_value(), 400);
  const double ok = f.at("ok").number_value();
  double rejected = 0;
  for (const auto& [code, n] : f.at("errors").struct_value().fields()) {
    EXPECT_EQ(code, "RESOURCE_EXHAUSTED");  // the only error a healthy noop troupe may give
    rejected += n.number_value();
  }
  EXPECT_EQ(ok + rejected, 400);
  EXPECT_EQ(metric(R"(troupe_jobs_submitted_total{troupe="bench"})"), ok);
  EXPECT_GT(f.at("throughput_rps").number_value(), 0);
  const auto& lat = f.at("latency_us").struct_value().fields();
  EXPECT_LE(lat.at("p50").number_value(), lat.at("p99").number_value());
  EXPECT_LE(lat.at("p99").number_value(), lat.at("max").number_value());
}

TEST_F(ToolsIntegration, BenchStreamAgreesWithMetrics) {
  const auto r = bench({"--troupe", "bench_stream", "--mode", "stream", "--count", "600",
                        "--streams", "2", "--window", "16", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto report = parse_json(r.out);  // owns the fields `f` refers to
  const auto& f = report.fields();
  EXPECT_EQ(f.at("requests").number_value(), 600);
  EXPECT_EQ(f.at("stream_failures").number_value(), 0);
  EXPECT_EQ(metric(R"(troupe_jobs_submitted_total{troupe="bench_stream"})"),
            f.at("ok").number_value());
}

TEST_F(ToolsIntegration, BenchSubmitWaitCompletesEveryJob) {
  const auto r = bench({"--troupe", "bench_wait", "--mode", "submit-wait", "--count", "200",
                        "--concurrency", "4", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto report = parse_json(r.out);  // owns the fields `f` refers to
  const auto& f = report.fields();
  EXPECT_EQ(f.at("ok").number_value(), 200);
  // Each answered wait is a finished job.
  EXPECT_EQ(metric(R"(troupe_jobs_completed_total{outcome="succeeded",troupe="bench_wait"})"), 200);
  const auto text = bench({"--troupe", "bench_wait", "--count", "10", "--concurrency", "2"});
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("throughput:"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("p99.9"), std::string::npos) << text.out;
}

}  // namespace
}  // namespace troupe::test
