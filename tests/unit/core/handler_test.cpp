#include "core/handler.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>

#include "core/manual_clock.h"
#include "handlers/builtin/builtin_options.h"
#include "handlers/exec/exec_options.h"
#include "handlers/http/http_options.h"

namespace troupe::core {
namespace {

using namespace std::chrono_literals;

TEST(HandlerFactory, DescribesAndBuildsEveryKind) {
  ManualClock clock;
  boost::asio::io_context io;
  EXPECT_EQ(describe(BuiltinHandlerOptions{}), "builtin:noop");
  EXPECT_EQ(describe(ExecHandlerOptions{}), "exec");
  EXPECT_EQ(describe(HttpHandlerOptions{}), "http");
  ExecHandlerOptions exec;
  exec.argv = {"/nonexistent/troupe-test-program"};
  auto h = make_handler(exec, io.get_executor(), clock);
  ASSERT_TRUE(h);
  std::string payload;
  Metadata md;
  std::optional<AttemptResult> out;
  h->start(AttemptContext{JobId{1}, "t", 1, payload, md, 1s, {}},
           [&](AttemptResult r) { out = std::move(r); });
  const auto give_up = std::chrono::steady_clock::now() + 20s;
  while (!out && std::chrono::steady_clock::now() < give_up) io.run_for(10ms);
  ASSERT_TRUE(out);
  // The real exec handler: a program that cannot be spawned fails permanently.
  EXPECT_EQ(out->failure, FailureClass::kPermanent);
  EXPECT_EQ(out->output.find("not available"), std::string::npos) << out->output;
}

TEST(HandlerOptions, EqualOnlyForTheSameKindWithEqualOptions) {
  HttpHandlerOptions http;
  http.url = "https://example.com/";
  const HandlerOptions a = http;
  EXPECT_EQ(a, HandlerOptions(http));
  http.ca_file = "/etc/troupe/ca.pem";  // every field counts, this one included
  EXPECT_NE(a, HandlerOptions(http));
  EXPECT_NE(HandlerOptions(BuiltinHandlerOptions{}), HandlerOptions(ExecHandlerOptions{}));
  EXPECT_EQ(HandlerOptions(BuiltinHandlerOptions{}), HandlerOptions(BuiltinHandlerOptions{}));
  EXPECT_EQ(HandlerOptions(), HandlerOptions());
  EXPECT_NE(HandlerOptions(), a);
  ASSERT_NE(a.get_if<HttpHandlerOptions>(), nullptr);
  EXPECT_EQ(a.get_if<HttpHandlerOptions>()->url, "https://example.com/");
  EXPECT_EQ(a.get_if<ExecHandlerOptions>(), nullptr);
  EXPECT_EQ(a.config()->kind(), "http");
}

TEST(HandlerOptions, NoHandlerIsNamedAndRefusesToBuild) {
  ManualClock clock;
  boost::asio::io_context io;
  EXPECT_EQ(describe(HandlerOptions{}), "none");
  EXPECT_THROW(make_handler(HandlerOptions{}, io.get_executor(), clock), std::invalid_argument);
}

}  // namespace
}  // namespace troupe::core
