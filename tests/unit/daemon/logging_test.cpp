// trouped's JSON log lines: one object per line, always valid UTF-8.
#include "daemon/logging.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>
#include <string>

namespace troupe::daemon {
namespace {

std::string json_line(std::string_view message) {
  std::ostringstream out;
  config::LoggingOptions options;
  options.format = config::LoggingOptions::Format::kJson;
  options.level = "info";
  auto logger = make_logger(options, std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  logger->info("{}", message);
  return out.str();
}

// E.g. a reload error naming a troupe whose name has byte 0xff: the line
// must still be JSON, which is UTF-8.
TEST(JsonLogging, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  const std::string line = json_line("reload refused: troupes[0].name: \"a\xFF\" is not valid");
  EXPECT_NE(line.find(R"("msg":"reload refused: troupes[0].name: \"a)"
                      "\xEF\xBF\xBD"
                      R"(\" is not valid"})"),
            std::string::npos)
      << line;
  EXPECT_EQ(line.find('\xFF'), std::string::npos) << line;
}

TEST(JsonLogging, Utf8AndControlCharactersAreKept) {
  const std::string line = json_line("caf\xC3\xA9\tok\x01");
  EXPECT_NE(line.find(R"("msg":"caf)"
                      "\xC3\xA9"
                      R"(\tok\u0001"})"),
            std::string::npos)
      << line;
}

}  // namespace
}  // namespace troupe::daemon
