// Store faults through the real trouped (issue 13, "Proof"; docs/durability.md):
// a second trouped on the same store is refused at start, a corrupt file is
// reported at start, a full store and an fsync failure (a preloaded shim) make
// submits UNAVAILABLE and health NOT_SERVING, never acknowledge a job, and end
// the process with status 75; every job acknowledged before is there after a
// restart.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"
#include "support/trouped_process.h"
#include "troupe/v1/troupe.grpc.pb.h"

namespace troupe::test {
namespace {

namespace fs = std::filesystem;
using grpc::health::v1::HealthCheckResponse;

constexpr int kExitStoreFailed = 75;  // EX_TEMPFAIL (docs/operations.md)

/// A directory for one test's store, removed at the end.
class StoreDir {
 public:
  StoreDir() {
    std::string pattern = (fs::temp_directory_path() / "troupe-faults-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp");
    path_ = pattern;
  }
  ~StoreDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  fs::path db() const { return path_ / "jobs.db"; }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

/// trouped's config: echo and sleep troupes, the store at `db` (max_size
/// when not empty).
std::string store_config(const fs::path& db, const std::string& max_size = "") {
  std::string y =
      "server:\n"
      "  grpc_address: 127.0.0.1:0\n"
      "  metrics_address: 127.0.0.1:0\n"
      "  threads: 2\n"
      "  shutdown: {drain_timeout: 10s}\n"
      "store:\n"
      "  kind: sqlite\n"
      "  path: " +
      db.string() + "\n";
  if (!max_size.empty()) y += "  max_size: " + max_size + "\n";
  y += "logging: {level: info}\n"
       "troupes:\n"
       "  - name: echo\n"
       "    handler: {kind: builtin, name: echo}\n"
       "  - name: sleep\n"
       "    mode: fixed\n"
       "    actors: 1\n"
       "    timeout: 30s\n"
       "    handler: {kind: builtin, name: sleep, sleep: 100ms}\n";
  return y;
}

grpc::Status submit(TroupedProcess& p, const std::string& troupe, const std::string& payload,
                    std::string* id = nullptr) {
  auto stub = v1::JobService::NewStub(p.channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::SubmitRequest r;
  r.set_troupe(troupe);
  r.set_payload(payload);
  v1::SubmitResponse resp;
  const auto status = stub->Submit(&ctx, r, &resp);
  if (status.ok() && id != nullptr) *id = resp.job_id();
  return status;
}

grpc::Status get_job(TroupedProcess& p, const std::string& id, v1::Job* job) {
  auto stub = v1::JobService::NewStub(p.channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::GetJobRequest r;
  r.set_job_id(id);
  return stub->GetJob(&ctx, r, job);
}

HealthCheckResponse::ServingStatus health(TroupedProcess& p) {
  auto stub = grpc::health::v1::Health::NewStub(p.channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest r;
  HealthCheckResponse out;
  if (!stub->Check(&ctx, r, &out).ok()) return HealthCheckResponse::UNKNOWN;
  return out.status();
}

/// After the store failed: submits are refused with UNAVAILABLE naming the
/// store, health turns NOT_SERVING while the drain runs (the sleep job keeps
/// it running), and trouped exits with 75. `first_refusal` is the submit
/// that failed first; its message must match `problem`.
void expect_store_failure_handled(TroupedProcess& p, const grpc::Status& first_refusal,
                                  const std::string& problem) {
  EXPECT_EQ(first_refusal.error_code(), grpc::StatusCode::UNAVAILABLE)
      << first_refusal.error_message();
  EXPECT_TRUE(
      std::regex_search(first_refusal.error_message(), std::regex(problem, std::regex::icase)))
      << first_refusal.error_message();
  // Never acknowledged again, whatever comes next.
  for (int i = 0; i < 5; ++i) {
    const auto again = submit(p, "echo", "after the failure");
    EXPECT_FALSE(again.ok()) << "a submit was acknowledged after the store failed";
    if (p.exited()) break;
  }
  bool not_serving = false;
  const auto bound = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!p.exited() && std::chrono::steady_clock::now() < bound) {
    if (health(p) == HealthCheckResponse::NOT_SERVING) {
      not_serving = true;
      break;
    }
  }
  EXPECT_TRUE(not_serving) << "health never said NOT_SERVING before trouped exited:\n" << p.log();
  EXPECT_EQ(p.wait_exit(60s), std::optional<int>(kExitStoreFailed)) << p.log();
}

/// Restarts on `db` (no size limit, no shim) and checks that every id is known.
void expect_all_known_after_restart(const fs::path& db, const std::vector<std::string>& ids) {
  auto p = start_trouped({.config_yaml = store_config(db)});
  ASSERT_TRUE(p);
  std::size_t known = 0;
  for (const auto& id : ids) {
    v1::Job job;
    const auto status = get_job(*p, id, &job);
    EXPECT_TRUE(status.ok()) << "acknowledged job " << id << ": " << status.error_message();
    known += status.ok() ? 1 : 0;
  }
  EXPECT_EQ(known, ids.size());
  std::cout << "after restart: " << known << " of " << ids.size() << " acknowledged jobs known"
            << std::endl;
}

TEST(StoreFault, SecondTroupedOnTheSameStoreIsRefusedAtStart) {
  StoreDir dir;
  auto first = start_trouped({.config_yaml = store_config(dir.db())});
  ASSERT_TRUE(first);
  std::string id;
  ASSERT_TRUE(submit(*first, "echo", "one", &id).ok());

  TroupedProcess second({.config_yaml = store_config(dir.db())});
  const auto code = second.wait_exit(30s);
  ASSERT_TRUE(code.has_value()) << "a second trouped runs on the same store:\n" << second.log();
  EXPECT_NE(*code, 0);
  EXPECT_TRUE(std::regex_search(
      second.log(), std::regex(dir.db().string() + ".*(in use|locked|another)", std::regex::icase)))
      << second.log();
  std::cout << "second trouped exited " << *code << ":\n" << second.log() << std::endl;
  // The first one is untouched.
  EXPECT_EQ(health(*first), HealthCheckResponse::SERVING);
  v1::Job job;
  EXPECT_TRUE(get_job(*first, id, &job).ok());
  EXPECT_TRUE(submit(*first, "echo", "two").ok());
}

TEST(StoreFault, CorruptFileIsReportedAtStart) {
  StoreDir dir;
  {
    std::ofstream garbage(dir.db(), std::ios::binary);
    for (int i = 0; i < 2048; ++i) garbage << "this is not a SQLite database, ";
  }
  TroupedProcess p({.config_yaml = store_config(dir.db())});
  const auto code = p.wait_exit(30s);
  ASSERT_TRUE(code.has_value()) << "trouped runs on a corrupt store:\n" << p.log();
  EXPECT_NE(*code, 0);
  EXPECT_TRUE(std::regex_search(p.log(), std::regex("(corrupt|not a database)", std::regex::icase)))
      << p.log();
  std::cout << "corrupt store: trouped exited " << *code << ":\n" << p.log() << std::endl;
  // Nothing was overwritten: the operator still has the file to look at.
  EXPECT_EQ(fs::file_size(dir.db()), 2048u * std::string("this is not a SQLite database, ").size());
}

TEST(StoreFault, FullStoreRefusesSubmitsAndExits75WithoutLosingAcknowledgedJobs) {
  StoreDir dir;
  auto p = start_trouped({.config_yaml = store_config(dir.db(), "1MiB")});
  ASSERT_TRUE(p);
  std::vector<std::string> acked;
  std::string id;
  // A long job keeps the drain (and so the NOT_SERVING window) open.
  ASSERT_TRUE(submit(*p, "sleep", "5s", &id).ok());
  acked.push_back(id);
  const std::string payload(8 * 1024, 'x');
  grpc::Status refusal;
  for (int i = 0; i < 2000; ++i) {  // 16 MiB of payloads: far past 1 MiB
    refusal = submit(*p, "echo", payload, &id);
    if (!refusal.ok()) break;
    acked.push_back(id);
  }
  ASSERT_FALSE(refusal.ok()) << "2000 submits of 8 KiB fit in a 1 MiB store";
  std::cout << acked.size() << " jobs acknowledged, then: " << refusal.error_message() << std::endl;
  expect_store_failure_handled(*p, refusal, "(database or disk is full|disk full)");
  p.reset();
  expect_all_known_after_restart(dir.db(), acked);
}

TEST(StoreFault, FsyncFailureRefusesSubmitsAndExits75WithoutLosingAcknowledgedJobs) {
  const std::string shim = FSYNC_FAIL_SHIM;
  if (shim.empty()) GTEST_SKIP() << "a preloaded shim cannot come before a sanitizer's runtime";
  StoreDir dir;
  const auto trigger = dir.path() / "fail-fsync-now";
  auto p = start_trouped(
      {.config_yaml = store_config(dir.db()),
       .env = {{"LD_PRELOAD", shim}, {"TROUPE_TEST_FSYNC_FAIL_FILE", trigger.string()}}});
  ASSERT_TRUE(p);
  std::vector<std::string> acked;
  std::string id;
  ASSERT_TRUE(submit(*p, "sleep", "5s", &id).ok());
  acked.push_back(id);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(submit(*p, "echo", "before", &id).ok());
    acked.push_back(id);
  }
  std::ofstream(trigger).put('1');  // from now on fsync fails with EIO
  grpc::Status refusal;
  for (int i = 0; i < 100 && !p->exited(); ++i) {
    refusal = submit(*p, "echo", "after", &id);
    if (!refusal.ok()) break;
    ADD_FAILURE() << "job " << id << " acknowledged although fsync fails";
  }
  ASSERT_FALSE(refusal.ok());
  std::cout << "fsync failing: " << refusal.error_message() << std::endl;
  expect_store_failure_handled(*p, refusal, "(fsync|I/O error)");
  EXPECT_TRUE(std::regex_search(p->log(), std::regex("(I/O|fsync|disk)", std::regex::icase)))
      << p->log();
  p.reset();
  expect_all_known_after_restart(dir.db(), acked);
}

}  // namespace
}  // namespace troupe::test
