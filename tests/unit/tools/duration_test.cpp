#include "tools/common/duration.h"

#include <gtest/gtest.h>

namespace troupe::tools {
namespace {

using namespace std::chrono_literals;

TEST(FormatDuration, PicksAReadableUnit) {
  EXPECT_EQ(format_duration(std::chrono::nanoseconds(850)), "850ns");
  EXPECT_EQ(format_duration(std::chrono::nanoseconds(850us)), "850us");
  EXPECT_EQ(format_duration(std::chrono::nanoseconds(12300us)), "12.3ms");
  EXPECT_EQ(format_duration(std::chrono::nanoseconds(1500ms)), "1.50s");
}

}  // namespace
}  // namespace troupe::tools
