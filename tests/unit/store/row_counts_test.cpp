#include "store/row_counts.h"

#include <gtest/gtest.h>

namespace troupe::store::detail {
namespace {

using core::JobId;
using core::JobState;

TEST(RowCounts, EntriesMoveJobsBetweenStatesFromWhereTheyAre) {
  RowCounts counts;
  for (int i = 0; i < 4; ++i) counts.accepted();
  counts.started(JobId{1});     // queued -> running
  counts.retry_wait(JobId{1});  // running -> retry-wait
  counts.started(JobId{1});     // retry-wait -> running
  counts.started(JobId{2});
  counts.requeued(JobId{2});                        // running -> queued
  counts.terminal(JobId{3}, JobState::kCancelled);  // queued -> cancelled
  counts.started(JobId{4});
  counts.retry_wait(JobId{4});
  counts.terminal(JobId{4}, JobState::kDead);       // retry-wait -> dead
  EXPECT_EQ(counts.count(JobState::kQueued), 1u);   // job 2
  EXPECT_EQ(counts.count(JobState::kRunning), 1u);  // job 1
  EXPECT_EQ(counts.count(JobState::kRetryWait), 0u);
  EXPECT_EQ(counts.count(JobState::kCancelled), 1u);
  EXPECT_EQ(counts.count(JobState::kDead), 1u);
  counts.terminal(JobId{1}, JobState::kSucceeded);  // running -> succeeded
  EXPECT_EQ(counts.count(JobState::kRunning), 0u);
  EXPECT_EQ(counts.count(JobState::kSucceeded), 1u);
  counts.deleted(JobState::kSucceeded, 1);
  counts.deleted(JobState::kDead, 5);  // never below zero
  EXPECT_EQ(counts.count(JobState::kSucceeded), 0u);
  EXPECT_EQ(counts.count(JobState::kDead), 0u);
}

TEST(RowCounts, RowsReadAtOpenSayWhereTheirJobsAre) {
  RowCounts counts;
  counts.add(JobId{1}, JobState::kRunning);
  counts.add(JobId{2}, JobState::kRetryWait);
  counts.add(JobId{3}, JobState::kQueued);
  counts.terminal(JobId{1}, JobState::kFailed);
  counts.started(JobId{2});
  EXPECT_EQ(counts.count(JobState::kQueued), 1u);
  EXPECT_EQ(counts.count(JobState::kRunning), 1u);
  EXPECT_EQ(counts.count(JobState::kRetryWait), 0u);
  EXPECT_EQ(counts.count(JobState::kFailed), 1u);
}

}  // namespace
}  // namespace troupe::store::detail
