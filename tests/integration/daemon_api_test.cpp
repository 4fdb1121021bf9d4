// The public API of the real trouped over real gRPC: one test per RPC with
// its error paths, idempotency, health and reflection.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <regex>

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "support/test_config.h"
#include "support/trouped_process.h"
#include "troupe/v1/troupe.grpc.pb.h"

namespace troupe::test {
namespace {

using grpc::StatusCode;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

class DaemonApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ServerSpec server;
    server.max_payload = 1024;
    server.max_metadata_entries = 2;
    server.max_metadata_bytes = 64;
    server.drain_timeout = "1s";
    TroupeSpec echo{.name = "echo", .builtin = "echo", .max_actors = 2};
    TroupeSpec slow{.name = "slow", .builtin = "sleep", .sleep = "1s", .max_actors = 2};
    TroupeSpec stuck{.name = "stuck", .builtin = "sleep", .sleep = "60s", .max_actors = 2};
    TroupeSpec tiny{
        .name = "tiny", .builtin = "sleep", .sleep = "60s", .max_actors = 1, .mailbox_capacity = 1};
    TroupeSpec failing{.name = "failing", .builtin = "fail", .max_actors = 1, .max_attempts = 2};
    TroupeSpec breaker{.name = "breaker",
                       .builtin = "fail",
                       .max_actors = 1,
                       .max_attempts = 1,
                       .circuit_breaker = true,
                       .breaker_failures = 2};
    process_ = start_trouped({.config_yaml =
                                  config_yaml(server, {echo, slow, stuck, tiny, failing, breaker})})
                   .release();
    ASSERT_NE(process_, nullptr);
  }
  static void TearDownTestSuite() {
    delete process_;
    process_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(process_, nullptr);
    channel_ = process_->channel();
    jobs_ = v1::JobService::NewStub(channel_);
    admin_ = v1::AdminService::NewStub(channel_);
  }

  static void deadline(grpc::ClientContext& ctx, std::chrono::milliseconds d = 20s) {
    ctx.set_deadline(std::chrono::system_clock::now() + d);
  }
  static v1::SubmitRequest request(const std::string& troupe, const std::string& payload = "p",
                                   bool wait = false) {
    v1::SubmitRequest r;
    r.set_troupe(troupe);
    r.set_payload(payload);
    r.set_wait(wait);
    return r;
  }
  grpc::Status submit(const v1::SubmitRequest& r, v1::SubmitResponse& out,
                      grpc::ClientContext* context = nullptr,
                      std::chrono::milliseconds d = std::chrono::seconds(20)) {
    grpc::ClientContext local;
    auto& ctx = context != nullptr ? *context : local;
    deadline(ctx, d);
    return jobs_->Submit(&ctx, r, &out);
  }
  v1::Job get(const std::string& id, grpc::Status* status = nullptr) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::GetJobRequest r;
    r.set_job_id(id);
    v1::Job job;
    auto s = jobs_->GetJob(&ctx, r, &job);
    if (status != nullptr) *status = s;
    return job;
  }
  /// Waits (bounded, through WatchJob) for the job's terminal snapshot.
  v1::Job wait_terminal(const std::string& id) {
    grpc::ClientContext ctx;
    deadline(ctx, std::chrono::seconds(30));
    v1::WatchJobRequest r;
    r.set_job_id(id);
    auto reader = jobs_->WatchJob(&ctx, r);
    v1::Job job;
    v1::Job last;
    while (reader->Read(&job)) last = job;
    EXPECT_TRUE(reader->Finish().ok());
    return last;
  }
  static std::string retry_after(const grpc::ClientContext& ctx) {
    const auto& md = ctx.GetServerTrailingMetadata();
    auto it = md.find("retry-after-ms");
    return it == md.end() ? "" : std::string(it->second.data(), it->second.size());
  }
  HealthCheckResponse::ServingStatus health(const std::string& service, grpc::Status* status) {
    auto stub = grpc::health::v1::Health::NewStub(channel_);
    grpc::ClientContext ctx;
    deadline(ctx);
    HealthCheckRequest r;
    r.set_service(service);
    HealthCheckResponse out;
    *status = stub->Check(&ctx, r, &out);
    return out.status();
  }

  static TroupedProcess* process_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

TroupedProcess* DaemonApiTest::process_ = nullptr;

TEST_F(DaemonApiTest, SubmitAcceptsAndTheJobSucceeds) {
  v1::SubmitResponse resp;
  auto r = request("echo", "hello");
  (*r.mutable_metadata())["who"] = "test";
  auto status = submit(r, resp);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(resp.job_id().size(), 16u);
  EXPECT_FALSE(resp.duplicate());
  EXPECT_FALSE(resp.has_job());
  auto job = wait_terminal(resp.job_id());
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job.result(), "hello");
  EXPECT_EQ(job.troupe(), "echo");
  EXPECT_EQ(job.metadata().at("who"), "test");
  EXPECT_GE(job.attempts(), 1u);
  EXPECT_TRUE(job.has_submitted_at());
  EXPECT_TRUE(job.has_finished_at());
}

TEST_F(DaemonApiTest, SubmitWaitReturnsTheTerminalJob) {
  v1::SubmitResponse resp;
  auto status = submit(request("echo", "payload-1", true), resp);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_TRUE(resp.has_job());
  EXPECT_EQ(resp.job().id(), resp.job_id());
  EXPECT_EQ(resp.job().state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(resp.job().result(), "payload-1");
}

TEST_F(DaemonApiTest, SubmitWaitPastTheDeadlineIsDeadlineExceededAndTheJobKeepsRunning) {
  auto r = request("slow", "", true);
  r.set_idempotency_key("deadline-test");
  v1::SubmitResponse resp;
  auto status = submit(r, resp, nullptr, std::chrono::milliseconds(200));
  EXPECT_EQ(status.error_code(), StatusCode::DEADLINE_EXCEEDED);
  // The same idempotency key finds the job still there, and waiting on the
  // duplicate answers with the original's terminal state.
  r.set_wait(false);
  v1::SubmitResponse dup;
  ASSERT_TRUE(submit(r, dup).ok());
  EXPECT_TRUE(dup.duplicate());
  r.set_wait(true);
  v1::SubmitResponse done;
  ASSERT_TRUE(submit(r, done).ok());
  EXPECT_TRUE(done.duplicate());
  EXPECT_EQ(done.job_id(), dup.job_id());
  EXPECT_EQ(done.job().state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(DaemonApiTest, SubmitInvalidRequestsNameTheField) {
  struct Case {
    std::string field;
    v1::SubmitRequest request;
  };
  std::vector<Case> cases;
  cases.push_back({"troupe", request("")});
  cases.push_back({"payload", request("echo", std::string(1025, 'x'))});
  {
    auto r = request("echo");
    (*r.mutable_metadata())["a"] = "1";
    (*r.mutable_metadata())["b"] = "2";
    (*r.mutable_metadata())["c"] = "3";
    cases.push_back({"metadata", r});
  }
  {
    auto r = request("echo");
    (*r.mutable_metadata())["a"] = std::string(100, 'v');
    cases.push_back({"metadata", r});
  }
  {
    auto r = request("echo");
    r.mutable_timeout()->set_seconds(-3);
    cases.push_back({"timeout", r});
  }
  {
    auto r = request("echo");
    r.mutable_deadline()->set_nanos(-1);
    cases.push_back({"deadline", r});
  }
  for (const auto& c : cases) {
    v1::SubmitResponse resp;
    auto status = submit(c.request, resp);
    EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_EQ(status.error_message().rfind(c.field + ":", 0), 0u) << status.error_message();
  }
  // Exactly at the payload limit is accepted: the server's message size fits it.
  v1::SubmitResponse resp;
  EXPECT_TRUE(submit(request("echo", std::string(1024, 'x')), resp).ok());
}

// A job's own timeout may not exceed its troupe's max_timeout (by default the
// troupe's timeout, 30s here): one client cannot pin every actor for years.
TEST_F(DaemonApiTest, ATimeoutOverTheTroupesMaxTimeoutIsInvalidArgument) {
  auto r = request("echo");
  r.mutable_timeout()->set_seconds(3600);
  v1::SubmitResponse resp;
  auto status = submit(r, resp);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_EQ(status.error_message().rfind("timeout:", 0), 0u) << status.error_message();
  EXPECT_NE(status.error_message().find("max_timeout"), std::string::npos)
      << status.error_message();
  EXPECT_NE(status.error_message().find("30s"), std::string::npos) << status.error_message();
  r.mutable_timeout()->set_seconds(30);
  status = submit(r, resp);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(DaemonApiTest, SubmitToAnUnknownTroupeIsNotFound) {
  v1::SubmitResponse resp;
  auto status = submit(request("no-such-troupe"), resp);
  EXPECT_EQ(status.error_code(), StatusCode::NOT_FOUND);
  EXPECT_NE(status.error_message().find("no-such-troupe"), std::string::npos);
}

TEST_F(DaemonApiTest, SubmitToAFullTroupeIsResourceExhaustedWithARetryHint) {
  // One actor, mailbox of one, jobs that sleep a minute: the troupe fills
  // after a couple of submits.
  bool exhausted = false;
  for (int i = 0; i < 20 && !exhausted; ++i) {
    grpc::ClientContext ctx;
    v1::SubmitResponse resp;
    auto status = submit(request("tiny"), resp, &ctx);
    if (status.error_code() == StatusCode::RESOURCE_EXHAUSTED) {
      exhausted = true;
      EXPECT_FALSE(retry_after(ctx).empty());
      EXPECT_GT(std::stoi(retry_after(ctx)), 0);
      EXPECT_FALSE(status.error_message().empty());
    } else {
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
  }
  EXPECT_TRUE(exhausted);
}

TEST_F(DaemonApiTest, OpenBreakerIsUnavailableWithARetryHintAndNotServing) {
  // Two failures open the breaker of "breaker".
  for (int i = 0; i < 2; ++i) {
    v1::SubmitResponse resp;
    ASSERT_TRUE(submit(request("breaker", "", true), resp).ok());
    EXPECT_EQ(resp.job().state(), v1::JOB_STATE_DEAD);
  }
  grpc::ClientContext ctx;
  v1::SubmitResponse resp;
  auto status = submit(request("breaker"), resp, &ctx);
  EXPECT_EQ(status.error_code(), StatusCode::UNAVAILABLE);
  EXPECT_FALSE(retry_after(ctx).empty());
  grpc::Status hs;
  EXPECT_EQ(health("breaker", &hs), HealthCheckResponse::NOT_SERVING);
  EXPECT_TRUE(hs.ok());
  EXPECT_EQ(health("", &hs), HealthCheckResponse::SERVING);
}

TEST_F(DaemonApiTest, IdempotencyKeyReturnsTheSameJob) {
  auto r = request("echo", "once");
  r.set_idempotency_key("idem-1");
  v1::SubmitResponse first;
  v1::SubmitResponse second;
  ASSERT_TRUE(submit(r, first).ok());
  ASSERT_TRUE(submit(r, second).ok());
  EXPECT_EQ(first.job_id(), second.job_id());
  EXPECT_FALSE(first.duplicate());
  EXPECT_TRUE(second.duplicate());
  auto job = wait_terminal(first.job_id());
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job.attempts(), 1u);  // never a second run
}

TEST_F(DaemonApiTest, SubmitStreamAcksInOrderAndRejectionsDoNotEndIt) {
  grpc::ClientContext ctx;
  deadline(ctx, std::chrono::seconds(30));
  auto stream = jobs_->SubmitStream(&ctx);
  constexpr int kJobs = 300;
  for (int i = 0; i < kJobs; ++i) {
    v1::StreamSubmitRequest r;
    r.set_correlation_id(1000 + static_cast<std::uint64_t>(i));
    if (i % 10 == 3) {
      *r.mutable_request() = request("no-such-troupe");
    } else if (i % 10 == 7) {
      *r.mutable_request() = request("echo", "", true);  // wait is refused on a stream
    } else {
      *r.mutable_request() = request("echo", "s" + std::to_string(i));
    }
    ASSERT_TRUE(stream->Write(r));
  }
  stream->WritesDone();
  std::vector<std::string> accepted;
  v1::StreamSubmitAck ack;
  int n = 0;
  while (stream->Read(&ack)) {
    EXPECT_EQ(ack.correlation_id(), 1000 + static_cast<std::uint64_t>(n));
    if (n % 10 == 3) {
      EXPECT_EQ(ack.code(), static_cast<int>(StatusCode::NOT_FOUND));
      EXPECT_TRUE(ack.job_id().empty());
    } else if (n % 10 == 7) {
      EXPECT_EQ(ack.code(), static_cast<int>(StatusCode::INVALID_ARGUMENT));
      EXPECT_NE(ack.message().find("wait"), std::string::npos);
    } else {
      EXPECT_EQ(ack.code(), 0) << ack.message();
      accepted.push_back(ack.job_id());
    }
    ++n;
  }
  EXPECT_EQ(n, kJobs);
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(accepted.size(), static_cast<std::size_t>(kJobs * 8 / 10));
  EXPECT_EQ(wait_terminal(accepted.back()).state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(wait_terminal(accepted.front()).state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(DaemonApiTest, GetJobAndItsErrors) {
  v1::SubmitResponse resp;
  ASSERT_TRUE(submit(request("echo", "g", true), resp).ok());
  grpc::Status status;
  auto job = get(resp.job_id(), &status);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(job.id(), resp.job_id());
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED);
  get("not-hex", &status);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message().rfind("job_id:", 0), 0u);
  get("", &status);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
  get("ffffffffffffff00", &status);
  EXPECT_EQ(status.error_code(), StatusCode::NOT_FOUND);
}

TEST_F(DaemonApiTest, WatchJobStreamsStatesUntilTerminal) {
  v1::SubmitResponse resp;
  ASSERT_TRUE(submit(request("slow"), resp).ok());
  grpc::ClientContext ctx;
  deadline(ctx, std::chrono::seconds(30));
  v1::WatchJobRequest r;
  r.set_job_id(resp.job_id());
  auto reader = jobs_->WatchJob(&ctx, r);
  std::vector<v1::JobState> states;
  v1::Job job;
  while (reader->Read(&job)) states.push_back(job.state());
  EXPECT_TRUE(reader->Finish().ok());
  ASSERT_FALSE(states.empty());
  EXPECT_EQ(states.back(), v1::JOB_STATE_SUCCEEDED);
  for (std::size_t i = 0; i + 1 < states.size(); ++i) {
    EXPECT_LT(states[i], v1::JOB_STATE_SUCCEEDED) << "only the last state is terminal";
  }
}

TEST_F(DaemonApiTest, WatchJobErrorsAndClientCancel) {
  for (auto [id, code] : {std::pair{"bad", StatusCode::INVALID_ARGUMENT},
                          std::pair{"ffffffffffffff01", StatusCode::NOT_FOUND}}) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::WatchJobRequest r;
    r.set_job_id(id);
    auto reader = jobs_->WatchJob(&ctx, r);
    v1::Job job;
    EXPECT_FALSE(reader->Read(&job));
    EXPECT_EQ(reader->Finish().error_code(), code) << id;
  }
  v1::SubmitResponse resp;
  ASSERT_TRUE(submit(request("stuck"), resp).ok());
  grpc::ClientContext ctx;
  deadline(ctx);
  v1::WatchJobRequest r;
  r.set_job_id(resp.job_id());
  auto reader = jobs_->WatchJob(&ctx, r);
  v1::Job job;
  ASSERT_TRUE(reader->Read(&job));
  ctx.TryCancel();
  while (reader->Read(&job)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), StatusCode::CANCELLED);
}

TEST_F(DaemonApiTest, CancelJob) {
  v1::SubmitResponse resp;
  ASSERT_TRUE(submit(request("stuck"), resp).ok());
  v1::CancelJobRequest r;
  r.set_job_id(resp.job_id());
  {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::CancelJobResponse out;
    ASSERT_TRUE(jobs_->CancelJob(&ctx, r, &out).ok());
    EXPECT_TRUE(out.cancelled());
    EXPECT_EQ(out.job().id(), resp.job_id());
  }
  EXPECT_EQ(wait_terminal(resp.job_id()).state(), v1::JOB_STATE_CANCELLED);
  {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::CancelJobResponse out;
    ASSERT_TRUE(jobs_->CancelJob(&ctx, r, &out).ok());
    EXPECT_FALSE(out.cancelled());
    EXPECT_EQ(out.job().state(), v1::JOB_STATE_CANCELLED);
  }
  for (auto [id, code] : {std::pair{"xyz", StatusCode::INVALID_ARGUMENT},
                          std::pair{"ffffffffffffff02", StatusCode::NOT_FOUND}}) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::CancelJobRequest bad;
    bad.set_job_id(id);
    v1::CancelJobResponse out;
    EXPECT_EQ(jobs_->CancelJob(&ctx, bad, &out).error_code(), code) << id;
  }
}

TEST_F(DaemonApiTest, ListTroupes) {
  grpc::ClientContext ctx;
  deadline(ctx);
  v1::ListTroupesResponse out;
  ASSERT_TRUE(admin_->ListTroupes(&ctx, {}, &out).ok());
  std::set<std::string> names;
  for (const auto& t : out.troupes()) names.insert(t.name());
  EXPECT_EQ(names, (std::set<std::string>{"echo", "slow", "stuck", "tiny", "failing", "breaker"}));
}

TEST_F(DaemonApiTest, GetTroupeAndItsErrors) {
  v1::SubmitResponse resp;
  ASSERT_TRUE(submit(request("echo", "x", true), resp).ok());
  {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::GetTroupeRequest r;
    r.set_name("echo");
    v1::Troupe t;
    ASSERT_TRUE(admin_->GetTroupe(&ctx, r, &t).ok());
    EXPECT_EQ(t.name(), "echo");
    EXPECT_EQ(t.mode(), "fixed");
    EXPECT_EQ(t.actors(), 2u);
    EXPECT_EQ(t.max_actors(), 2u);
    EXPECT_EQ(t.mailbox_capacity(), 2u * 1024u);
    EXPECT_EQ(t.circuit_state(), v1::CIRCUIT_STATE_CLOSED);
    EXPECT_NE(t.handler().find("echo"), std::string::npos);
    EXPECT_GE(t.counters().submitted(), 1u);
    EXPECT_GE(t.counters().succeeded(), 1u);
    EXPECT_FALSE(t.degraded());
    EXPECT_FALSE(t.draining());
  }
  for (auto [name, code] :
       {std::pair{"", StatusCode::INVALID_ARGUMENT}, std::pair{"nope", StatusCode::NOT_FOUND}}) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::GetTroupeRequest r;
    r.set_name(name);
    v1::Troupe t;
    EXPECT_EQ(admin_->GetTroupe(&ctx, r, &t).error_code(), code) << name;
  }
}

TEST_F(DaemonApiTest, ListDeadJobsAndItsErrors) {
  v1::SubmitResponse resp;
  ASSERT_TRUE(submit(request("failing", "doomed", true), resp).ok());
  EXPECT_EQ(resp.job().state(), v1::JOB_STATE_DEAD);
  EXPECT_EQ(resp.job().attempts(), 2u);
  {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::ListDeadJobsRequest r;
    r.set_troupe("failing");
    v1::ListDeadJobsResponse out;
    ASSERT_TRUE(admin_->ListDeadJobs(&ctx, r, &out).ok());
    ASSERT_GE(out.jobs_size(), 1);
    bool found = false;
    for (const auto& j : out.jobs()) found |= j.id() == resp.job_id();
    EXPECT_TRUE(found);
  }
  for (auto [troupe, code] :
       {std::pair{"", StatusCode::INVALID_ARGUMENT}, std::pair{"nope", StatusCode::NOT_FOUND}}) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::ListDeadJobsRequest r;
    r.set_troupe(troupe);
    v1::ListDeadJobsResponse out;
    EXPECT_EQ(admin_->ListDeadJobs(&ctx, r, &out).error_code(), code) << troupe;
  }
}

TEST_F(DaemonApiTest, HealthOverallAndPerTroupe) {
  grpc::Status status;
  EXPECT_EQ(health("", &status), HealthCheckResponse::SERVING);
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(health("echo", &status), HealthCheckResponse::SERVING);
  EXPECT_TRUE(status.ok());
  health("no-such-troupe", &status);
  EXPECT_EQ(status.error_code(), StatusCode::NOT_FOUND);
}

TEST_F(DaemonApiTest, ReflectionListsTheServices) {
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(channel_);
  grpc::ClientContext ctx;
  deadline(ctx);
  auto stream = stub->ServerReflectionInfo(&ctx);
  grpc::reflection::v1alpha::ServerReflectionRequest r;
  r.set_list_services("");
  ASSERT_TRUE(stream->Write(r));
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse out;
  ASSERT_TRUE(stream->Read(&out));
  std::set<std::string> services;
  for (const auto& s : out.list_services_response().service()) services.insert(s.name());
  EXPECT_TRUE(services.contains("troupe.v1.JobService"));
  EXPECT_TRUE(services.contains("troupe.v1.AdminService"));
  EXPECT_TRUE(services.contains("grpc.health.v1.Health"));
  while (stream->Read(&out)) {
  }
  EXPECT_TRUE(stream->Finish().ok());
}

}  // namespace
}  // namespace troupe::test
