// WriteQueue (WatchJob's bookkeeping) under every order of its events; gRPC
// promises no order between OnCancel and the OnWriteDone of a write in flight.
#include "daemon/write_queue.h"

#include <gtest/gtest.h>

#include <string>

namespace troupe::daemon {
namespace {

using Queue = WriteQueue<std::string>;

TEST(WriteQueue, WritesOneAtATimeAndFinishesAfterTheLast) {
  Queue q;
  auto step = q.push("queued", false);
  ASSERT_NE(step.write, nullptr);
  EXPECT_EQ(*step.write, "queued");
  EXPECT_FALSE(step.finish);
  EXPECT_EQ(q.push("running", false).write, nullptr);  // one write at a time
  EXPECT_EQ(q.push("dead", true).write, nullptr);
  EXPECT_EQ(q.push("after the last", false).write, nullptr);
  EXPECT_EQ(q.size(), 3u);

  step = q.write_done(true);
  ASSERT_NE(step.write, nullptr);
  EXPECT_EQ(*step.write, "running");
  step = q.write_done(true);
  ASSERT_NE(step.write, nullptr);
  EXPECT_EQ(*step.write, "dead");
  step = q.write_done(true);
  EXPECT_EQ(step.write, nullptr);
  ASSERT_TRUE(step.finish);
  EXPECT_TRUE(step.finish->ok());
  EXPECT_EQ(q.size(), 0u);
}

// OnCancel first: the message in flight is still gRPC's, so it stays (same
// object, same address); OnWriteDone then releases it and nothing else.
TEST(WriteQueue, CancelWhileWritingKeepsTheMessageInFlightUntilWriteDone) {
  Queue q;
  const std::string* in_flight = q.push(std::string(1000, 'a'), false).write;
  ASSERT_NE(in_flight, nullptr);
  q.push("waiting", false);
  q.push("last", true);

  auto step = q.cancel({grpc::StatusCode::CANCELLED, "gone"});
  ASSERT_TRUE(step.finish);
  EXPECT_EQ(step.finish->error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(step.write, nullptr);
  EXPECT_EQ(q.size(), 1u) << "the message in flight was dropped";
  EXPECT_EQ(*in_flight, std::string(1000, 'a'));

  step = q.write_done(false);
  EXPECT_EQ(step.write, nullptr);
  EXPECT_FALSE(step.finish) << "finished twice";
  EXPECT_EQ(q.size(), 0u);
  EXPECT_FALSE(q.writing());

  EXPECT_EQ(q.push("late snapshot", true).write, nullptr);  // a callback after the end
  EXPECT_EQ(q.size(), 0u);
}

// OnWriteDone(false) first, then OnCancel: one Finish, nothing written.
TEST(WriteQueue, BrokenWriteThenCancelFinishesOnce) {
  Queue q;
  q.push("a", false);
  q.push("b", false);
  auto step = q.write_done(false);
  ASSERT_TRUE(step.finish);
  EXPECT_EQ(step.finish->error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(q.size(), 0u);
  step = q.cancel({grpc::StatusCode::CANCELLED, "gone"});
  EXPECT_FALSE(step.finish);
  EXPECT_EQ(step.write, nullptr);
}

// A write that succeeds after OnCancel starts no new write.
TEST(WriteQueue, CancelThenSuccessfulWriteDoneWritesNoMore) {
  Queue q;
  q.push("a", false);
  q.push("b", false);
  ASSERT_TRUE(q.cancel({grpc::StatusCode::CANCELLED, "gone"}).finish);
  auto step = q.write_done(true);
  EXPECT_EQ(step.write, nullptr);
  EXPECT_FALSE(step.finish);
  EXPECT_EQ(q.size(), 0u);
}

// Cancelled with nothing in flight: nothing is kept.
TEST(WriteQueue, CancelWhileIdleDropsEverything) {
  Queue q;
  q.push("a", false);
  q.write_done(true);
  EXPECT_FALSE(q.writing());
  ASSERT_TRUE(q.cancel({grpc::StatusCode::CANCELLED, "gone"}).finish);
  EXPECT_EQ(q.size(), 0u);
}

TEST(WriteQueue, FinishBeforeAnyWriteEndsTheStream) {
  Queue q;
  auto step = q.finish({grpc::StatusCode::NOT_FOUND, "no such job"});
  ASSERT_TRUE(step.finish);
  EXPECT_EQ(step.finish->error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(q.push("a", true).write, nullptr);
  EXPECT_FALSE(q.cancel({grpc::StatusCode::CANCELLED, "gone"}).finish);
}

}  // namespace
}  // namespace troupe::daemon
