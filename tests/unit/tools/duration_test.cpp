#include "tools/common/duration.h"

#include <gtest/gtest.h>

namespace troupe::tools {
namespace {

using namespace std::chrono_literals;

TEST(ParseDuration, AcceptsEveryUnitAndCombinations) {
  EXPECT_EQ(parse_duration("250ms"), std::chrono::nanoseconds(250ms));
  EXPECT_EQ(parse_duration("30s"), std::chrono::nanoseconds(30s));
  EXPECT_EQ(parse_duration("5m"), std::chrono::nanoseconds(5min));
  EXPECT_EQ(parse_duration("1h"), std::chrono::nanoseconds(1h));
  EXPECT_EQ(parse_duration("1m30s"), std::chrono::nanoseconds(90s));
  EXPECT_EQ(parse_duration("100us"), std::chrono::nanoseconds(100us));
  EXPECT_EQ(parse_duration("7ns"), std::chrono::nanoseconds(7));
  EXPECT_EQ(parse_duration("1.5s"), std::chrono::nanoseconds(1500ms));
  EXPECT_EQ(parse_duration("0"), std::chrono::nanoseconds(0));
}

TEST(ParseDuration, RejectsMalformedInput) {
  for (const char* bad :
       {"", "10", "s", "-5s", "5 s", "5sec", "1.2.3s", "ms5", "5S", "1e3s", "99999999999h"}) {
    EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
  }
}

TEST(FormatDuration, PicksAReadableUnit) {
  EXPECT_EQ(format_duration(std::chrono::nanoseconds(850)), "850ns");
  EXPECT_EQ(format_duration(std::chrono::nanoseconds(850us)), "850us");
  EXPECT_EQ(format_duration(std::chrono::nanoseconds(12300us)), "12.3ms");
  EXPECT_EQ(format_duration(std::chrono::nanoseconds(1500ms)), "1.50s");
}

}  // namespace
}  // namespace troupe::tools
