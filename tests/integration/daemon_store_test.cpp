// The real trouped on its SQLite store (issue 13): acknowledged jobs survive
// SIGKILL, the drain hands unfinished jobs to the next start, a full store
// and a failing fsync (a preloaded shim) refuse submits, turn health
// NOT_SERVING, stop trouped with status 75 and lose no acknowledged job, a
// store is used by one trouped at a time, and a corrupt file is reported at
// start. (The randomized crash test is tests/crash.)
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
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
  std::filesystem::path dir() const { return path_; }

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
    // this process: it is told the job goes on, by its id.
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
    // As docs/durability.md says: ABORTED naming the job, not UNAVAILABLE
    // (which clients retry, submitting the job twice).
    EXPECT_EQ(outcomes[0].status.error_code(), StatusCode::ABORTED)
        << outcomes[0].status.error_message();
    EXPECT_NE(outcomes[0].status.error_message().find("poll GetJob"), std::string::npos)
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

/// After the store failed (`refusal`: the first submit it refused):
/// refusals are UNAVAILABLE naming the store file and `problem`, no submit is
/// acknowledged again, health turns NOT_SERVING while the drain runs, and
/// trouped exits with 75.
void expect_store_failure_handled(TroupedProcess& p, const grpc::Status& refusal,
                                  const std::string& db, const std::string& problem) {
  EXPECT_EQ(refusal.error_code(), StatusCode::UNAVAILABLE) << refusal.error_message();
  EXPECT_NE(refusal.error_message().find(db), std::string::npos) << refusal.error_message();
  EXPECT_TRUE(std::regex_search(refusal.error_message(), std::regex(problem)))
      << refusal.error_message();
  for (int i = 0; i < 5 && !p.exited(); ++i) {
    v1::SubmitResponse resp;
    EXPECT_FALSE(submit(p, request("echo", "after the failure"), resp).ok())
        << "job " << resp.job_id() << " acknowledged after the store failed";
  }
  bool not_serving = false;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!not_serving && !p.exited() && std::chrono::steady_clock::now() < until)
    not_serving = health(p) == grpc::health::v1::HealthCheckResponse::NOT_SERVING;
  EXPECT_TRUE(not_serving) << "health never said NOT_SERVING before trouped exited";
  EXPECT_EQ(p.wait_exit(std::chrono::seconds(30)), 75) << p.log();
  EXPECT_NE(p.log().find("the job store failed"), std::string::npos) << p.log();
}

/// Starts trouped on `yaml` again and checks that GetJob knows every id.
void expect_known_after_restart(const std::string& yaml, const std::vector<std::string>& ids) {
  auto again = start_trouped({.config_yaml = yaml});
  ASSERT_NE(again, nullptr);
  for (const auto& id : ids) EXPECT_TRUE(get_job(*again, id).has_value()) << id;
}

TEST(DaemonStore, AFullStoreRefusesSubmitsExits75AndLosesNoAcknowledgedJob) {
  StoreDir dir;
  ServerSpec server;
  server.drain_timeout = "1s";
  server.max_payload = 256 << 10;
  server.store = "{path: " + dir.db() + ", max_size: 512KiB}";
  // The sleeper runs for an hour: the drain lasts its full second, and health
  // says NOT_SERVING meanwhile.
  TroupeSpec sleepy{.name = "sleepy", .builtin = "sleep", .max_actors = 1};
  TroupeSpec echo{.name = "echo", .builtin = "echo", .max_actors = 1};
  auto trouped = start_trouped({.config_yaml = config_yaml(server, {sleepy, echo})});
  ASSERT_NE(trouped, nullptr);
  std::vector<std::string> acknowledged;
  v1::SubmitResponse resp;
  ASSERT_TRUE(submit(*trouped, request("sleepy", "1h"), resp).ok());
  acknowledged.push_back(resp.job_id());

  // 200 KiB payloads (and results): the second or so does not fit.
  const std::string payload(200 << 10, 'x');
  grpc::Status status;
  for (int i = 0; i < 20 && status.ok(); ++i) {
    status = submit(*trouped, request("echo", payload), resp);
    if (status.ok()) acknowledged.push_back(resp.job_id());
  }
  ASSERT_FALSE(status.ok()) << "20 submits of 200 KiB fit in 512 KiB";
  expect_store_failure_handled(*trouped, status, dir.db(), "disk full");
  trouped.reset();
  server.store = "{path: " + dir.db() + "}";
  expect_known_after_restart(config_yaml(server, {sleepy, echo}), acknowledged);
}

TEST(DaemonStore, AFailedFsyncRefusesSubmitsExits75AndLosesNoAcknowledgedJob) {
  const std::string shim = FSYNC_FAIL_SHIM;
  if (shim.empty()) GTEST_SKIP() << "a preloaded shim cannot come before a sanitizer's runtime";
  StoreDir dir;
  const auto trigger = dir.dir() / "fail-fsync-now";
  ServerSpec server;
  server.drain_timeout = "1s";
  server.store = "{path: " + dir.db() + "}";
  TroupeSpec sleepy{.name = "sleepy", .builtin = "sleep", .max_actors = 1};
  TroupeSpec echo{.name = "echo", .builtin = "echo", .max_actors = 1};
  const std::string yaml = config_yaml(server, {sleepy, echo});
  auto trouped = start_trouped(
      {.config_yaml = yaml,
       .env = {{"LD_PRELOAD", shim}, {"TROUPE_TEST_FSYNC_FAIL_FILE", trigger.string()}}});
  ASSERT_NE(trouped, nullptr);
  std::vector<std::string> acknowledged;
  v1::SubmitResponse resp;
  ASSERT_TRUE(submit(*trouped, request("sleepy", "1h"), resp).ok());
  acknowledged.push_back(resp.job_id());
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(submit(*trouped, request("echo", "before"), resp).ok());
    acknowledged.push_back(resp.job_id());
  }

  std::ofstream(trigger).put('1');  // from now on fsync and fdatasync fail with EIO
  const auto refusal = submit(*trouped, request("echo", "after"), resp);
  ASSERT_FALSE(refusal.ok()) << "job " << resp.job_id() << " acknowledged although fsync fails";
  expect_store_failure_handled(*trouped, refusal, dir.db(), "fsync failed");
  trouped.reset();
  expect_known_after_restart(yaml, acknowledged);  // without the shim
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
  EXPECT_NE(second.log().find("the store " + dir.db() + " is in use by another trouped (pid " +
                              std::to_string(first->pid()) + ", lock file " + dir.db() + "-lock)"),
            std::string::npos)
      << second.log();
  // The first one goes on as if nothing happened.
  EXPECT_EQ(health(*first), grpc::health::v1::HealthCheckResponse::SERVING);
  v1::SubmitResponse resp;
  EXPECT_TRUE(submit(*first, request("default", "still here"), resp).ok());
  first->send_signal(SIGTERM);
  EXPECT_EQ(first->wait_exit(std::chrono::seconds(20)), 0);
}

TEST(DaemonStore, ACorruptFileIsReportedAtStartWithWhatToDo) {
  StoreDir dir;
  const std::string garbage(64 << 10, 'x');
  std::ofstream(dir.db(), std::ios::binary) << garbage;
  ServerSpec server;
  server.store = "{path: " + dir.db() + "}";
  TroupedProcess p({.config_yaml = config_yaml(server, {TroupeSpec{}})});
  EXPECT_EQ(p.wait_exit(std::chrono::seconds(20)), 1) << p.log();
  EXPECT_NE(p.log().find("the store " + dir.db() +
                         " is corrupt (file is not a database): move it aside (with its -wal "
                         "and -shm files) to start empty, or restore a backup"),
            std::string::npos)
      << p.log();
  // Left as it was, for the operator to look at.
  EXPECT_EQ(std::filesystem::file_size(dir.db()), garbage.size());
}

}  // namespace
}  // namespace troupe::test
