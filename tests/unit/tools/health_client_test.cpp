#include "tools/common/health_client.h"

#include <gtest/gtest.h>

namespace troupe::tools {
namespace {

TEST(HealthWire, EncodesServiceAsField1) {
  EXPECT_EQ(detail::encode_health_request(""), "");
  EXPECT_EQ(detail::encode_health_request("echo"), std::string("\x0a\x04"
                                                               "echo"));
  const std::string long_name(200, 'n');
  const std::string enc = detail::encode_health_request(long_name);
  ASSERT_EQ(enc.size(), 203u);  // tag + 2-byte varint length + name
  EXPECT_EQ(static_cast<unsigned char>(enc[1]), 0xC8);
  EXPECT_EQ(static_cast<unsigned char>(enc[2]), 0x01);
}

TEST(HealthWire, DecodesStatusAndSkipsUnknownFields) {
  EXPECT_EQ(detail::decode_health_response(std::string("\x08\x01", 2)), ServingStatus::kServing);
  EXPECT_EQ(detail::decode_health_response(std::string("\x08\x02", 2)), ServingStatus::kNotServing);
  EXPECT_EQ(detail::decode_health_response(""), ServingStatus::kUnknown);  // default value
  EXPECT_EQ(detail::decode_health_response(std::string("\x12\x02xy\x08\x03", 6)),
            ServingStatus::kServiceUnknown);
  EXPECT_EQ(detail::decode_health_response(std::string("\x08", 1)), ServingStatus::kUnknown);
  EXPECT_EQ(detail::decode_health_response(std::string("\x12\x09xy", 4)), ServingStatus::kUnknown);
}

}  // namespace
}  // namespace troupe::tools
