#include "tools/common/latency_stats.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace troupe::tools {
namespace {

using std::chrono::nanoseconds;

TEST(LatencyStats, NearestRankPercentilesOfOneToThousand) {
  LatencyStats s;
  std::vector<int> values(1000);
  for (int i = 0; i < 1000; ++i) values[i] = i + 1;
  std::shuffle(values.begin(), values.end(), std::mt19937(7));
  for (int v : values) s.record(nanoseconds(v));
  EXPECT_EQ(s.count(), 1000u);
  EXPECT_EQ(s.percentile(50), nanoseconds(500));
  EXPECT_EQ(s.percentile(90), nanoseconds(900));
  EXPECT_EQ(s.percentile(99), nanoseconds(990));
  EXPECT_EQ(s.percentile(99.9), nanoseconds(999));
  EXPECT_EQ(s.min(), nanoseconds(1));
  EXPECT_EQ(s.max(), nanoseconds(1000));
  EXPECT_EQ(s.mean(), nanoseconds(500));  // 500.5 truncated
}

TEST(LatencyStats, SmallAndEmptySets) {
  LatencyStats empty;
  EXPECT_EQ(empty.percentile(50), nanoseconds(0));
  EXPECT_EQ(empty.mean(), nanoseconds(0));
  LatencyStats one;
  one.record(nanoseconds(42));
  EXPECT_EQ(one.percentile(0), nanoseconds(42));
  EXPECT_EQ(one.percentile(99.9), nanoseconds(42));
  LatencyStats two;
  two.record(nanoseconds(10));
  two.record(nanoseconds(20));
  EXPECT_EQ(two.percentile(50), nanoseconds(10));
  EXPECT_EQ(two.percentile(51), nanoseconds(20));
}

TEST(LatencyStats, MergeCombinesSamplesAndResorts) {
  LatencyStats a;
  LatencyStats b;
  a.record(nanoseconds(5));
  EXPECT_EQ(a.max(), nanoseconds(5));  // sorted once
  b.record(nanoseconds(1));
  b.record(nanoseconds(9));
  a.merge(b);
  EXPECT_EQ(a.count(), 3u);
  EXPECT_EQ(a.min(), nanoseconds(1));
  EXPECT_EQ(a.percentile(50), nanoseconds(5));
  EXPECT_EQ(a.max(), nanoseconds(9));
}

}  // namespace
}  // namespace troupe::tools
