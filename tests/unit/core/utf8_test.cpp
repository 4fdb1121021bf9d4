#include "core/utf8.h"

#include <gtest/gtest.h>

#include <string>

namespace troupe::core {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

TEST(Utf8, WellFormedTextIsValidAndUnchanged) {
  for (const std::string& text :
       {std::string(), std::string("plain ascii"), std::string("caf\xC3\xA9"),
        std::string("\xE2\x82\xAC 5"), std::string("\xF0\x9F\x8E\xAD troupe"),
        std::string("\xF4\x8F\xBF\xBF"), std::string("nul\0inside", 10)}) {
    EXPECT_TRUE(is_valid_utf8(text)) << text;
    EXPECT_EQ(valid_utf8(text), text);
  }
}

TEST(Utf8, IllFormedSequencesAreReplacedOneFffdPerMaximalSubpart) {
  // A lone byte that cannot start a character.
  EXPECT_FALSE(
      is_valid_utf8("a\xFF"
                    "b"));
  EXPECT_EQ(valid_utf8("a\xFF"
                       "b"),
            "a" + kFffd + "b");
  // A stray continuation byte.
  EXPECT_EQ(valid_utf8("\x80x"), kFffd + "x");
  // A character cut short (what a blind byte clip leaves): one U+FFFD.
  EXPECT_EQ(valid_utf8("ok\xE2\x82"), "ok" + kFffd);
  EXPECT_EQ(valid_utf8("\xF0\x9F\x8E"
                       "a"),
            kFffd + "a");
  // Overlong forms, surrogates and code points past U+10FFFF.
  EXPECT_EQ(valid_utf8("\xC0\xAF"), kFffd + kFffd);
  EXPECT_EQ(valid_utf8("\xE0\x80\xAF"), kFffd + kFffd + kFffd);
  EXPECT_EQ(valid_utf8("\xED\xA0\x80"), kFffd + kFffd + kFffd);
  EXPECT_EQ(valid_utf8("\xF4\x90\x80\x80"), kFffd + kFffd + kFffd + kFffd);
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));
  EXPECT_TRUE(is_valid_utf8(valid_utf8("\xFE\xFF\xC3(\xE2\x28\xA1")));
}

TEST(Utf8, PrefixCutsOnlyBetweenCharacters) {
  const std::string text = "a\xC3\xA9\xE2\x82\xAC";  // a, é (2 bytes), € (3 bytes)
  EXPECT_EQ(utf8_prefix(text, 100), text);
  EXPECT_EQ(utf8_prefix(text, 6), text);
  EXPECT_EQ(utf8_prefix(text, 5), "a\xC3\xA9");
  EXPECT_EQ(utf8_prefix(text, 4), "a\xC3\xA9");
  EXPECT_EQ(utf8_prefix(text, 3), "a\xC3\xA9");
  EXPECT_EQ(utf8_prefix(text, 2), "a");
  EXPECT_EQ(utf8_prefix(text, 1), "a");
  EXPECT_EQ(utf8_prefix(text, 0), "");
}

TEST(Utf8, SuffixStartsOnlyAtACharacter) {
  const std::string text = "\xE2\x82\xAC\xC3\xA9z";  // €, é, z
  EXPECT_EQ(utf8_suffix(text, 100), text);
  EXPECT_EQ(utf8_suffix(text, 5), "\xC3\xA9z");
  EXPECT_EQ(utf8_suffix(text, 4), "\xC3\xA9z");
  EXPECT_EQ(utf8_suffix(text, 3), "\xC3\xA9z");
  EXPECT_EQ(utf8_suffix(text, 2), "z");
  EXPECT_EQ(utf8_suffix(text, 0), "");
}

// Raw bytes with long runs of continuation bytes: a cut backs off at most
// one character's worth, and the repair makes the rest valid.
TEST(Utf8, CutsOfGarbageStayBounded) {
  const std::string garbage(20, '\x80');
  EXPECT_GE(utf8_prefix(garbage, 10).size(), 7u);
  EXPECT_GE(utf8_suffix(garbage, 10).size(), 7u);
  EXPECT_TRUE(is_valid_utf8(valid_utf8(utf8_prefix(garbage, 10))));
}

}  // namespace
}  // namespace troupe::core
