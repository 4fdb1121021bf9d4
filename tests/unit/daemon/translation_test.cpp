#include "daemon/translation.h"

#include <gtest/gtest.h>

namespace troupe::daemon {
namespace {

using namespace std::chrono_literals;

v1::SubmitRequest valid_request() {
  v1::SubmitRequest r;
  r.set_troupe("reports");
  r.set_payload(std::string(100, 'x'));
  return r;
}

config::LimitsOptions small_limits() {
  config::LimitsOptions limits;
  limits.max_payload = 1000;
  limits.max_metadata_entries = 2;
  limits.max_metadata_bytes = 20;
  return limits;
}

RpcError error_of(v1::SubmitRequest r, SubmitSource source = SubmitSource::kUnary) {
  auto out = to_job_request(r, small_limits(), source);
  EXPECT_TRUE(std::holds_alternative<RpcError>(out));
  if (auto* e = std::get_if<RpcError>(&out)) return *e;
  return {};
}

void expect_invalid(const RpcError& e, std::string_view field) {
  EXPECT_EQ(e.code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(e.message.rfind(std::string(field) + ":", 0), 0u) << e.message;
}

TEST(Translation, ValidRequestMovesPayloadAndCopiesFields) {
  auto r = valid_request();
  r.set_key("k");
  r.set_idempotency_key("idem");
  (*r.mutable_metadata())["a"] = "b";
  r.mutable_timeout()->set_seconds(2);
  r.mutable_timeout()->set_nanos(500'000'000);
  r.mutable_deadline()->set_seconds(1'900'000'000);
  auto out = to_job_request(r, small_limits(), SubmitSource::kUnary);
  ASSERT_TRUE(std::holds_alternative<core::JobRequest>(out));
  const auto& job = std::get<core::JobRequest>(out);
  EXPECT_EQ(job.troupe, "reports");
  EXPECT_EQ(job.payload, std::string(100, 'x'));
  EXPECT_TRUE(r.payload().empty());  // moved, not copied
  EXPECT_EQ(job.key, "k");
  EXPECT_EQ(job.idempotency_key, "idem");
  EXPECT_EQ(job.metadata.at("a"), "b");
  ASSERT_TRUE(job.attempt_timeout.has_value());
  EXPECT_EQ(*job.attempt_timeout, 2500ms);
  ASSERT_TRUE(job.deadline.has_value());
  EXPECT_EQ(
      std::chrono::duration_cast<std::chrono::seconds>(job.deadline->time_since_epoch()).count(),
      1'900'000'000);
}

TEST(Translation, UnsetTimeoutAndDeadlineStayUnset) {
  auto r = valid_request();
  auto out = to_job_request(r, small_limits(), SubmitSource::kUnary);
  const auto& job = std::get<core::JobRequest>(out);
  EXPECT_FALSE(job.attempt_timeout.has_value());
  EXPECT_FALSE(job.deadline.has_value());
}

TEST(Translation, EmptyTroupeIsRejected) {
  auto r = valid_request();
  r.clear_troupe();
  expect_invalid(error_of(r), "troupe");
}

TEST(Translation, PayloadOverLimitIsRejectedNotTruncated) {
  auto r = valid_request();
  r.set_payload(std::string(1001, 'x'));
  auto e = error_of(r);
  expect_invalid(e, "payload");
  EXPECT_NE(e.message.find("1001"), std::string::npos);
  EXPECT_NE(e.message.find("server.limits.max_payload"), std::string::npos);
  // Exactly at the limit is fine.
  r.set_payload(std::string(1000, 'x'));
  EXPECT_TRUE(std::holds_alternative<core::JobRequest>(
      to_job_request(r, small_limits(), SubmitSource::kUnary)));
}

TEST(Translation, TooManyMetadataEntriesAreRejected) {
  auto r = valid_request();
  (*r.mutable_metadata())["a"] = "1";
  (*r.mutable_metadata())["b"] = "2";
  (*r.mutable_metadata())["c"] = "3";
  expect_invalid(error_of(r), "metadata");
}

TEST(Translation, TooLargeMetadataIsRejected) {
  auto r = valid_request();
  (*r.mutable_metadata())["key"] = std::string(18, 'v');
  expect_invalid(error_of(r), "metadata");
}

TEST(Translation, EmptyMetadataKeyIsRejected) {
  auto r = valid_request();
  (*r.mutable_metadata())[""] = "v";
  expect_invalid(error_of(r), "metadata");
}

TEST(Translation, OversizedKeysAreRejected) {
  auto r = valid_request();
  r.set_key(std::string(kMaxKeyBytes + 1, 'k'));
  expect_invalid(error_of(r), "key");
  r = valid_request();
  r.set_idempotency_key(std::string(kMaxKeyBytes + 1, 'k'));
  expect_invalid(error_of(r), "idempotency_key");
}

TEST(Translation, NegativeOrZeroTimeoutIsRejected) {
  auto r = valid_request();
  r.mutable_timeout()->set_seconds(-1);
  expect_invalid(error_of(r), "timeout");
  r.mutable_timeout()->set_seconds(0);
  r.mutable_timeout()->set_nanos(0);
  expect_invalid(error_of(r), "timeout");
  r.mutable_timeout()->set_seconds(1);
  r.mutable_timeout()->set_nanos(-5);  // mixed signs: malformed
  expect_invalid(error_of(r), "timeout");
}

TEST(Translation, MalformedDeadlineIsRejected) {
  auto r = valid_request();
  r.mutable_deadline()->set_seconds(100);
  r.mutable_deadline()->set_nanos(-1);
  expect_invalid(error_of(r), "deadline");
}

TEST(Translation, WaitIsRefusedOnAStreamOnly) {
  auto r = valid_request();
  r.set_wait(true);
  expect_invalid(error_of(r, SubmitSource::kStream), "request.wait");
  EXPECT_TRUE(std::holds_alternative<core::JobRequest>(
      to_job_request(r, small_limits(), SubmitSource::kUnary)));
}

TEST(Translation, ParseJobId) {
  auto ok = parse_job_id("00000000000000ff", "job_id");
  ASSERT_TRUE(std::holds_alternative<core::JobId>(ok));
  EXPECT_EQ(std::get<core::JobId>(ok).value, 255u);
  for (const char* bad : {"", "ff", "00000000000000FF", "zz000000000000ff", "000000000000000ff"}) {
    auto out = parse_job_id(bad, "job_id");
    ASSERT_TRUE(std::holds_alternative<RpcError>(out)) << bad;
    expect_invalid(std::get<RpcError>(out), "job_id");
  }
}

// The transport cap is sized from the limits: the largest valid request
// fits in max_valid_request_bytes, and the cap leaves as much again for
// requests over a limit to reach validation (INVALID_ARGUMENT naming it).
TEST(Translation, TheLargestValidRequestFitsTheReceiveLimit) {
  config::LimitsOptions limits;
  limits.max_payload = 100'000;
  limits.max_metadata_entries = 64;
  limits.max_metadata_bytes = 50'000;
  v1::StreamSubmitRequest stream;
  stream.set_correlation_id(UINT64_MAX);
  auto& r = *stream.mutable_request();
  r.set_troupe(std::string(1000, 't'));
  r.set_payload(std::string(limits.max_payload, 'p'));
  r.set_key(std::string(kMaxKeyBytes, 'k'));
  r.set_idempotency_key(std::string(kMaxKeyBytes, 'i'));
  r.mutable_timeout()->set_seconds(1'000'000);
  r.mutable_timeout()->set_nanos(999'999'999);
  r.mutable_deadline()->set_seconds(253'402'300'799);
  r.mutable_deadline()->set_nanos(999'999'999);
  // 63 one-byte keys with one-byte values, and one entry with the rest.
  std::size_t used = 0;
  for (std::size_t i = 0; i + 1 < limits.max_metadata_entries; ++i) {
    (*r.mutable_metadata())[std::string(1, static_cast<char>('0' + i))] = "v";
    used += 2;
  }
  (*r.mutable_metadata())["big"] = std::string(limits.max_metadata_bytes - used - 3, 'm');
  v1::SubmitRequest copy = r;
  ASSERT_TRUE(std::holds_alternative<core::JobRequest>(
      to_job_request(copy, limits, SubmitSource::kStream)));
  EXPECT_LE(stream.ByteSizeLong(), max_valid_request_bytes(limits));
  EXPECT_GE(static_cast<std::size_t>(max_receive_message_bytes(limits)), 2 * stream.ByteSizeLong());

  // The largest limits config accepts: capped at what gRPC takes (an int).
  limits.max_payload = std::size_t{1} << 30;
  limits.max_metadata_entries = 4096;
  limits.max_metadata_bytes = 16u << 20;
  EXPECT_EQ(max_receive_message_bytes(limits), INT32_MAX);
}

// A Timestamp deadline may name any year from 1 to 9999, the system clock
// only about 1677 to 2262: beyond it a deadline is clamped (no deadline, or
// one already passed) instead of overflowing in the conversion.
TEST(Translation, DeadlinesBeyondTheClocksRangeAreClamped) {
  const config::LimitsOptions limits;
  auto with_deadline = [&](std::int64_t seconds) {
    v1::SubmitRequest r;
    r.set_troupe("t");
    r.mutable_deadline()->set_seconds(seconds);
    r.mutable_deadline()->set_nanos(999'999'999);
    auto job = to_job_request(r, limits, SubmitSource::kUnary);
    EXPECT_TRUE(std::holds_alternative<core::JobRequest>(job));
    return std::get<core::JobRequest>(job).deadline.value();
  };
  using Clock = std::chrono::system_clock;
  EXPECT_EQ(with_deadline(253'402'300'799), Clock::time_point::max());  // 9999-12-31
  EXPECT_EQ(with_deadline(-62'135'596'800), Clock::time_point::min());  // 0001-01-01
  const std::int64_t in_range = 4'102'444'800;                          // 2100-01-01
  EXPECT_EQ(
      std::chrono::duration_cast<std::chrono::seconds>(with_deadline(in_range).time_since_epoch())
          .count(),
      in_range);
}

TEST(Translation, JobRecordToProto) {
  core::JobRecord rec;
  rec.id = core::JobId{0xabc};
  rec.troupe = "t";
  rec.state = core::JobState::kDead;
  rec.attempts = 3;
  rec.result = "r";
  rec.error = "boom";
  rec.failure_class = core::FailureClass::kTimeout;
  rec.key = "k";
  rec.idempotency_key = "i";
  rec.metadata = {{"a", "b"}};
  rec.submitted_at = std::chrono::system_clock::time_point(1'700'000'000'250ms);
  v1::Job job;
  to_proto(rec, job);
  EXPECT_EQ(job.id(), "0000000000000abc");
  EXPECT_EQ(job.troupe(), "t");
  EXPECT_EQ(job.state(), v1::JOB_STATE_DEAD);
  EXPECT_EQ(job.attempts(), 3u);
  EXPECT_EQ(job.result(), "r");
  EXPECT_EQ(job.error(), "boom");
  EXPECT_EQ(job.failure_class(), v1::FAILURE_CLASS_TIMEOUT);
  EXPECT_EQ(job.key(), "k");
  EXPECT_EQ(job.idempotency_key(), "i");
  EXPECT_EQ(job.metadata().at("a"), "b");
  EXPECT_EQ(job.submitted_at().seconds(), 1'700'000'000);
  EXPECT_EQ(job.submitted_at().nanos(), 250'000'000);
  EXPECT_FALSE(job.has_started_at());  // epoch = unset
  EXPECT_FALSE(job.has_finished_at());
}

// A client must be able to parse every reply: protobuf refuses a `string`
// field that is not UTF-8, so the handler's raw bytes are repaired (the
// result, a `bytes` field, keeps them).
TEST(Translation, JobWithBadBytesStillParses) {
  core::JobRecord rec;
  rec.id = core::JobId{0xabc};
  rec.troupe = "t\xFF";
  rec.state = core::JobState::kDead;
  rec.result = "raw \xFF\xFE";
  rec.error =
      "exec: exited with status 1: \xFF\xFE"
      "cut \xE2\x82";  // invalid, then cut short
  rec.key = "k\xC3";
  rec.metadata = {{"m\x80", "v\xFF"}};
  v1::Job job;
  to_proto(rec, job);
  std::string wire;
  ASSERT_TRUE(job.SerializeToString(&wire));
  v1::Job parsed;
  ASSERT_TRUE(parsed.ParseFromString(wire)) << "a client could not read this job";
  EXPECT_EQ(parsed.error(), "exec: exited with status 1: \uFFFD\uFFFDcut \uFFFD");
  EXPECT_EQ(parsed.result(), "raw \xFF\xFE");
  EXPECT_EQ(parsed.troupe(), "t\uFFFD");
  EXPECT_EQ(parsed.key(), "k\uFFFD");
  EXPECT_EQ(parsed.metadata().at("m\uFFFD"), "v\uFFFD");

  core::TroupeStatus status;
  status.name = "\xFFname";
  status.handler = "exec \xFF";
  v1::Troupe troupe;
  to_proto(status, troupe);
  ASSERT_TRUE(troupe.SerializeToString(&wire));
  ASSERT_TRUE(v1::Troupe().ParseFromString(wire));
}

TEST(Translation, EveryStateHasAWireValue) {
  for (auto s : {core::JobState::kQueued, core::JobState::kRunning, core::JobState::kRetryWait,
                 core::JobState::kSucceeded, core::JobState::kFailed, core::JobState::kDead,
                 core::JobState::kCancelled, core::JobState::kAborted}) {
    EXPECT_NE(to_proto(s), v1::JOB_STATE_UNSPECIFIED);
    EXPECT_EQ(core::is_terminal(s), to_proto(s) >= v1::JOB_STATE_SUCCEEDED);
  }
  EXPECT_EQ(to_proto(core::CircuitState::kHalfOpen), v1::CIRCUIT_STATE_HALF_OPEN);
  EXPECT_EQ(to_proto(core::FailureClass::kCrash), v1::FAILURE_CLASS_CRASH);
}

TEST(Translation, TroupeStatusToProto) {
  core::TroupeStatus s;
  s.name = "t";
  s.mode = core::TroupeMode::kFixed;
  s.handler = "builtin:echo";
  s.actors = 4;
  s.actors_busy = 2;
  s.min_actors = 4;
  s.max_actors = 4;
  s.mailbox_depth = 7;
  s.mailbox_capacity = 400;
  s.circuit = core::CircuitState::kOpen;
  s.degraded = true;
  s.dead_letters = 9;
  s.counters.submitted = 10;
  s.counters.succeeded = 5;
  s.counters.in_flight = 5;
  s.counters.actor_restarts = 1;
  v1::Troupe t;
  to_proto(s, t);
  EXPECT_EQ(t.name(), "t");
  EXPECT_EQ(t.mode(), "fixed");
  EXPECT_EQ(t.handler(), "builtin:echo");
  EXPECT_EQ(t.actors(), 4u);
  EXPECT_EQ(t.actors_busy(), 2u);
  EXPECT_EQ(t.mailbox_depth(), 7u);
  EXPECT_EQ(t.mailbox_capacity(), 400u);
  EXPECT_EQ(t.circuit_state(), v1::CIRCUIT_STATE_OPEN);
  EXPECT_TRUE(t.degraded());
  EXPECT_FALSE(t.draining());
  EXPECT_EQ(t.dead_letters(), 9u);
  EXPECT_EQ(t.counters().submitted(), 10u);
  EXPECT_EQ(t.counters().succeeded(), 5u);
  EXPECT_EQ(t.counters().in_flight(), 5u);
  EXPECT_EQ(t.counters().actor_restarts(), 1u);
}

TEST(Translation, ClusterViewShowsLeaseHoldersAndPermits) {
  constexpr std::int64_t kSecond = 1'000'000'000;
  core::ClusterView view;
  view.now_ns = 100 * kSecond;
  core::ClusterTroupe led{.name = "led", .singleton = true};
  led.lease = core::ClusterLease{
      .holder = "r1", .incarnation = 7, .term = 3, .expires_ns = 102 * kSecond, .held = true};
  core::ClusterTroupe orphan{.name = "orphan"};
  orphan.lease = core::ClusterLease{
      .holder = "", .incarnation = 5, .term = 2, .expires_ns = 99 * kSecond, .held = false};
  core::ClusterTroupe capped{.name = "capped", .max_concurrency = 5};
  capped.permits = {{"r1", 7, 3}, {"r2", 8, 2}};
  view.troupes = {capped, led, orphan};
  v1::GetClusterResponse out;
  to_proto(
      view, [](std::string_view) { return true; }, out);
  ASSERT_EQ(out.troupes_size(), 3);

  const auto& c = out.troupes(0);
  EXPECT_FALSE(c.has_lease());
  EXPECT_EQ(c.holder(), "");
  EXPECT_FALSE(c.singleton());
  EXPECT_EQ(c.max_concurrency(), 5u);
  ASSERT_EQ(c.permits_size(), 2);
  EXPECT_EQ(c.permits(0).replica(), "r1");
  EXPECT_EQ(c.permits(0).incarnation(), 7);
  EXPECT_EQ(c.permits(0).permits(), 3u);
  EXPECT_EQ(c.permits(1).replica(), "r2");
  EXPECT_EQ(c.permits(1).permits(), 2u);

  const auto& l = out.troupes(1);
  EXPECT_TRUE(l.singleton());
  EXPECT_EQ(l.holder(), "r1");
  ASSERT_TRUE(l.has_lease());
  EXPECT_EQ(l.lease().replica(), "r1");
  EXPECT_EQ(l.lease().incarnation(), 7);
  EXPECT_EQ(l.lease().term(), 3);
  EXPECT_EQ(l.lease().expires_at().seconds(), 102);
  EXPECT_TRUE(l.lease().held());
  EXPECT_EQ(l.permits_size(), 0);

  // Not held (expired, its holder gone): the lease is shown, no holder.
  const auto& o = out.troupes(2);
  EXPECT_EQ(o.holder(), "");
  ASSERT_TRUE(o.has_lease());
  EXPECT_FALSE(o.lease().held());
  EXPECT_EQ(o.lease().incarnation(), 5);
  EXPECT_EQ(o.lease().term(), 2);
}

}  // namespace
}  // namespace troupe::daemon
