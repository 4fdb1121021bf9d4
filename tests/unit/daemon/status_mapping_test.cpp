#include "daemon/status_mapping.h"

#include <gtest/gtest.h>

#include "troupe/v1/troupe.pb.h"

namespace troupe::daemon {
namespace {

using namespace std::chrono_literals;

core::Rejection rejection(core::RejectReason reason, std::chrono::milliseconds after = 0ms) {
  return core::Rejection{reason, after};
}

TEST(StatusMapping, UnknownTroupeIsNotFoundWithoutHint) {
  auto e = to_rpc_error(rejection(core::RejectReason::kUnknownTroupe), "reports");
  EXPECT_EQ(e.code, grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(e.message.find("\"reports\""), std::string::npos) << e.message;
  EXPECT_FALSE(e.retry_after.has_value());
}

TEST(StatusMapping, FullAndRateLimitedAreResourceExhaustedWithHint) {
  for (auto reason : {core::RejectReason::kFull, core::RejectReason::kRateLimited}) {
    auto e = to_rpc_error(rejection(reason, 250ms), "t");
    EXPECT_EQ(e.code, grpc::StatusCode::RESOURCE_EXHAUSTED);
    ASSERT_TRUE(e.retry_after.has_value());
    EXPECT_EQ(*e.retry_after, 250ms);
    EXPECT_FALSE(e.message.empty());
  }
}

TEST(StatusMapping, DrainingAndCircuitOpenAreUnavailableWithHint) {
  auto draining = to_rpc_error(rejection(core::RejectReason::kDraining), "t");
  EXPECT_EQ(draining.code, grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(draining.message.find("draining"), std::string::npos);
  ASSERT_TRUE(draining.retry_after.has_value());
  EXPECT_GT(draining.retry_after->count(), 0);

  auto open = to_rpc_error(rejection(core::RejectReason::kCircuitOpen, 5000ms), "t");
  EXPECT_EQ(open.code, grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(*open.retry_after, 5000ms);
  EXPECT_NE(open.message.find("circuit"), std::string::npos);
}

TEST(StatusMapping, TimeoutOverMaxIsInvalidArgumentNamingTheLimit) {
  auto r = rejection(core::RejectReason::kTimeoutOverMax);
  r.limit = 90s;
  auto e = to_rpc_error(r, "t");
  EXPECT_EQ(e.code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(e.message.rfind("timeout: ", 0), 0u) << e.message;
  EXPECT_NE(e.message.find("max_timeout of troupe \"t\" (1m30s)"), std::string::npos) << e.message;
  EXPECT_FALSE(e.retry_after.has_value());
}

TEST(StatusMapping, ZeroHintGetsAFloor) {
  auto e = to_rpc_error(rejection(core::RejectReason::kFull, 0ms), "t");
  ASSERT_TRUE(e.retry_after.has_value());
  EXPECT_GT(e.retry_after->count(), 0);
}

TEST(StatusMapping, TheWordsCarryCoresFacts) {
  core::Rejection full{core::RejectReason::kFull, 10ms};
  full.queued = 128;
  full.capacity = 128;
  full.actors = 2;
  auto e = to_rpc_error(full, "t");
  EXPECT_NE(e.message.find("128 jobs queued, capacity 128 (2 actors"), std::string::npos)
      << e.message;
  EXPECT_NE(e.message.find("mailbox_capacity"), std::string::npos) << e.message;

  auto store = to_rpc_error(rejection(core::RejectReason::kStoreFull, 1000ms), "t");
  EXPECT_EQ(store.code, grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(store.message.find("job_store.max_jobs"), std::string::npos) << store.message;
}

TEST(StatusMapping, AFailedStoreIsUnavailableNamingTheStoresMessage) {
  core::Rejection failed{core::RejectReason::kStoreUnavailable};
  failed.store_failure = "sqlite /var/lib/trouped/jobs.db: disk I/O error";
  auto e = to_rpc_error(failed, "t");
  EXPECT_EQ(e.code, grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(e.message.find("sqlite /var/lib/trouped/jobs.db: disk I/O error"), std::string::npos)
      << e.message;
  ASSERT_TRUE(e.retry_after.has_value());
}

TEST(StatusMapping, DegradedIsUnavailableAndSaysWhenItRetries) {
  core::Rejection paused{core::RejectReason::kDegraded, 3200ms};
  paused.actors = 2;
  auto e = to_rpc_error(paused, "t");
  EXPECT_EQ(e.code, grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(*e.retry_after, 3200ms);
  EXPECT_NE(e.message.find("degraded"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("3200 ms"), std::string::npos) << e.message;

  auto stopped = to_rpc_error(rejection(core::RejectReason::kDegraded), "t");
  EXPECT_EQ(stopped.code, grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(stopped.message.find("reload"), std::string::npos) << stopped.message;
}

TEST(StatusMapping, TooManyListenersNamesTheJobAndTheLimit) {
  core::Rejection r{core::RejectReason::kTooManyListeners, 0ms};
  r.capacity = 8;
  r.job = core::JobId{0xff};
  auto e = to_rpc_error(r, "t");
  EXPECT_EQ(e.code, grpc::StatusCode::RESOURCE_EXHAUSTED);
  ASSERT_TRUE(e.retry_after.has_value());
  EXPECT_GT(e.retry_after->count(), 0);
  EXPECT_NE(e.message.find("job 00000000000000ff already has 8 callers"), std::string::npos)
      << e.message;
  EXPECT_NE(e.message.find("max_waiters_per_job"), std::string::npos) << e.message;
}

TEST(StatusMapping, InvalidArgumentNamesTheField) {
  auto e = invalid_argument("payload", "is too large");
  EXPECT_EQ(e.code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(e.message, "payload: is too large");
  EXPECT_EQ(e.status().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST(StatusMapping, FillAckCarriesCodeMessageAndHint) {
  v1::StreamSubmitAck ack;
  fill_ack(to_rpc_error(rejection(core::RejectReason::kRateLimited, 40ms), "t"), ack);
  EXPECT_EQ(ack.code(), static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED));
  EXPECT_EQ(ack.retry_after_ms(), 40u);
  EXPECT_FALSE(ack.message().empty());
  EXPECT_TRUE(ack.job_id().empty());
}

TEST(StatusMapping, NotFoundMessagesNameTheSubject) {
  EXPECT_NE(job_not_found("00000000000000ff").message.find("00000000000000ff"), std::string::npos);
  EXPECT_EQ(troupe_not_found("x").code, grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace troupe::daemon
