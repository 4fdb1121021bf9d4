#include "core/gate.h"

#include <gtest/gtest.h>

namespace troupe::core::detail {
namespace {

TEST(Gate, ReportsEmptyOnceAfterTheLastAdmittedLeaves) {
  Gate g;
  ASSERT_TRUE(g.enter());
  ASSERT_TRUE(g.enter());
  int fired = 0;
  g.close([&] { ++fired; });
  EXPECT_FALSE(g.enter());  // nothing is admitted once closed
  EXPECT_EQ(g.count(), 2u);
  g.leave();
  EXPECT_EQ(fired, 0);
  g.leave();
  EXPECT_EQ(fired, 1);
  int later = 0;
  g.close([&] { ++later; });  // a second waiter on an empty gate: at once
  EXPECT_EQ(later, 1);
  EXPECT_EQ(fired, 1);
}

TEST(Gate, ClosingAnEmptyGateReportsAtOnce) {
  Gate g;
  int fired = 0;
  g.close([&] { ++fired; });
  EXPECT_EQ(fired, 1);
  EXPECT_TRUE(g.closed());
}

}  // namespace
}  // namespace troupe::core::detail
