#include "tools/common/json_writer.h"

#include <gtest/gtest.h>

namespace troupe::tools {
namespace {

TEST(JsonWriter, NestsObjectsAndArraysWithCommas) {
  JsonWriter w;
  w.begin_object();
  w.key("a").value(1);
  w.key("b").begin_array().value("x").value(true).begin_object().end_object().end_array();
  w.key("c").value(std::uint64_t{18446744073709551615u});
  w.key("d").raw("{\"z\":null}");
  w.end_object();
  EXPECT_EQ(w.str(),
            "{\"a\":1,\"b\":[\"x\",true,{}],\"c\":18446744073709551615,\"d\":{\"z\":null}}");
}

TEST(JsonWriter, EscapesStringsAndNonFiniteNumbers) {
  EXPECT_EQ(JsonWriter::quote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
  JsonWriter w;
  w.begin_array().value(1.5).value(std::numeric_limits<double>::infinity()).end_array();
  EXPECT_EQ(w.str(), "[1.5,null]");
}

}  // namespace
}  // namespace troupe::tools
