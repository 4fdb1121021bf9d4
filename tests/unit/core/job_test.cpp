#include "core/job.h"

#include <gtest/gtest.h>

namespace troupe::core {
namespace {

TEST(JobId, RoundTripsThroughItsWireForm) {
  const JobId id{0x0123456789abcdefULL};
  EXPECT_EQ(id.to_string(), "0123456789abcdef");
  EXPECT_EQ(JobId::parse("0123456789abcdef"), id);
}

TEST(JobId, RejectsAnythingButSixteenLowercaseHexDigits) {
  EXPECT_FALSE(JobId::parse(""));
  EXPECT_FALSE(JobId::parse("0123456789abcde"));
  EXPECT_FALSE(JobId::parse("0123456789ABCDEF"));
  EXPECT_FALSE(JobId::parse("0123456789abcdeg"));
  EXPECT_FALSE(JobId::parse("0123456789abcdef0"));
}

template <typename T>
concept CarriesAPayload = requires(T record) {
  record.payload;
};

// Every GetJob, watch event and callback takes a JobRecord; none sends the
// payload back, so a record must not copy it (up to max_payload each).
TEST(JobRecord, CarriesNoPayload) {
  EXPECT_TRUE(CarriesAPayload<JobRequest>);  // the check itself works
  EXPECT_FALSE(CarriesAPayload<JobRecord>);
}

TEST(JobState, TerminalStatesAreExactlyTheFiveEnds) {
  EXPECT_FALSE(is_terminal(JobState::kQueued));
  EXPECT_FALSE(is_terminal(JobState::kRunning));
  EXPECT_FALSE(is_terminal(JobState::kRetryWait));
  EXPECT_TRUE(is_terminal(JobState::kSucceeded));
  EXPECT_TRUE(is_terminal(JobState::kFailed));
  EXPECT_TRUE(is_terminal(JobState::kDead));
  EXPECT_TRUE(is_terminal(JobState::kCancelled));
  EXPECT_TRUE(is_terminal(JobState::kAborted));
}

}  // namespace
}  // namespace troupe::core
