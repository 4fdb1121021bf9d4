#include "syntax/url.h"

#include <gtest/gtest.h>

namespace troupe::syntax {
namespace {

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
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

TEST(ParseAddress, RejectsEachKindOfMistake) {
  EXPECT_TRUE(contains(parse_address("127.0.0.1:65536").error, "0 to 65535"));
  EXPECT_TRUE(contains(parse_address("127.0.0.1").error, "missing port"));
  EXPECT_TRUE(contains(parse_address("::1:50051").error, "brackets"));
  EXPECT_TRUE(contains(parse_address("::1").error, "brackets"));
  EXPECT_TRUE(contains(parse_address("300.1.1.1:80").error, "IPv4"));
  EXPECT_TRUE(contains(parse_address("[::g]:80").error, "IPv6"));
  EXPECT_TRUE(contains(parse_address("[::1]80").error, "missing port"));
  EXPECT_TRUE(contains(parse_address("[::1]").error, "missing port"));
  EXPECT_TRUE(contains(parse_address(":80").error, "missing host"));
  EXPECT_TRUE(contains(parse_address("bad_host:80").error, "host name"));
  EXPECT_FALSE(parse_address("host:").value);
  EXPECT_FALSE(parse_address("host:-1").value);
}

TEST(ParseUrl, SplitsSchemeHostPortAndTarget) {
  const auto url = parse_url("https://api.example.com:8443/v1/jobs?x=1#frag");
  ASSERT_TRUE(url.value) << url.error;
  EXPECT_EQ(url.value->scheme, "https");
  EXPECT_TRUE(url.value->tls());
  EXPECT_EQ(url.value->host, "api.example.com");
  EXPECT_EQ(url.value->port, 8443);
  EXPECT_EQ(url.value->target, "/v1/jobs?x=1");  // the fragment never goes on the wire
  EXPECT_EQ(url.value->host_header(), "api.example.com:8443");

  const auto query_only = parse_url("http://h?x=1");
  ASSERT_TRUE(query_only.value) << query_only.error;
  EXPECT_EQ(query_only.value->target, "/?x=1");
  EXPECT_EQ(parse_url("http://h#f").value->target, "/");
}

TEST(ParseUrl, AMissingPortIsTheSchemesDefault) {
  const auto http = parse_url("http://example.com/a");
  ASSERT_TRUE(http.value) << http.error;
  EXPECT_EQ(http.value->port, 80);
  EXPECT_EQ(http.value->host_header(), "example.com");
  const auto https = parse_url("https://example.com");
  ASSERT_TRUE(https.value) << https.error;
  EXPECT_EQ(https.value->port, 443);
  EXPECT_EQ(https.value->target, "/");
  // The default written out is the same URL; another scheme's default is not.
  EXPECT_EQ(parse_url("https://h:443/p").value->host_header(), "h");
  EXPECT_EQ(parse_url("https://h:80/p").value->host_header(), "h:80");
}

TEST(ParseUrl, BracketedIpv6KeepsItsColonsOutOfThePort) {
  const auto with_port = parse_url("http://[::1]:8080/jobs");
  ASSERT_TRUE(with_port.value) << with_port.error;
  EXPECT_EQ(with_port.value->host, "::1");
  EXPECT_EQ(with_port.value->port, 8080);
  EXPECT_EQ(with_port.value->host_header(), "[::1]:8080");
  const auto bare = parse_url("https://[2001:db8::1]");
  ASSERT_TRUE(bare.value) << bare.error;
  EXPECT_EQ(bare.value->host, "2001:db8::1");
  EXPECT_EQ(bare.value->port, 443);
  EXPECT_EQ(bare.value->host_header(), "[2001:db8::1]");
  // Unbracketed, a colon cannot tell host from port: refused, not guessed.
  EXPECT_TRUE(contains(parse_url("http://::1:8080/").error, "brackets"));
  EXPECT_FALSE(parse_url("http://[::1/").value);
  EXPECT_FALSE(parse_url("http://[::1]8080/").value);
}

TEST(ParseUrl, RejectsUserinfoOtherSchemesMissingHostsAndBadPorts) {
  EXPECT_TRUE(contains(parse_url("http://user:pw@host/").error, "credentials"));
  EXPECT_TRUE(contains(parse_url("http://user@host/").error, "credentials"));
  EXPECT_TRUE(contains(parse_url("ftp://host/x").error, "http:// or https://"));
  EXPECT_TRUE(contains(parse_url("HTTP://host/").error, "http:// or https://"));
  EXPECT_TRUE(contains(parse_url("http:///x").error, "no host"));
  EXPECT_TRUE(contains(parse_url("http://").error, "no host"));
  EXPECT_TRUE(contains(parse_url("http://host:99999/").error, "1 to 65535"));
  EXPECT_TRUE(contains(parse_url("http://host:0/").error, "1 to 65535"));
  for (const char* bad : {"http://host:/", "http://host:x/", "http://:80/", "localhost:8080",
                          "h/path", "http://bad_host/"}) {
    EXPECT_FALSE(parse_url(bad).value) << bad;
  }
}

TEST(IsHostname, FollowsRfc1123Labels) {
  EXPECT_TRUE(is_hostname("localhost"));
  EXPECT_TRUE(is_hostname("worker-1.example.com"));
  EXPECT_FALSE(is_hostname("-a.example.com"));
  EXPECT_FALSE(is_hostname("a..b"));
  EXPECT_FALSE(is_hostname(std::string(64, 'a')));
}

}  // namespace
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

}  // namespace troupe::syntax
