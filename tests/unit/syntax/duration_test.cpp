#include "syntax/duration.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

namespace troupe::syntax {
namespace {

using namespace std::chrono_literals;
using std::chrono::nanoseconds;

TEST(ParseDuration, AcceptsEveryUnitAndCompounds) {
  EXPECT_EQ(parse_duration("250ms").value, nanoseconds(250ms));
  EXPECT_EQ(parse_duration("30s").value, nanoseconds(30s));
  EXPECT_EQ(parse_duration("5m").value, nanoseconds(5min));
  EXPECT_EQ(parse_duration("1h").value, nanoseconds(1h));
  EXPECT_EQ(parse_duration("7us").value, nanoseconds(7us));
  EXPECT_EQ(parse_duration("9ns").value, nanoseconds(9ns));
  EXPECT_EQ(parse_duration("1m30s").value, nanoseconds(90s));
  EXPECT_EQ(parse_duration("1h2m3s4ms").value, nanoseconds(1h + 2min + 3s + 4ms));
  EXPECT_EQ(parse_duration("90s").value, nanoseconds(90s));  // no carrying into minutes needed
}

TEST(ParseDuration, ZeroAloneOrWithAUnit) {
  EXPECT_EQ(parse_duration("0").value, nanoseconds::zero());
  EXPECT_EQ(parse_duration("0s").value, nanoseconds::zero());
  EXPECT_EQ(parse_duration("0ms").value, nanoseconds::zero());
  EXPECT_FALSE(parse_duration("00").value);  // a bare number other than "0" has no unit
}

TEST(ParseDuration, RejectsFractionsSayingWhatToWriteInstead) {
  const auto fraction = parse_duration("1.5s");
  EXPECT_FALSE(fraction.value);
  EXPECT_NE(fraction.error.find("fractions"), std::string::npos) << fraction.error;
  EXPECT_NE(fraction.error.find("1500ms"), std::string::npos) << fraction.error;
  EXPECT_FALSE(parse_duration("0.5ms").value);
  EXPECT_FALSE(parse_duration(".5s").value);
}

TEST(ParseDuration, RejectsMalformedTextWithAHelpfulMessage) {
  const auto no_unit = parse_duration("5");
  EXPECT_FALSE(no_unit.value);
  EXPECT_NE(no_unit.error.find("no unit"), std::string::npos) << no_unit.error;
  EXPECT_NE(no_unit.error.find("\"5s\""), std::string::npos) << no_unit.error;

  const auto negative = parse_duration("-5s");
  EXPECT_FALSE(negative.value);
  EXPECT_NE(negative.error.find("negative"), std::string::npos) << negative.error;

  for (const char* bad : {"", "fast", "10 parsecs", "5 s", " 5s", "5s ", "s", "1s1m", "1m1m", "5S",
                          "30sec", "ms5", "+5s", "1e3s", "1.2.3s"}) {
    const auto parsed = parse_duration(bad);
    EXPECT_FALSE(parsed.value) << bad;
    EXPECT_NE(parsed.error.find(bad), std::string::npos) << parsed.error;
  }
  EXPECT_NE(parse_duration("fast").error.find(R"(like "250ms", "30s" or "5m")"), std::string::npos);
}

TEST(ParseDuration, AcceptsUpToTheLargestSignedNanosecondCountAndNoMore) {
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();  // 9223372036854775807
  EXPECT_EQ(parse_duration("9223372036854775807ns").value, nanoseconds(kMax));
  EXPECT_EQ(parse_duration("2562047h47m16s854ms775us807ns").value, nanoseconds(kMax));
  for (const char* over : {"9223372036854775808ns", "2562048h", "2562047h47m16s854ms775us808ns",
                           "99999999999999999999h", "9999999h"}) {
    const auto parsed = parse_duration(over);
    EXPECT_FALSE(parsed.value) << over;
    EXPECT_NE(parsed.error.find("too large"), std::string::npos) << parsed.error;
  }
}

TEST(FormatDuration, IsTheInverseOfTheParser) {
  for (const char* text : {"250ms", "30s", "5m", "1h", "1m30s", "1h2m3s4ms5us6ns"}) {
    EXPECT_EQ(format_duration(*parse_duration(text).value), text);
  }
  EXPECT_EQ(format_duration(nanoseconds::zero()), "0s");
  EXPECT_EQ(format_duration(90s), "1m30s");
  const nanoseconds max(std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(parse_duration(format_duration(max)).value, max);
}

}  // namespace
}  // namespace troupe::syntax
