#include "config/value_parsers.h"

#include <gtest/gtest.h>

#include <array>

namespace troupe::config {
namespace {

using namespace std::chrono_literals;

TEST(ParseDuration, AcceptsEveryUnitAndCompounds) {
  EXPECT_EQ(parse_duration("250ms").value, core::Duration(250ms));
  EXPECT_EQ(parse_duration("30s").value, core::Duration(30s));
  EXPECT_EQ(parse_duration("5m").value, core::Duration(5min));
  EXPECT_EQ(parse_duration("1h").value, core::Duration(1h));
  EXPECT_EQ(parse_duration("7us").value, core::Duration(7us));
  EXPECT_EQ(parse_duration("9ns").value, core::Duration(9ns));
  EXPECT_EQ(parse_duration("1m30s").value, core::Duration(90s));
  EXPECT_EQ(parse_duration("1h2m3s4ms").value, core::Duration(1h + 2min + 3s + 4ms));
  EXPECT_EQ(parse_duration("0").value, core::Duration::zero());
  EXPECT_EQ(parse_duration("0s").value, core::Duration::zero());
}

TEST(ParseDuration, RejectsMalformedTextWithAHelpfulMessage) {
  const auto no_unit = parse_duration("5");
  EXPECT_FALSE(no_unit.value);
  EXPECT_NE(no_unit.error.find("no unit"), std::string::npos) << no_unit.error;
  EXPECT_NE(no_unit.error.find("\"5s\""), std::string::npos) << no_unit.error;

  const auto negative = parse_duration("-5s");
  EXPECT_FALSE(negative.value);
  EXPECT_NE(negative.error.find("negative"), std::string::npos) << negative.error;

  for (const char* bad :
       {"", "fast", "10 parsecs", "5 s", "s", "1s1m", "1m1m", "5S", "1.5s", "30sec", "ms5"}) {
    const auto parsed = parse_duration(bad);
    EXPECT_FALSE(parsed.value) << bad;
    EXPECT_NE(parsed.error.find(bad), std::string::npos) << parsed.error;
  }
  EXPECT_NE(parse_duration("fast").error.find(R"(like "250ms", "30s" or "5m")"), std::string::npos);
  EXPECT_NE(parse_duration("99999999999999999999h").error.find("too large"), std::string::npos);
  EXPECT_NE(parse_duration("9999999h").error.find("too large"), std::string::npos);
}

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

TEST(ParseAddress, AcceptsIpv4Ipv6AndHostNames) {
  const auto v4 = parse_address("127.0.0.1:50051");
  ASSERT_TRUE(v4.value) << v4.error;
  EXPECT_EQ(v4.value->host, "127.0.0.1");
  EXPECT_EQ(v4.value->port, 50051);
  const auto v6 = parse_address("[::1]:0");
  ASSERT_TRUE(v6.value) << v6.error;
  EXPECT_EQ(v6.value->host, "::1");
  EXPECT_EQ(v6.value->port, 0);
  const auto name = parse_address("worker-1.example.com:65535");
  ASSERT_TRUE(name.value) << name.error;
  EXPECT_EQ(name.value->port, 65535);
}

TEST(IsLoopback, OnlyAddressesThisMachineAloneCanReach) {
  for (const char* local : {"127.0.0.1:1", "127.3.2.1:1", "[::1]:1", "localhost:1"}) {
    EXPECT_TRUE(is_loopback(*parse_address(local).value)) << local;
  }
  for (const char* exposed :
       {"0.0.0.0:1", "[::]:1", "10.0.0.1:1", "128.0.0.1:1", "[::ffff:127.0.0.1]:1",
        "worker-1.example.com:1", "localhost.example.com:1"}) {
    EXPECT_FALSE(is_loopback(*parse_address(exposed).value)) << exposed;
  }
}

TEST(ParseAddress, RejectsEachKindOfMistake) {
  EXPECT_NE(parse_address("127.0.0.1:65536").error.find("0 to 65535"), std::string::npos);
  EXPECT_NE(parse_address("127.0.0.1").error.find("missing port"), std::string::npos);
  EXPECT_NE(parse_address("::1:50051").error.find("brackets"), std::string::npos);
  EXPECT_NE(parse_address("300.1.1.1:80").error.find("IPv4"), std::string::npos);
  EXPECT_NE(parse_address("[::g]:80").error.find("IPv6"), std::string::npos);
  EXPECT_NE(parse_address("[::1]80").error.find("missing port"), std::string::npos);
  EXPECT_NE(parse_address(":80").error.find("missing host"), std::string::npos);
  EXPECT_NE(parse_address("bad_host:80").error.find("host name"), std::string::npos);
  EXPECT_FALSE(parse_address("host:").value);
  EXPECT_FALSE(parse_address("host:-1").value);
}

TEST(ParseUrl, SplitsSchemeHostPortAndTarget) {
  const auto url = parse_url("https://api.example.com:8443/v1/jobs?x=1");
  ASSERT_TRUE(url.value) << url.error;
  EXPECT_EQ(url.value->scheme, "https");
  EXPECT_EQ(url.value->host, "api.example.com");
  EXPECT_EQ(url.value->port, 8443);
  EXPECT_EQ(url.value->target, "/v1/jobs?x=1");
  const auto bare = parse_url("http://[::1]");
  ASSERT_TRUE(bare.value) << bare.error;
  EXPECT_EQ(bare.value->host, "::1");
  EXPECT_EQ(bare.value->port, 0);
  EXPECT_EQ(bare.value->target, "/");
}

TEST(ParseUrl, RejectsOtherSchemesMissingHostsAndBadPorts) {
  EXPECT_NE(parse_url("ftp://host/x").error.find("http:// or https://"), std::string::npos);
  EXPECT_NE(parse_url("http:///x").error.find("no host"), std::string::npos);
  EXPECT_NE(parse_url("http://host:99999/").error.find("1 to 65535"), std::string::npos);
  EXPECT_NE(parse_url("http://user:pw@host/").error.find("credentials"), std::string::npos);
  EXPECT_FALSE(parse_url("http://host:/").value);
  EXPECT_FALSE(parse_url("localhost:8080").value);
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

TEST(Format, RoundTripsThroughTheParsers) {
  for (const char* text : {"250ms", "30s", "5m", "1h", "1m30s", "1h2m3s4ms5us6ns"}) {
    EXPECT_EQ(format_duration(*parse_duration(text).value), text);
  }
  EXPECT_EQ(format_duration(core::Duration::zero()), "0s");
  EXPECT_EQ(format_size(4u << 20), "4MiB");
  EXPECT_EQ(format_size(1536), "1536B");
  EXPECT_EQ(format_size(0), "0B");
}

}  // namespace
}  // namespace troupe::config
