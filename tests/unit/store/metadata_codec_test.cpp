#include "store/metadata_codec.h"

#include <gtest/gtest.h>

namespace troupe::store::detail {
namespace {

TEST(MetadataCodec, RoundTripsKeysAndValuesWithAnyBytes) {
  core::Metadata metadata{{"a", ""}, {"", "empty key"}, {std::string("n\0l", 3), "\xff\x01"}};
  auto decoded = decode_metadata(encode_metadata(metadata));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, metadata);
}

TEST(MetadataCodec, EmptyIsEmpty) {
  EXPECT_EQ(encode_metadata({}), "");
  auto decoded = decode_metadata("");
  ASSERT_TRUE(decoded);
  EXPECT_TRUE(decoded->empty());
}

TEST(MetadataCodec, RefusesTruncatedBytes) {
  std::string bytes = encode_metadata({{"key", "value"}});
  for (std::size_t n = 1; n < bytes.size(); ++n) {
    EXPECT_FALSE(decode_metadata(std::string_view(bytes).substr(0, n))) << n;
  }
}

}  // namespace
}  // namespace troupe::store::detail
