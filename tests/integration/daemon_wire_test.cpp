// The real trouped against unfriendly clients and handlers on the wire:
// watchers that stop reading and go away mid-stream, and a handler whose
// stderr is not UTF-8.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/trouped_process.h"
#include "troupe/v1/troupe.grpc.pb.h"

namespace troupe::test {
namespace {

using namespace std::chrono_literals;
using grpc::StatusCode;

// `noisy` fails every attempt with 512 KiB of stderr, so each watch snapshot
// is bigger than an HTTP/2 stream window: a watcher that does not read
// leaves trouped with a write in flight.
constexpr const char* kConfig = R"(server:
  grpc_address: 127.0.0.1:0
  metrics_address: 127.0.0.1:0
  threads: 2
  shutdown: {drain_timeout: 1s}
  limits: {max_payload: 4MiB, max_metadata_bytes: 1MiB, max_waiters_per_job: 8}
  grpc: {max_concurrent_streams: 12}
troupes:
  - name: stuck
    handler: {kind: builtin, name: sleep, sleep: 60s}
  - name: echo
    handler: {kind: builtin, name: echo}
  - name: noisy
    mode: fixed
    actors: 1
    retry: {max_attempts: 4, initial_backoff: 1ms, max_backoff: 1ms, jitter: false}
    circuit_breaker: {enabled: false}
    handler:
      kind: exec
      argv: [sh, -c, 'head -c 524288 /dev/zero | tr "\0" e >&2; exit 1']
      max_stderr: 512KiB
  - name: garbled
    retry: {max_attempts: 1}
    circuit_breaker: {enabled: false}
    handler:
      kind: exec
      argv: [sh, -c, 'printf "bad \\377\\376 then cut \\342\\202" >&2; exit 1']
)";

class DaemonWireTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { process_ = start_trouped({.config_yaml = kConfig}).release(); }
  static void TearDownTestSuite() {
    delete process_;
    process_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(process_, nullptr);
    jobs_ = v1::JobService::NewStub(process_->channel());
    admin_ = v1::AdminService::NewStub(process_->channel());
  }

  static void deadline(grpc::ClientContext& ctx, std::chrono::milliseconds d = 20s) {
    ctx.set_deadline(std::chrono::system_clock::now() + d);
  }

  std::string submit(const std::string& troupe) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::SubmitRequest request;
    request.set_troupe(troupe);
    v1::SubmitResponse response;
    const auto status = jobs_->Submit(&ctx, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.job_id();
  }

  grpc::Status get(const std::string& id, v1::Job& out) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::GetJobRequest request;
    request.set_job_id(id);
    return jobs_->GetJob(&ctx, request, &out);
  }

  /// Polls GetJob until the job is DEAD (bounded).
  bool wait_dead(const std::string& id) {
    const auto until = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < until) {
      if (process_->exited()) return false;
      v1::Job job;
      if (get(id, job).ok() && job.state() == v1::JOB_STATE_DEAD) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  static TroupedProcess* process_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

TroupedProcess* DaemonWireTest::process_ = nullptr;

// Watchers that never read while a retrying job sends big snapshots, then
// cancel: trouped's write is still in flight when OnCancel comes. It must
// survive that (it used to free the message being written and then pop an
// empty queue in OnWriteDone) and keep serving.
TEST_F(DaemonWireTest, WatchersCancellingMidWriteDoNotCrashTheDaemon) {
  constexpr int kRounds = 10;
  constexpr int kWatchers = 6;
  for (int round = 0; round < kRounds; ++round) {
    const std::string id = submit("noisy");
    ASSERT_FALSE(id.empty());
    std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
    std::vector<std::unique_ptr<grpc::ClientReader<v1::Job>>> readers;
    for (int i = 0; i < kWatchers; ++i) {
      auto& ctx = *contexts.emplace_back(std::make_unique<grpc::ClientContext>());
      deadline(ctx, 60s);
      v1::WatchJobRequest request;
      request.set_job_id(id);
      readers.push_back(jobs_->WatchJob(&ctx, request));  // and never Read
    }
    ASSERT_TRUE(wait_dead(id)) << "job " << id << " did not end; trouped's log:\n"
                               << process_->log();
    for (int i = 0; i < kWatchers; ++i) {
      contexts[i]->TryCancel();
      const auto status = readers[i]->Finish();
      EXPECT_EQ(status.error_code(), StatusCode::CANCELLED) << status.error_message();
    }
  }
  // Still serving, and still the same process.
  v1::Job job;
  EXPECT_TRUE(get(submit("noisy"), job).ok());
  EXPECT_FALSE(process_->exited()) << process_->log();
}

// A job whose error holds bytes that are not UTF-8 (and a character cut
// short) is still readable by every API that returns it, and does not make
// its troupe's dead letters unreadable.
TEST_F(DaemonWireTest, AJobWithBadBytesInItsErrorStaysReadable) {
  const std::string kExpected = "bad \uFFFD\uFFFD then cut \uFFFD";
  v1::SubmitRequest request;
  request.set_troupe("garbled");
  request.set_wait(true);
  v1::SubmitResponse submitted;
  {
    grpc::ClientContext ctx;
    deadline(ctx);
    const auto status = jobs_->Submit(&ctx, request, &submitted);
    ASSERT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  }
  EXPECT_EQ(submitted.job().state(), v1::JOB_STATE_DEAD);
  EXPECT_NE(submitted.job().error().find(kExpected), std::string::npos) << submitted.job().error();

  v1::Job job;
  const auto got = get(submitted.job_id(), job);
  ASSERT_TRUE(got.ok()) << got.error_code() << " " << got.error_message();
  EXPECT_NE(job.error().find(kExpected), std::string::npos) << job.error();

  {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::WatchJobRequest watch;
    watch.set_job_id(submitted.job_id());
    auto reader = jobs_->WatchJob(&ctx, watch);
    v1::Job snapshot;
    int snapshots = 0;
    while (reader->Read(&snapshot)) ++snapshots;
    const auto status = reader->Finish();
    EXPECT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
    EXPECT_EQ(snapshots, 1);
    EXPECT_EQ(snapshot.state(), v1::JOB_STATE_DEAD);
  }
  {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::ListDeadJobsRequest list;
    list.set_troupe("garbled");
    v1::ListDeadJobsResponse dead;
    const auto status = admin_->ListDeadJobs(&ctx, list, &dead);
    ASSERT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
    ASSERT_GE(dead.jobs_size(), 1);
  }
}

// docs/api.md's own example: a 5,000,000-byte payload against the 4 MiB
// default is INVALID_ARGUMENT naming the field (the transport cap used to
// be max_payload + 64 KiB, so gRPC refused it as RESOURCE_EXHAUSTED, which a
// generic client retries for ever).
TEST_F(DaemonWireTest, PayloadOverTheLimitIsInvalidArgumentNamingIt) {
  v1::SubmitRequest request;
  request.set_troupe("echo");
  request.set_payload(std::string(5'000'000, 'x'));
  grpc::ClientContext ctx;
  deadline(ctx);
  v1::SubmitResponse response;
  const auto status = jobs_->Submit(&ctx, request, &response);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_EQ(status.error_message().rfind("payload: is 5000000 bytes", 0), 0u)
      << status.error_message();
}

// A request at every limit at once is valid, so it must get through the
// transport (max_metadata_bytes may be far more than 64 KiB).
TEST_F(DaemonWireTest, ARequestAtEveryLimitIsAccepted) {
  v1::SubmitRequest request;
  request.set_troupe("echo");
  request.set_payload(std::string(4 << 20, 'x'));
  (*request.mutable_metadata())["m"] = std::string((1 << 20) - 1, 'm');
  request.set_key(std::string(1024, 'k'));
  grpc::ClientContext ctx;
  deadline(ctx);
  v1::SubmitResponse response;
  const auto status = jobs_->Submit(&ctx, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  EXPECT_FALSE(response.job_id().empty());
}

// Past the transport cap (twice the largest valid request) gRPC itself
// refuses the message: RESOURCE_EXHAUSTED with no retry hint, which
// docs/api.md says never to retry.
TEST_F(DaemonWireTest, PastTheTransportCapIsResourceExhaustedWithoutARetryHint) {
  v1::SubmitRequest request;
  request.set_troupe("echo");
  request.set_payload(std::string(16 << 20, 'x'));
  grpc::ClientContext ctx;
  deadline(ctx);
  v1::SubmitResponse response;
  const auto status = jobs_->Submit(&ctx, request, &response);
  EXPECT_EQ(status.error_code(), StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_EQ(ctx.GetServerTrailingMetadata().count("retry-after-ms"), 0u);
}

// One job's watchers are bounded (server.limits.max_waiters_per_job: 8):
// the ninth WatchJob is RESOURCE_EXHAUSTED with a retry hint.
TEST_F(DaemonWireTest, WatchersPastTheCapAreResourceExhausted) {
  constexpr int kCap = 8;
  const std::string id = submit("stuck");
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::Job>>> readers;
  v1::WatchJobRequest request;
  request.set_job_id(id);
  for (int i = 0; i < kCap; ++i) {
    auto& ctx = *contexts.emplace_back(std::make_unique<grpc::ClientContext>());
    deadline(ctx);
    readers.push_back(jobs_->WatchJob(&ctx, request));
    v1::Job first;
    ASSERT_TRUE(readers.back()->Read(&first)) << "watch " << i;  // registered
  }
  grpc::ClientContext ctx;
  deadline(ctx);
  auto refused = jobs_->WatchJob(&ctx, request);
  v1::Job none;
  EXPECT_FALSE(refused->Read(&none));
  const auto status = refused->Finish();
  EXPECT_EQ(status.error_code(), StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_EQ(ctx.GetServerTrailingMetadata().count("retry-after-ms"), 1u);
  for (int i = 0; i < kCap; ++i) {
    contexts[i]->TryCancel();
    readers[i]->Finish();
  }
}

// Each Submit(wait) of one idempotency key leaves a callback on the job
// until it ends, even after the caller's deadline: past the cap the next
// one is RESOURCE_EXHAUSTED at once instead of one more callback.
TEST_F(DaemonWireTest, WaitingDuplicatesPastTheCapAreResourceExhausted) {
  constexpr int kCap = 8;
  v1::SubmitRequest request;
  request.set_troupe("stuck");
  request.set_idempotency_key("waited-on");
  request.set_wait(true);
  for (int i = 0; i < kCap; ++i) {
    grpc::ClientContext ctx;
    deadline(ctx, 100ms);
    v1::SubmitResponse response;
    EXPECT_EQ(jobs_->Submit(&ctx, request, &response).error_code(), StatusCode::DEADLINE_EXCEEDED)
        << "submit " << i;
  }
  grpc::ClientContext ctx;
  deadline(ctx);
  v1::SubmitResponse response;
  const auto status = jobs_->Submit(&ctx, request, &response);
  EXPECT_EQ(status.error_code(), StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_EQ(ctx.GetServerTrailingMetadata().count("retry-after-ms"), 1u);
}

// server.grpc.max_concurrent_streams (12 here) bounds the calls open at
// once on one connection: with 12 watches open the next call waits (the
// client queues it) until one of them ends.
TEST_F(DaemonWireTest, CallsPastMaxConcurrentStreamsWaitForASlot) {
  constexpr int kStreams = 12;
  const std::string ids[] = {submit("stuck"), submit("stuck")};
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::Job>>> readers;
  for (int i = 0; i < kStreams; ++i) {
    auto& ctx = *contexts.emplace_back(std::make_unique<grpc::ClientContext>());
    deadline(ctx);
    v1::WatchJobRequest request;
    request.set_job_id(ids[i % 2]);  // 6 per job, under max_waiters_per_job
    readers.push_back(jobs_->WatchJob(&ctx, request));
    v1::Job first;
    ASSERT_TRUE(readers.back()->Read(&first)) << "watch " << i;
  }
  {
    grpc::ClientContext ctx;
    deadline(ctx, 300ms);
    v1::GetJobRequest request;
    request.set_job_id(ids[0]);
    v1::Job job;
    EXPECT_EQ(jobs_->GetJob(&ctx, request, &job).error_code(), StatusCode::DEADLINE_EXCEEDED);
  }
  contexts[0]->TryCancel();
  readers[0]->Finish();
  v1::Job job;
  EXPECT_TRUE(get(ids[0], job).ok());
  for (int i = 1; i < kStreams; ++i) {
    contexts[i]->TryCancel();
    readers[i]->Finish();
  }
}

}  // namespace
}  // namespace troupe::test
