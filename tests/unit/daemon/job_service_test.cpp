// JobService and AdminService over a scripted runtime, in-process on
// 127.0.0.1:0: the translation and status mapping as a client sees them.
#include "daemon/job_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "config/crypto.h"
#include "daemon/admin_service.h"
#include "fake_runtime.h"

namespace troupe::daemon {
namespace {

using namespace std::chrono_literals;
using testing::FakeRuntime;

class JobServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    limits_.max_payload = 1024;
    jobs_ = std::make_unique<JobServiceImpl>(runtime_, limits_, kMaxWatchers, authorizer_);
    admin_ = std::make_unique<AdminServiceImpl>(runtime_, authorizer_);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(jobs_.get());
    builder.RegisterService(admin_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port, 0);
    address_ = "127.0.0.1:" + std::to_string(port);
    auto channel = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
    stub_ = v1::JobService::NewStub(channel);
    admin_stub_ = v1::AdminService::NewStub(channel);
  }
  void TearDown() override { server_->Shutdown(std::chrono::system_clock::now() + 2s); }

  static void set_deadline(grpc::ClientContext& ctx, std::chrono::milliseconds d = 10s) {
    ctx.set_deadline(std::chrono::system_clock::now() + d);
  }

  grpc::Status submit(const v1::SubmitRequest& req, v1::SubmitResponse& resp,
                      grpc::ClientContext* ctx_out = nullptr) {
    grpc::ClientContext local;
    auto& ctx = ctx_out ? *ctx_out : local;
    set_deadline(ctx);
    return stub_->Submit(&ctx, req, &resp);
  }

  static v1::SubmitRequest request(std::string troupe = "t", std::string payload = "p") {
    v1::SubmitRequest r;
    r.set_troupe(std::move(troupe));
    r.set_payload(std::move(payload));
    return r;
  }

  /// A Submit wait=true of request() on a thread of its own, accepted by
  /// the runtime when start_waiting() returns; join() for its answer.
  struct WaitingCall {
    v1::SubmitResponse resp;
    grpc::Status status;
    std::atomic<bool> answered{false};
    std::thread client;
    void join() { client.join(); }
    ~WaitingCall() {
      if (client.joinable()) client.join();  // a failed assertion returned early
    }
  };
  std::unique_ptr<WaitingCall> start_waiting() {
    auto call = std::make_unique<WaitingCall>();
    auto req = request();
    req.set_wait(true);
    call->client = std::thread([this, call = call.get(), req] {
      call->status = submit(req, call->resp);
      call->answered = true;
    });
    runtime_.wait_submitted(1);
    return call;
  }

  static std::string retry_after(const grpc::ClientContext& ctx) {
    auto md = ctx.GetServerTrailingMetadata();
    auto it = md.find("retry-after-ms");
    return it == md.end() ? "" : std::string(it->second.data(), it->second.size());
  }

  static constexpr std::size_t kMaxWatchers = 3;
  config::LimitsOptions limits_;
  std::string address_;
  FakeRuntime runtime_;
  prometheus::Registry registry_;
  Authorizer authorizer_{config::AuthOptions{}, registry_};  // no identities: all allowed
  std::unique_ptr<JobServiceImpl> jobs_;
  std::unique_ptr<AdminServiceImpl> admin_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::JobService::Stub> stub_;
  std::unique_ptr<v1::AdminService::Stub> admin_stub_;
};

TEST_F(JobServiceTest, SubmitReturnsTheJobId) {
  v1::SubmitResponse resp;
  auto req = request("t", "hello");
  (*req.mutable_metadata())["m"] = "v";
  ASSERT_TRUE(submit(req, resp).ok());
  EXPECT_EQ(resp.job_id().size(), 16u);
  EXPECT_FALSE(resp.duplicate());
  EXPECT_FALSE(resp.has_job());
  auto submitted = runtime_.wait_submitted(1);
  ASSERT_EQ(submitted.size(), 1u);
  EXPECT_EQ(submitted[0].troupe, "t");
  EXPECT_EQ(submitted[0].metadata.at("m"), "v");
}

TEST_F(JobServiceTest, SubmitInvalidIsInvalidArgumentNamingTheField) {
  v1::SubmitResponse resp;
  auto status = submit(request("", "x"), resp);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message().rfind("troupe:", 0), 0u) << status.error_message();
  status = submit(request("t", std::string(1025, 'x')), resp);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message().rfind("payload:", 0), 0u) << status.error_message();
}

TEST_F(JobServiceTest, RejectionsMapToCodesWithRetryHints) {
  runtime_.reject("full", {core::RejectReason::kFull, 120ms});
  runtime_.reject("open", {core::RejectReason::kCircuitOpen, 3000ms});
  runtime_.reject("nope", {core::RejectReason::kUnknownTroupe, 0ms});
  {
    grpc::ClientContext ctx;
    v1::SubmitResponse resp;
    auto status = submit(request("full"), resp, &ctx);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_EQ(retry_after(ctx), "120");
  }
  {
    grpc::ClientContext ctx;
    v1::SubmitResponse resp;
    auto status = submit(request("open"), resp, &ctx);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_EQ(retry_after(ctx), "3000");
  }
  {
    grpc::ClientContext ctx;
    v1::SubmitResponse resp;
    auto status = submit(request("nope"), resp, &ctx);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(retry_after(ctx), "");
  }
}

TEST_F(JobServiceTest, SubmitWaitAnswersWithTheTerminalJob) {
  auto call = start_waiting();
  const auto id = core::JobId{0x1000};
  runtime_.complete(id, core::JobState::kRunning, "");
  runtime_.complete(id, core::JobState::kSucceeded, "out");
  call->join();
  ASSERT_TRUE(call->status.ok()) << call->status.error_message();
  EXPECT_EQ(call->resp.job_id(), id.to_string());
  EXPECT_EQ(call->resp.job().state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(call->resp.job().result(), "out");
  EXPECT_EQ(call->resp.job().attempts(), 1u);
}

TEST_F(JobServiceTest, SubmitWaitPastTheDeadlineIsDeadlineExceededAndTheJobLives) {
  auto req = request();
  req.set_wait(true);
  grpc::ClientContext ctx;
  set_deadline(ctx, 300ms);
  v1::SubmitResponse resp;
  auto status = stub_->Submit(&ctx, req, &resp);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  auto job = runtime_.get(core::JobId{0x1000});
  ASSERT_TRUE(job.has_value());
  EXPECT_FALSE(core::is_terminal(job->state));
  // The late terminal callback must not touch the finished call.
  runtime_.complete(core::JobId{0x1000}, core::JobState::kSucceeded, "late");
}

TEST_F(JobServiceTest, IdempotentDuplicateIsFlaggedAndWaitGetsTheOriginal) {
  auto req = request();
  req.set_idempotency_key("once");
  v1::SubmitResponse first;
  ASSERT_TRUE(submit(req, first).ok());
  v1::SubmitResponse second;
  ASSERT_TRUE(submit(req, second).ok());
  EXPECT_EQ(first.job_id(), second.job_id());
  EXPECT_FALSE(first.duplicate());
  EXPECT_TRUE(second.duplicate());
  runtime_.complete(core::JobId{0x1000}, core::JobState::kSucceeded, "r");
  // A waiting duplicate of a finished job is answered at once (the runtime
  // calls back inside submit()).
  req.set_wait(true);
  v1::SubmitResponse third;
  ASSERT_TRUE(submit(req, third).ok());
  EXPECT_TRUE(third.duplicate());
  EXPECT_EQ(third.job_id(), first.job_id());
  EXPECT_EQ(third.job().result(), "r");
}

TEST_F(JobServiceTest, SubmitStreamAcksEveryRequestInOrderAndSurvivesRejections) {
  runtime_.reject("full", {core::RejectReason::kFull, 75ms});
  grpc::ClientContext ctx;
  set_deadline(ctx);
  auto stream = stub_->SubmitStream(&ctx);
  constexpr int kJobs = 300;  // more than the server's ack queue
  for (int i = 0; i < kJobs; ++i) {
    v1::StreamSubmitRequest r;
    r.set_correlation_id(static_cast<std::uint64_t>(i));
    *r.mutable_request() = request(i % 3 == 1 ? "full" : "t");
    if (i % 3 == 2 && i % 2 == 0) r.mutable_request()->set_wait(true);  // refused on a stream
    ASSERT_TRUE(stream->Write(r));
  }
  stream->WritesDone();
  v1::StreamSubmitAck ack;
  int n = 0;
  while (stream->Read(&ack)) {
    EXPECT_EQ(ack.correlation_id(), static_cast<std::uint64_t>(n));
    if (n % 3 == 1) {
      EXPECT_EQ(ack.code(), static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED));
      EXPECT_EQ(ack.retry_after_ms(), 75u);
      EXPECT_TRUE(ack.job_id().empty());
    } else if (n % 3 == 2 && n % 2 == 0) {
      EXPECT_EQ(ack.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
      EXPECT_EQ(ack.message().rfind("request.wait:", 0), 0u) << ack.message();
    } else {
      EXPECT_EQ(ack.code(), 0) << ack.message();
      EXPECT_EQ(ack.job_id().size(), 16u);
    }
    ++n;
  }
  EXPECT_EQ(n, kJobs);
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(JobServiceTest, SubmitIsAcknowledgedOnlyOnceItsAcceptIsDurable) {
  runtime_.hold_barriers(true);
  v1::SubmitResponse resp;
  grpc::Status status;
  std::atomic<bool> answered{false};
  std::thread client([&] {
    status = submit(request(), resp);
    answered = true;
  });
  ASSERT_TRUE(runtime_.wait_barriers(1));
  EXPECT_FALSE(answered);  // accepted, but not durable yet: no reply
  runtime_.release_barriers();
  client.join();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(resp.job_id().size(), 16u);
}

TEST_F(JobServiceTest, SubmitWhoseAcceptCannotBeMadeDurableIsUnavailable) {
  runtime_.hold_barriers(true);
  v1::SubmitResponse resp;
  grpc::Status status;
  std::thread client([&] { status = submit(request(), resp); });
  ASSERT_TRUE(runtime_.wait_barriers(1));
  const core::JournalFailure failure{"sqlite /tmp/jobs.db: disk I/O error"};
  runtime_.release_barriers(&failure);
  client.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(status.error_message().find("sqlite /tmp/jobs.db: disk I/O error"), std::string::npos)
      << status.error_message();
}

TEST_F(JobServiceTest, SubmitWaitAnswersOnlyOnceTheTerminalStateIsDurable) {
  // The runtime tells the end once it is durable (FakeRuntime::complete
  // holds it behind a barrier, as core does: DurableRuntimeTest.
  // AWaitingSubmitterIsToldTheEndOnlyOnceItIsDurable); the service answers
  // no earlier than it is told.
  auto call = start_waiting();
  runtime_.hold_barriers(true);
  runtime_.complete(core::JobId{0x1000}, core::JobState::kSucceeded, "out");
  ASSERT_TRUE(runtime_.wait_barriers(1));
  EXPECT_FALSE(call->answered);
  runtime_.release_barriers();
  call->join();
  ASSERT_TRUE(call->status.ok()) << call->status.error_message();
  EXPECT_EQ(call->resp.job().state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(call->resp.job().result(), "out");
}

TEST_F(JobServiceTest, SubmitWaitWhoseEndCannotBeMadeDurableIsUnavailable) {
  auto call = start_waiting();
  runtime_.hold_barriers(true);
  runtime_.complete(core::JobId{0x1000}, core::JobState::kSucceeded, "out");
  ASSERT_TRUE(runtime_.wait_barriers(1));
  const core::JournalFailure failure{"sqlite /tmp/jobs.db: disk I/O error"};
  runtime_.release_barriers(&failure);
  call->join();
  EXPECT_EQ(call->status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(call->status.error_message().find("disk I/O error"), std::string::npos)
      << call->status.error_message();
}

TEST_F(JobServiceTest, SubmitStreamAcksWaitForTheirBarriersAndStayInOrder) {
  runtime_.reject("full", {core::RejectReason::kFull, 75ms});
  runtime_.hold_barriers(true);
  grpc::ClientContext ctx;
  set_deadline(ctx);
  auto stream = stub_->SubmitStream(&ctx);
  // Accepted, refused (answered at once, but behind the first), accepted.
  for (int i = 0; i < 3; ++i) {
    v1::StreamSubmitRequest r;
    r.set_correlation_id(static_cast<std::uint64_t>(i));
    *r.mutable_request() = request(i == 1 ? "full" : "t");
    ASSERT_TRUE(stream->Write(r));
  }
  stream->WritesDone();
  ASSERT_TRUE(runtime_.wait_barriers(2));
  const core::JournalFailure failure{"sqlite /tmp/jobs.db: database or disk is full"};
  runtime_.release_barriers(&failure);
  std::vector<v1::StreamSubmitAck> acks;
  v1::StreamSubmitAck ack;
  while (stream->Read(&ack)) acks.push_back(ack);
  EXPECT_TRUE(stream->Finish().ok());
  ASSERT_EQ(acks.size(), 3u);
  for (std::size_t i = 0; i < acks.size(); ++i) EXPECT_EQ(acks[i].correlation_id(), i);
  EXPECT_EQ(acks[0].code(), static_cast<int>(grpc::StatusCode::UNAVAILABLE));
  EXPECT_TRUE(acks[0].job_id().empty());
  EXPECT_NE(acks[0].message().find("database or disk is full"), std::string::npos)
      << acks[0].message();
  EXPECT_EQ(acks[1].code(), static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED));
  EXPECT_EQ(acks[2].code(), static_cast<int>(grpc::StatusCode::UNAVAILABLE));
}

TEST_F(JobServiceTest, SubmitStreamWritesNoAckBeforeItsBarrier) {
  runtime_.hold_barriers(true);
  grpc::ClientContext ctx;
  set_deadline(ctx);
  auto stream = stub_->SubmitStream(&ctx);
  v1::StreamSubmitRequest r;
  r.set_correlation_id(7);
  *r.mutable_request() = request();
  ASSERT_TRUE(stream->Write(r));
  ASSERT_TRUE(runtime_.wait_barriers(1));
  std::atomic<bool> read{false};
  v1::StreamSubmitAck ack;
  std::thread reader([&] {
    EXPECT_TRUE(stream->Read(&ack));
    read = true;
  });
  // The barrier is held: nothing can have been written yet.
  EXPECT_FALSE(read);
  runtime_.release_barriers();
  reader.join();
  EXPECT_EQ(ack.correlation_id(), 7u);
  EXPECT_EQ(ack.code(), 0) << ack.message();
  EXPECT_EQ(ack.job_id().size(), 16u);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(JobServiceTest, SubmitWaitRejectedAnswersAtOnceWithTheHint) {
  runtime_.reject("full", {core::RejectReason::kFull, 90ms});
  auto req = request("full");
  req.set_wait(true);
  grpc::ClientContext ctx;
  v1::SubmitResponse resp;
  auto status = submit(req, resp, &ctx);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(retry_after(ctx), "90");
}

TEST_F(JobServiceTest, SubmitStreamKeepsOrderUnderBackpressure) {
  // Rejection acks carry a message, so 5000 of them exceed the HTTP/2 flow
  // control windows: the server's ack queue fills and it stops reading
  // while this client's reader catches up.
  runtime_.reject("full", {core::RejectReason::kFull, 10ms});
  grpc::ClientContext ctx;
  set_deadline(ctx, 60s);
  auto stream = stub_->SubmitStream(&ctx);
  constexpr int kJobs = 5000;
  std::thread writer([&] {
    for (int i = 0; i < kJobs; ++i) {
      v1::StreamSubmitRequest r;
      r.set_correlation_id(static_cast<std::uint64_t>(i));
      *r.mutable_request() = request(i % 2 == 0 ? "full" : "t");
      if (!stream->Write(r)) break;
    }
    stream->WritesDone();
  });
  v1::StreamSubmitAck ack;
  int n = 0;
  bool in_order = true;
  while (stream->Read(&ack)) {
    in_order &= ack.correlation_id() == static_cast<std::uint64_t>(n);
    ++n;
  }
  writer.join();
  EXPECT_TRUE(in_order);
  EXPECT_EQ(n, kJobs);
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(runtime_.wait_submitted(kJobs / 2).size(), static_cast<std::size_t>(kJobs / 2));
}

TEST_F(JobServiceTest, GetJobAndItsErrors) {
  v1::SubmitResponse resp;
  ASSERT_TRUE(submit(request(), resp).ok());
  {
    grpc::ClientContext ctx;
    set_deadline(ctx);
    v1::GetJobRequest r;
    r.set_job_id(resp.job_id());
    v1::Job job;
    ASSERT_TRUE(stub_->GetJob(&ctx, r, &job).ok());
    EXPECT_EQ(job.id(), resp.job_id());
    EXPECT_EQ(job.state(), v1::JOB_STATE_QUEUED);
  }
  for (auto [id, code] : {std::pair{"xyz", grpc::StatusCode::INVALID_ARGUMENT},
                          std::pair{"", grpc::StatusCode::INVALID_ARGUMENT},
                          std::pair{"00000000000000ff", grpc::StatusCode::NOT_FOUND}}) {
    grpc::ClientContext ctx;
    set_deadline(ctx);
    v1::GetJobRequest r;
    r.set_job_id(id);
    v1::Job job;
    EXPECT_EQ(stub_->GetJob(&ctx, r, &job).error_code(), code) << id;
  }
}

TEST_F(JobServiceTest, CancelJob) {
  v1::SubmitResponse resp;
  ASSERT_TRUE(submit(request(), resp).ok());
  v1::CancelJobRequest r;
  r.set_job_id(resp.job_id());
  {
    grpc::ClientContext ctx;
    set_deadline(ctx);
    v1::CancelJobResponse out;
    ASSERT_TRUE(stub_->CancelJob(&ctx, r, &out).ok());
    EXPECT_TRUE(out.cancelled());
    EXPECT_EQ(out.job().id(), resp.job_id());
  }
  {
    grpc::ClientContext ctx;
    set_deadline(ctx);
    v1::CancelJobResponse out;
    ASSERT_TRUE(stub_->CancelJob(&ctx, r, &out).ok());
    EXPECT_FALSE(out.cancelled());  // already terminal
    EXPECT_EQ(out.job().state(), v1::JOB_STATE_CANCELLED);
  }
  {
    grpc::ClientContext ctx;
    set_deadline(ctx);
    r.set_job_id("not-an-id");
    v1::CancelJobResponse out;
    EXPECT_EQ(stub_->CancelJob(&ctx, r, &out).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
}

TEST_F(JobServiceTest, WatchJobStreamsChangesUntilTerminal) {
  v1::SubmitResponse resp;
  ASSERT_TRUE(submit(request(), resp).ok());
  grpc::ClientContext ctx;
  set_deadline(ctx);
  v1::WatchJobRequest r;
  r.set_job_id(resp.job_id());
  auto reader = stub_->WatchJob(&ctx, r);
  v1::Job job;
  ASSERT_TRUE(reader->Read(&job));
  EXPECT_EQ(job.state(), v1::JOB_STATE_QUEUED);
  const auto id = core::JobId{0x1000};
  runtime_.complete(id, core::JobState::kRunning, "");
  ASSERT_TRUE(reader->Read(&job));
  EXPECT_EQ(job.state(), v1::JOB_STATE_RUNNING);
  runtime_.complete(id, core::JobState::kSucceeded, "done");
  ASSERT_TRUE(reader->Read(&job));
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job.result(), "done");
  EXPECT_FALSE(reader->Read(&job));
  EXPECT_TRUE(reader->Finish().ok());
}

TEST_F(JobServiceTest, WatchJobCancelledByTheClientUnwatches) {
  v1::SubmitResponse resp;
  ASSERT_TRUE(submit(request(), resp).ok());
  grpc::ClientContext ctx;
  set_deadline(ctx);
  v1::WatchJobRequest r;
  r.set_job_id(resp.job_id());
  auto reader = stub_->WatchJob(&ctx, r);
  v1::Job job;
  ASSERT_TRUE(reader->Read(&job));
  ctx.TryCancel();
  EXPECT_FALSE(reader->Read(&job));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(runtime_.wait_watching(false));
  EXPECT_EQ(runtime_.unwatched(), 1u);
}

TEST_F(JobServiceTest, WatchJobErrors) {
  for (auto [id, code] : {std::pair{"bad", grpc::StatusCode::INVALID_ARGUMENT},
                          std::pair{"00000000000000ff", grpc::StatusCode::NOT_FOUND}}) {
    grpc::ClientContext ctx;
    set_deadline(ctx);
    v1::WatchJobRequest r;
    r.set_job_id(id);
    auto reader = stub_->WatchJob(&ctx, r);
    v1::Job job;
    EXPECT_FALSE(reader->Read(&job));
    EXPECT_EQ(reader->Finish().error_code(), code) << id;
  }
}

// Past the runtime's per-job cap a watch is RESOURCE_EXHAUSTED with a
// message naming the setting and a retry hint.
TEST_F(JobServiceTest, WatchJobPastTheCapIsResourceExhausted) {
  core::JobRecord job;
  job.id = core::JobId{0x77};
  runtime_.put(job);
  runtime_.refuse_watches(true);
  grpc::ClientContext ctx;
  set_deadline(ctx);
  v1::WatchJobRequest r;
  r.set_job_id(job.id.to_string());
  auto reader = stub_->WatchJob(&ctx, r);
  v1::Job out;
  EXPECT_FALSE(reader->Read(&out));
  const auto status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(status.error_message().find("already has 3 WatchJob streams"), std::string::npos)
      << status.error_message();
  EXPECT_NE(status.error_message().find("max_waiters_per_job"), std::string::npos);
  EXPECT_EQ(retry_after(ctx), "1000");
}

TEST_F(JobServiceTest, AdminListsAndGetsTroupes) {
  core::TroupeStatus a;
  a.name = "a";
  a.actors = 3;
  core::TroupeStatus b;
  b.name = "b";
  b.circuit = core::CircuitState::kOpen;
  runtime_.set_troupes({a, b});
  {
    grpc::ClientContext ctx;
    set_deadline(ctx);
    v1::ListTroupesResponse out;
    ASSERT_TRUE(admin_stub_->ListTroupes(&ctx, {}, &out).ok());
    ASSERT_EQ(out.troupes_size(), 2);
    EXPECT_EQ(out.troupes(0).name(), "a");
    EXPECT_EQ(out.troupes(0).actors(), 3u);
    EXPECT_EQ(out.troupes(1).circuit_state(), v1::CIRCUIT_STATE_OPEN);
  }
  for (auto [name, code] :
       {std::pair{"b", grpc::StatusCode::OK}, std::pair{"", grpc::StatusCode::INVALID_ARGUMENT},
        std::pair{"zzz", grpc::StatusCode::NOT_FOUND}}) {
    grpc::ClientContext ctx;
    set_deadline(ctx);
    v1::GetTroupeRequest r;
    r.set_name(name);
    v1::Troupe out;
    EXPECT_EQ(admin_stub_->GetTroupe(&ctx, r, &out).error_code(), code) << name;
  }
}

TEST_F(JobServiceTest, AdminListsDeadJobs) {
  core::TroupeStatus a;
  a.name = "a";
  runtime_.set_troupes({a});
  core::JobRecord dead;
  dead.id = core::JobId{7};
  dead.troupe = "a";
  dead.state = core::JobState::kDead;
  runtime_.put(dead);
  {
    grpc::ClientContext ctx;
    set_deadline(ctx);
    v1::ListDeadJobsRequest r;
    r.set_troupe("a");
    v1::ListDeadJobsResponse out;
    ASSERT_TRUE(admin_stub_->ListDeadJobs(&ctx, r, &out).ok());
    ASSERT_EQ(out.jobs_size(), 1);
    EXPECT_EQ(out.jobs(0).state(), v1::JOB_STATE_DEAD);
    EXPECT_EQ(runtime_.last_dead_limit(), AdminServiceImpl::kDefaultDeadJobs);
  }
  for (auto [troupe, limit, code] :
       {std::tuple{"", 0u, grpc::StatusCode::INVALID_ARGUMENT},
        std::tuple{"a", AdminServiceImpl::kMaxDeadJobs + 1, grpc::StatusCode::INVALID_ARGUMENT},
        std::tuple{"zzz", 0u, grpc::StatusCode::NOT_FOUND}}) {
    grpc::ClientContext ctx;
    set_deadline(ctx);
    v1::ListDeadJobsRequest r;
    r.set_troupe(troupe);
    r.set_limit(limit);
    v1::ListDeadJobsResponse out;
    EXPECT_EQ(admin_stub_->ListDeadJobs(&ctx, r, &out).error_code(), code) << troupe;
  }
}

// ------------------------------------------------- jobs held by another replica

core::JobRecord record_of(std::uint64_t id, std::string troupe, core::JobState state) {
  core::JobRecord r;
  r.id = core::JobId{id};
  r.troupe = std::move(troupe);
  r.state = state;
  return r;
}

// With a shared store (docs/cluster.md) GetJob answers for a job another
// replica accepted or runs, through Runtime::find, once the store answered.
TEST_F(JobServiceTest, GetJobFindsAJobHeldByAnotherReplica) {
  runtime_.put_elsewhere(record_of(0x77, "t", core::JobState::kRunning));
  grpc::ClientContext ctx;
  set_deadline(ctx);
  v1::GetJobRequest r;
  r.set_job_id(core::JobId{0x77}.to_string());
  v1::Job job;
  ASSERT_TRUE(stub_->GetJob(&ctx, r, &job).ok());
  EXPECT_EQ(job.id(), r.job_id());
  EXPECT_EQ(job.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(runtime_.store_answers(), 1u);
  // Unknown here and in the store: NOT_FOUND, as before.
  grpc::ClientContext unknown;
  set_deadline(unknown);
  r.set_job_id(core::JobId{0x78}.to_string());
  EXPECT_EQ(stub_->GetJob(&unknown, r, &job).error_code(), grpc::StatusCode::NOT_FOUND);
}

// CancelJob of a job another replica holds goes to the store
// (Runtime::cancel_anywhere), which reports the job as it was.
TEST_F(JobServiceTest, CancelJobOfAJobHeldByAnotherReplicaAsksTheStore) {
  runtime_.put_elsewhere(record_of(0x77, "t", core::JobState::kRunning));
  runtime_.put_elsewhere(record_of(0x79, "t", core::JobState::kSucceeded));
  for (auto [id, cancelled] : {std::pair{0x77u, true}, std::pair{0x79u, false}}) {
    grpc::ClientContext ctx;
    set_deadline(ctx);
    v1::CancelJobRequest r;
    r.set_job_id(core::JobId{id}.to_string());
    v1::CancelJobResponse out;
    ASSERT_TRUE(stub_->CancelJob(&ctx, r, &out).ok()) << id;
    EXPECT_EQ(out.cancelled(), cancelled) << id;
    EXPECT_EQ(out.job().id(), r.job_id());
  }
  EXPECT_EQ(runtime_.cancel_requests(),
            (std::vector<core::JobId>{core::JobId{0x77}, core::JobId{0x79}}));
  grpc::ClientContext unknown;
  set_deadline(unknown);
  v1::CancelJobRequest r;
  r.set_job_id(core::JobId{0x78}.to_string());
  v1::CancelJobResponse out;
  EXPECT_EQ(stub_->CancelJob(&unknown, r, &out).error_code(), grpc::StatusCode::NOT_FOUND);
}

// The troupe of the record the store found decides, as for a local job: a
// caller without read or cancel there is refused, and nothing is cancelled.
TEST_F(JobServiceTest, JobsHeldElsewhereAreAuthorizedByTheirTroupe) {
  config::Identity reader;
  reader.name = "reader";
  reader.token_sha256 = config::sha256("reader-token");
  reader.grants = {{"mine", static_cast<config::Permissions>(config::Permission::kRead)}};
  config::AuthOptions auth;
  auth.identities = {reader};
  authorizer_.update(auth);
  runtime_.put_elsewhere(record_of(0x77, "mine", core::JobState::kQueued));
  runtime_.put_elsewhere(record_of(0x78, "theirs", core::JobState::kQueued));
  const auto call = [&](auto method, auto request, auto& reply) {
    grpc::ClientContext ctx;
    set_deadline(ctx);
    ctx.AddMetadata("authorization", "Bearer reader-token");
    return ((*stub_).*method)(&ctx, request, &reply).error_code();
  };
  v1::GetJobRequest get;
  v1::Job job;
  get.set_job_id(core::JobId{0x77}.to_string());
  EXPECT_EQ(call(&v1::JobService::Stub::GetJob, get, job), grpc::StatusCode::OK);
  get.set_job_id(core::JobId{0x78}.to_string());
  EXPECT_EQ(call(&v1::JobService::Stub::GetJob, get, job), grpc::StatusCode::PERMISSION_DENIED);
  v1::CancelJobRequest cancel;
  v1::CancelJobResponse cancelled;
  cancel.set_job_id(core::JobId{0x77}.to_string());
  EXPECT_EQ(call(&v1::JobService::Stub::CancelJob, cancel, cancelled),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(runtime_.cancel_requests().empty());
  // An unknown job stays NOT_FOUND whoever asks.
  get.set_job_id(core::JobId{0x79}.to_string());
  EXPECT_EQ(call(&v1::JobService::Stub::GetJob, get, job), grpc::StatusCode::NOT_FOUND);
}

// ListDeadJobs lists every replica's dead letters (Runtime::dead_jobs_anywhere).
TEST_F(JobServiceTest, AdminListsDeadJobsOfEveryReplica) {
  core::TroupeStatus a;
  a.name = "a";
  runtime_.set_troupes({a});
  runtime_.put(record_of(7, "a", core::JobState::kDead));
  runtime_.put_elsewhere(record_of(8, "a", core::JobState::kDead));
  runtime_.put_elsewhere(record_of(9, "a", core::JobState::kRunning));
  grpc::ClientContext ctx;
  set_deadline(ctx);
  v1::ListDeadJobsRequest r;
  r.set_troupe("a");
  v1::ListDeadJobsResponse out;
  ASSERT_TRUE(admin_stub_->ListDeadJobs(&ctx, r, &out).ok());
  ASSERT_EQ(out.jobs_size(), 2);
  EXPECT_EQ(out.jobs(0).id(), core::JobId{7}.to_string());
  EXPECT_EQ(out.jobs(1).id(), core::JobId{8}.to_string());
}

// Issue 14, "lookups during an outage": when the shared store does not
// answer, GetJob, WatchJob and CancelJob of a job not held here, and
// ListDeadJobs, are UNAVAILABLE naming the store's problem (with a retry
// hint), not NOT_FOUND; a job held here is still answered; once the store
// answers again, so do they.
TEST_F(JobServiceTest, LookupsTheStoreDoesNotAnswerAreUnavailableNotNotFound) {
  core::TroupeStatus t;
  t.name = "t";
  runtime_.set_troupes({t});
  v1::SubmitResponse here;
  ASSERT_TRUE(submit(request(), here).ok());
  runtime_.put_elsewhere(record_of(0x77, "t", core::JobState::kRunning));
  runtime_.set_store_down("postgres store: connection refused");

  auto expect_unavailable = [&](const grpc::Status& status, const grpc::ClientContext& ctx,
                                const std::string& what) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << what;
    EXPECT_NE(status.error_message().find("postgres store: connection refused"), std::string::npos)
        << what << ": " << status.error_message();
    EXPECT_NE(retry_after(ctx), "") << what;
  };
  for (std::uint64_t id : {0x77u, 0x78u}) {  // held elsewhere, or unknown: only the store knows
    const std::string job_id = core::JobId{id}.to_string();
    {
      grpc::ClientContext ctx;
      set_deadline(ctx);
      v1::GetJobRequest r;
      r.set_job_id(job_id);
      v1::Job job;
      const auto status = stub_->GetJob(&ctx, r, &job);
      expect_unavailable(status, ctx, "GetJob " + job_id);
    }
    {
      grpc::ClientContext ctx;
      set_deadline(ctx);
      v1::WatchJobRequest r;
      r.set_job_id(job_id);
      auto reader = stub_->WatchJob(&ctx, r);
      v1::Job job;
      EXPECT_FALSE(reader->Read(&job));
      const auto status = reader->Finish();
      expect_unavailable(status, ctx, "WatchJob " + job_id);
    }
    {
      grpc::ClientContext ctx;
      set_deadline(ctx);
      v1::CancelJobRequest r;
      r.set_job_id(job_id);
      v1::CancelJobResponse out;
      const auto status = stub_->CancelJob(&ctx, r, &out);
      expect_unavailable(status, ctx, "CancelJob " + job_id);
    }
  }
  EXPECT_TRUE(runtime_.cancel_requests().empty());
  {
    grpc::ClientContext ctx;
    set_deadline(ctx);
    v1::ListDeadJobsRequest r;
    r.set_troupe("t");
    v1::ListDeadJobsResponse out;
    const auto status = admin_stub_->ListDeadJobs(&ctx, r, &out);
    expect_unavailable(status, ctx, "ListDeadJobs");
  }
  {
    // Held here: answered all the same.
    grpc::ClientContext ctx;
    set_deadline(ctx);
    v1::GetJobRequest r;
    r.set_job_id(here.job_id());
    v1::Job job;
    EXPECT_TRUE(stub_->GetJob(&ctx, r, &job).ok());
  }

  runtime_.set_store_down(std::nullopt);
  grpc::ClientContext found;
  set_deadline(found);
  v1::GetJobRequest r;
  r.set_job_id(core::JobId{0x77}.to_string());
  v1::Job job;
  EXPECT_TRUE(stub_->GetJob(&found, r, &job).ok());
  grpc::ClientContext unknown;
  set_deadline(unknown);
  r.set_job_id(core::JobId{0x78}.to_string());
  EXPECT_EQ(stub_->GetJob(&unknown, r, &job).error_code(), grpc::StatusCode::NOT_FOUND);
}

/// Calls `method` with `request` as raw bytes (what a broken or hostile
/// client can send) and returns the call's status. Any call shape fits:
/// one message, half-close, read every reply.
grpc::Status raw_call(grpc::Channel& channel, const std::string& method,
                      const std::string& request) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  const grpc::internal::RpcMethod rpc(method.c_str(), grpc::internal::RpcMethod::BIDI_STREAMING);
  auto stream = std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>>(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
          &channel, rpc, &ctx));
  grpc::Slice slice(request);
  grpc::ByteBuffer bytes(&slice, 1);
  stream->Write(bytes);
  stream->WritesDone();
  grpc::ByteBuffer reply;
  while (stream->Read(&reply)) {
  }
  return stream->Finish();
}

// Requests protobuf cannot parse get INVALID_ARGUMENT with a message on
// every method (as the health service does), not UNIMPLEMENTED: the method
// exists.
TEST_F(JobServiceTest, UnparseableRequestsAreInvalidArgumentOnEveryMethod) {
  core::JobRecord job;
  job.id = core::JobId{0x1000};
  job.troupe = "t";
  runtime_.put(job);
  const std::string garbage = "\xFF\xFF\xFF\xFF";   // a varint that never ends
  const std::string bad_wire_type = "\x0F";         // field 1, wire type 7
  const std::string not_utf8 = "\x0A\x02\xFF\xFE";  // string field 1 = 0xFF 0xFE
  // On the stream, the bad troupe name sits in `request` (field 2).
  const std::string stream_not_utf8 = "\x12\x04" + not_utf8;
  struct Case {
    const char* method;
    std::vector<std::string> requests;
  };
  const std::vector<Case> cases = {
      {"/troupe.v1.JobService/Submit", {garbage, bad_wire_type, not_utf8}},
      {"/troupe.v1.JobService/SubmitStream", {garbage, bad_wire_type, stream_not_utf8}},
      {"/troupe.v1.JobService/GetJob", {garbage, bad_wire_type, not_utf8}},
      {"/troupe.v1.JobService/WatchJob", {garbage, bad_wire_type, not_utf8}},
      {"/troupe.v1.JobService/CancelJob", {garbage, bad_wire_type, not_utf8}},
      {"/troupe.v1.AdminService/ListTroupes", {garbage, bad_wire_type}},
      {"/troupe.v1.AdminService/GetTroupe", {garbage, bad_wire_type, not_utf8}},
      {"/troupe.v1.AdminService/ListDeadJobs", {garbage, bad_wire_type, not_utf8}},
  };
  auto channel = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  for (const auto& c : cases) {
    for (const auto& request : c.requests) {
      const auto status = raw_call(*channel, c.method, request);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
          << c.method << " " << ::testing::PrintToString(request) << ": " << status.error_code()
          << " " << status.error_message();
      EXPECT_EQ(status.error_message().rfind("could not parse request", 0), 0u)
          << c.method << ": " << status.error_message();
    }
  }
  // Nothing reached the runtime.
  EXPECT_TRUE(runtime_.wait_submitted(0).empty());
}

// Well-formed requests still work over raw bytes (the server parses them
// itself): an empty message is a valid ListTroupesRequest.
TEST_F(JobServiceTest, WellFormedRawRequestsAreServed) {
  auto channel = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  EXPECT_TRUE(raw_call(*channel, "/troupe.v1.AdminService/ListTroupes", "").ok());
}

}  // namespace
}  // namespace troupe::daemon
