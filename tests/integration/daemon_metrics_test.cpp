// /metrics of the real trouped after known work: counters match, the
// exposition passes promtool.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "support/async_submitter.h"
#include "support/test_config.h"
#include "support/trouped_process.h"
#include "troupe/v1/troupe.grpc.pb.h"

namespace troupe::test {
namespace {

TEST(DaemonMetrics, CountersMatchKnownWorkAndPromtoolPasses) {
  TroupeSpec echo{.name = "echo", .builtin = "echo", .max_actors = 2};
  TroupeSpec failing{.name = "failing", .builtin = "fail", .max_actors = 1, .max_attempts = 2};
  auto trouped = start_trouped({.config_yaml = config_yaml({}, {echo, failing})});
  ASSERT_NE(trouped, nullptr);

  constexpr int kEcho = 40;
  constexpr int kFailing = 5;
  {
    AsyncSubmitter submitter(trouped->channel());
    for (int i = 0; i < kEcho; ++i)
      submitter.submit(submit_request("echo", true, "m"), std::chrono::seconds(30));
    for (int i = 0; i < kFailing; ++i) {
      submitter.submit(submit_request("failing", true, "m"), std::chrono::seconds(30));
    }
    submitter.submit(submit_request("nope", false, "m"), std::chrono::seconds(30));  // not a job
    const auto outcomes = submitter.collect(std::chrono::seconds(60));
    for (int i = 0; i < kEcho + kFailing; ++i) {
      ASSERT_TRUE(outcomes[i].status.ok()) << outcomes[i].status.error_message();
      EXPECT_EQ(outcomes[i].response.job().state(),
                i < kEcho ? v1::JOB_STATE_SUCCEEDED : v1::JOB_STATE_DEAD);
    }
    EXPECT_EQ(outcomes.back().status.error_code(), grpc::StatusCode::NOT_FOUND);
  }

  const auto scrape = http_get(trouped->metrics_address(), "/metrics");
  ASSERT_EQ(scrape.status, 200);
  const auto& text = scrape.body;
  auto value = [&](const std::string& series) { return metric_value(text, series).value_or(-1); };
  EXPECT_EQ(value(R"(troupe_jobs_submitted_total{troupe="echo"})"), kEcho);
  EXPECT_EQ(value(R"(troupe_jobs_submitted_total{troupe="failing"})"), kFailing);
  EXPECT_EQ(value(R"(troupe_jobs_completed_total{outcome="succeeded",troupe="echo"})"), kEcho);
  EXPECT_EQ(value(R"(troupe_jobs_completed_total{outcome="dead",troupe="failing"})"), kFailing);
  EXPECT_EQ(value(R"(troupe_jobs_completed_total{outcome="failed",troupe="echo"})"), 0);
  // The unknown troupe's rejection is counted once for the daemon, not under
  // a name (neither the client's nor a hosted troupe's).
  EXPECT_EQ(value(R"(troupe_jobs_rejected_total{reason="unknown_troupe"})"), 1);
  EXPECT_EQ(value(R"(troupe_jobs_rejected_total{reason="unknown_troupe",troupe="echo"})"), -1);
  EXPECT_EQ(text.find(R"(troupe="nope")"), std::string::npos);
  EXPECT_EQ(value(R"(troupe_job_attempts_total{outcome="success",troupe="echo"})"), kEcho);
  EXPECT_EQ(value(R"(troupe_job_attempts_total{outcome="retryable",troupe="failing"})"),
            2 * kFailing);
  EXPECT_EQ(value(R"(troupe_job_run_seconds_count{troupe="echo"})"), kEcho);
  EXPECT_EQ(value(R"(troupe_job_queue_wait_seconds_count{troupe="echo"})"), kEcho);
  EXPECT_EQ(value(R"(troupe_actors{troupe="echo"})"), 2);
  EXPECT_EQ(value(R"(troupe_circuit_state{troupe="echo"})"), 0);
  EXPECT_EQ(value(R"(troupe_build_info{version="0.1.0"})"), 1);
  // The default store (sqlite in the test's directory): every transition was
  // committed before its wait=true answer: accept, start and terminal for an
  // echo job; accept, start, retry wait, start and terminal for a failing one.
  EXPECT_GE(value("troupe_store_commit_seconds_count"), 1);
  EXPECT_EQ(value("troupe_store_jobs_per_commit_sum"), 3 * kEcho + 5 * kFailing);
  EXPECT_EQ(value("troupe_store_failed"), 0);
  EXPECT_EQ(value(R"(troupe_store_recovered_jobs{state="queued"})"), 0);
  EXPECT_EQ(value("troupe_store_orphaned_jobs"), 0);
  EXPECT_GT(value("process_resident_memory_bytes"), 0);
  EXPECT_GT(value("process_open_fds"), 0);
  EXPECT_GE(value("process_cpu_seconds_total"), 0);

  const auto promtool = promtool_check_metrics(text);
  EXPECT_EQ(promtool.status, 0) << promtool.output;
  EXPECT_EQ(promtool.output, "") << promtool.output;

  EXPECT_EQ(http_get(trouped->metrics_address(), "/nope").status, 404);
}

}  // namespace
}  // namespace troupe::test
