// The real trouped on its SQLite store (issue 13): acknowledged jobs survive
// SIGKILL, the drain hands unfinished jobs to the next start, a full store
// stops trouped with status 75, and a store is used by one trouped at a time.
// (The randomized crash test is tests/crash.)
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include "support/async_submitter.h"
#include "support/test_config.h"
#include "support/trouped_process.h"
#include "troupe/v1/troupe.grpc.pb.h"

namespace troupe::test {
namespace {

using grpc::StatusCode;

/// A directory for a store that outlives one trouped process.
class StoreDir {
 public:
  StoreDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("trouped_store_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~StoreDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  StoreDir(const StoreDir&) = delete;
  StoreDir& operator=(const StoreDir&) = delete;
  std::string db() const { return (path_ / "jobs.db").string(); }

 private:
  std::filesystem::path path_;
};

v1::SubmitRequest request(const std::string& troupe, const std::string& payload,
                          const std::string& idempotency_key = {}) {
  v1::SubmitRequest r;
  r.set_troupe(troupe);
  r.set_payload(payload);
  r.set_idempotency_key(idempotency_key);
  return r;
}

grpc::Status submit(TroupedProcess& p, const v1::SubmitRequest& r, v1::SubmitResponse& out) {
  auto stub = v1::JobService::NewStub(p.channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return stub->Submit(&ctx, r, &out);
}

std::optional<v1::Job> get_job(TroupedProcess& p, const std::string& id) {
  auto stub = v1::JobService::NewStub(p.channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::GetJobRequest r;
  r.set_job_id(id);
  v1::Job job;
  if (!stub->GetJob(&ctx, r, &job).ok()) return std::nullopt;
  return job;
}

/// Polls GetJob (bounded) until the job is in `state`; the last state seen.
v1::JobState wait_state(TroupedProcess& p, const std::string& id, v1::JobState state) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  v1::JobState seen = v1::JOB_STATE_UNSPECIFIED;
  while (std::chrono::steady_clock::now() < until) {
    if (auto job = get_job(p, id)) seen = job->state();
    if (seen == state) break;
  }
  return seen;
}

TEST(DaemonStore, AcknowledgedJobsSurviveSigkill) {
  StoreDir dir;
  ServerSpec server;
  server.store = "{path: " + dir.db() + "}";
  TroupeSpec slow{.name = "slow", .builtin = "sleep", .max_actors = 1};
  TroupeSpec quick{.name = "quick", .builtin = "echo", .max_actors = 1};
  const std::string yaml = config_yaml(server, {slow, quick});

  std::vector<std::string> queued;
  std::string finished;
  {
    auto trouped = start_trouped({.config_yaml = yaml});
    ASSERT_NE(trouped, nullptr);
    ASSERT_TRUE(trouped->wait_for_log(std::regex("store: sqlite .*jobs.db, sync full")))
        << trouped->log();
    v1::SubmitResponse resp;
    auto wait = request("quick", "done before the kill");
    wait.set_wait(true);
    ASSERT_TRUE(submit(*trouped, wait, resp).ok());
    EXPECT_EQ(resp.job().state(), v1::JOB_STATE_SUCCEEDED);
    finished = resp.job_id();
    // The first starts (and is running at the kill); the rest wait behind it.
    for (int i = 0; i < 4; ++i) {
      ASSERT_TRUE(submit(*trouped, request("slow", "1h", "key-" + std::to_string(i)), resp).ok());
      queued.push_back(resp.job_id());
    }
    ASSERT_EQ(wait_state(*trouped, queued[0], v1::JOB_STATE_RUNNING), v1::JOB_STATE_RUNNING);
    trouped->send_signal(SIGKILL);
    ASSERT_TRUE(trouped->wait_exit(std::chrono::seconds(10)).has_value());
  }

  auto again = start_trouped({.config_yaml = yaml});
  ASSERT_NE(again, nullptr);
  // One running at the kill (its attempt counts as a crash: with
  // max_attempts 1 it is DEAD), three queued, the finished one.
  EXPECT_TRUE(again->wait_for_log(std::regex(
      "recovered from the store in [0-9.e-]+s: 3 queued, 0 waiting to retry .*, 1 ended DEAD "
      "after a crash, 1 finished")))
      << again->log();
  auto done = get_job(*again, finished);
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(done->result(), "done before the kill");
  auto crashed = get_job(*again, queued[0]);
  ASSERT_TRUE(crashed.has_value());
  EXPECT_EQ(crashed->state(), v1::JOB_STATE_DEAD);
  EXPECT_EQ(crashed->failure_class(), v1::FAILURE_CLASS_CRASH);
  // The next one runs now; the others wait behind it, in order.
  EXPECT_EQ(wait_state(*again, queued[1], v1::JOB_STATE_RUNNING), v1::JOB_STATE_RUNNING);
  for (std::size_t i = 2; i < queued.size(); ++i) {
    auto job = get_job(*again, queued[i]);
    ASSERT_TRUE(job.has_value()) << queued[i];
    EXPECT_EQ(job->state(), v1::JOB_STATE_QUEUED);
  }
  // An idempotency key answers the original job.
  v1::SubmitResponse dup;
  ASSERT_TRUE(submit(*again, request("slow", "1h", "key-2"), dup).ok());
  EXPECT_EQ(dup.job_id(), queued[2]);
  EXPECT_TRUE(dup.duplicate());
  again->send_signal(SIGKILL);
}

TEST(DaemonStore, TheDrainDeadlineLeavesUnfinishedJobsForTheNextStart) {
  StoreDir dir;
  ServerSpec server;
  server.drain_timeout = "200ms";
  server.store = "{path: " + dir.db() + "}";
  TroupeSpec sleepy{.name = "sleepy", .builtin = "sleep", .max_actors = 1};
  const std::string yaml = config_yaml(server, {sleepy});

  std::vector<std::string> ids;
  {
    auto trouped = start_trouped({.config_yaml = yaml});
    ASSERT_NE(trouped, nullptr);
    v1::SubmitResponse resp;
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(submit(*trouped, request("sleepy", "1s"), resp).ok());
      ids.push_back(resp.job_id());
    }
    ASSERT_EQ(wait_state(*trouped, ids[0], v1::JOB_STATE_RUNNING), v1::JOB_STATE_RUNNING);
    // A caller waiting for a job that is left gets no terminal state from
    // this process: its call ends with the server.
    AsyncSubmitter waiting(trouped->channel());
    auto wait = request("sleepy", "1s");
    wait.set_wait(true);
    waiting.submit(wait, std::chrono::seconds(30));
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (get_troupe(*trouped, "sleepy")->counters().submitted() < 4 &&
           std::chrono::steady_clock::now() < until) {
    }
    trouped->send_signal(SIGTERM);
    EXPECT_EQ(trouped->wait_exit(std::chrono::seconds(20)), 0);
    EXPECT_NE(trouped->log().find("drain deadline reached: 0 jobs finished, 1 running jobs "
                                  "cancelled and requeued; 4 jobs left in the store"),
              std::string::npos)
        << trouped->log();
    const auto outcomes = waiting.collect(std::chrono::seconds(30));
    ASSERT_EQ(outcomes.size(), 1u);
    // As docs/durability.md says: UNAVAILABLE as gRPC shuts down.
    EXPECT_EQ(outcomes[0].status.error_code(), StatusCode::UNAVAILABLE)
        << outcomes[0].status.error_message();
    EXPECT_EQ(trouped->log().find("ABORTED"), std::string::npos) << trouped->log();
  }

  auto again = start_trouped({.config_yaml = yaml});
  ASSERT_NE(again, nullptr);
  for (const auto& id : ids) {
    EXPECT_EQ(wait_state(*again, id, v1::JOB_STATE_SUCCEEDED), v1::JOB_STATE_SUCCEEDED) << id;
  }
  // The interrupted attempt was not counted against the job.
  auto first = get_job(*again, ids[0]);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->attempts(), 1u);
  again->send_signal(SIGTERM);
  EXPECT_EQ(again->wait_exit(std::chrono::seconds(20)), 0);
}

TEST(DaemonStore, AFullStoreRefusesSubmitsWithItsMessageAndExits75) {
  StoreDir dir;
  ServerSpec server;
  server.drain_timeout = "1s";
  server.max_payload = 256 << 10;
  server.store = "{path: " + dir.db() + ", max_size: 512KiB}";
  TroupeSpec sleepy{.name = "sleepy", .builtin = "sleep", .max_actors = 1};
  auto trouped = start_trouped({.config_yaml = config_yaml(server, {sleepy})});
  ASSERT_NE(trouped, nullptr);

  // 200 KiB payloads: the third or so does not fit.
  const std::string payload = "1h" + std::string(200 << 10, ' ');
  grpc::Status status;
  v1::SubmitResponse resp;
  for (int i = 0; i < 20 && status.ok(); ++i)
    status = submit(*trouped, request("sleepy", payload), resp);
  EXPECT_EQ(status.error_code(), StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_NE(status.error_message().find(dir.db()), std::string::npos) << status.error_message();
  EXPECT_EQ(trouped->wait_exit(std::chrono::seconds(30)), 75) << trouped->log();
  EXPECT_NE(trouped->log().find("the job store failed"), std::string::npos) << trouped->log();
}

TEST(DaemonStore, ASecondTroupedOnTheSameStoreIsRefused) {
  StoreDir dir;
  ServerSpec server;
  server.store = "{path: " + dir.db() + "}";
  const std::string yaml = config_yaml(server, {TroupeSpec{}});
  auto first = start_trouped({.config_yaml = yaml});
  ASSERT_NE(first, nullptr);
  TroupedProcess second({.config_yaml = yaml});
  EXPECT_EQ(second.wait_exit(std::chrono::seconds(20)), 1) << second.log();
  EXPECT_NE(second.log().find(dir.db()), std::string::npos) << second.log();
  first->send_signal(SIGTERM);
  EXPECT_EQ(first->wait_exit(std::chrono::seconds(20)), 0);
}

}  // namespace
}  // namespace troupe::test
