#include "config/value_parsers.h"

#include <gtest/gtest.h>

#include <array>

namespace troupe::config {
namespace {

TEST(ParseSize, AcceptsBytesAndBinaryUnits) {
  EXPECT_EQ(parse_size("0").value, 0u);
  EXPECT_EQ(parse_size("512").value, 512u);
  EXPECT_EQ(parse_size("512B").value, 512u);
  EXPECT_EQ(parse_size("64KiB").value, 64u << 10);
  EXPECT_EQ(parse_size("4MiB").value, 4u << 20);
  EXPECT_EQ(parse_size("2GiB").value, std::size_t{2} << 30);
}

TEST(ParseSize, RejectsDecimalUnitsNegativesAndJunk) {
  const auto mb = parse_size("4MB");
  EXPECT_FALSE(mb.value);
  EXPECT_NE(mb.error.find("unknown size unit \"MB\""), std::string::npos) << mb.error;
  EXPECT_NE(parse_size("-1").error.find("negative"), std::string::npos);
  for (const char* bad : {"", "MiB", "4 MiB", "4kib", "1.5MiB", "lots"}) {
    EXPECT_FALSE(parse_size(bad).value) << bad;
  }
  EXPECT_NE(parse_size("99999999999999999999GiB").error.find("too large"), std::string::npos);
}

TEST(ClosestMatch, SuggestsOnlyLikelyTypos) {
  constexpr std::array<std::string_view, 3> kWords{"timeout", "mailbox", "dispatch"};
  EXPECT_EQ(closest_match("timout", kWords), "timeout");
  EXPECT_EQ(closest_match("Mailbox", kWords), "mailbox");
  EXPECT_EQ(closest_match("dispath", kWords), "dispatch");
  EXPECT_EQ(closest_match("zzz", kWords), std::nullopt);
  EXPECT_EQ(closest_match("handler", kWords), std::nullopt);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

TEST(FormatSize, UsesTheLargestWholeBinaryUnit) {
  EXPECT_EQ(format_size(4u << 20), "4MiB");
  EXPECT_EQ(format_size(1536), "1536B");
  EXPECT_EQ(format_size(0), "0B");
}

}  // namespace
}  // namespace troupe::config
