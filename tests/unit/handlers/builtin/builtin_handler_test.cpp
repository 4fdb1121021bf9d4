#include "handlers/builtin/builtin_handler.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "core/manual_clock.h"

namespace troupe::core {
namespace {

using namespace std::chrono_literals;

struct Fixture {
  ManualClock clock;
  boost::asio::io_context io;
  std::string payload;
  Metadata metadata;
  boost::asio::cancellation_signal signal;

  std::optional<AttemptResult> run(Handler& h, std::string p) {
    payload = std::move(p);
    std::optional<AttemptResult> out;
    AttemptContext ctx{JobId{1}, "t", 1, payload, metadata, 1s, signal.slot()};
    h.start(ctx, [&](AttemptResult r) { out = std::move(r); });
    io.restart();
    io.poll();
    return out;
  }
};

TEST(BuiltinHandlers, SleepReadsItsPayloadInTheConfigsDurationSyntax) {
  Fixture f;
  BuiltinHandlerOptions o;
  o.kind = BuiltinHandlerOptions::Kind::kSleep;
  o.sleep = 30ms;
  auto h = make_builtin_handler(o, f.io.get_executor(), f.clock);
  std::optional<AttemptResult> out;
  f.payload = "1m30s";
  AttemptContext ctx{JobId{1}, "t", 1, f.payload, f.metadata, 1s, f.signal.slot()};
  h->start(ctx, [&](AttemptResult res) { out = std::move(res); });
  f.clock.advance(89s);
  f.io.restart();
  f.io.poll();
  EXPECT_FALSE(out);  // not the configured 30ms: the compound payload was understood
  f.clock.advance(1s);
  f.io.restart();
  f.io.poll();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->failure, FailureClass::kNone);
}

TEST(BuiltinHandlers, NoopAndEchoCompleteSynchronously) {
  Fixture f;
  BuiltinHandlerOptions o;
  auto noop = make_builtin_handler(o, f.io.get_executor(), f.clock);
  auto r = f.run(*noop, "x");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->failure, FailureClass::kNone);
  EXPECT_EQ(r->output, "");
  o.kind = BuiltinHandlerOptions::Kind::kEcho;
  auto echo = make_builtin_handler(o, f.io.get_executor(), f.clock);
  r = f.run(*echo, "hello");
  EXPECT_EQ(r->output, "hello");
}

TEST(BuiltinHandlers, SleepUsesThePayloadOrTheConfiguredDurationAndStopsOnCancel) {
  Fixture f;
  BuiltinHandlerOptions o;
  o.kind = BuiltinHandlerOptions::Kind::kSleep;
  o.sleep = 30ms;
  auto h = make_builtin_handler(o, f.io.get_executor(), f.clock);
  auto r = f.run(*h, "10ms");
  EXPECT_FALSE(r);
  std::optional<AttemptResult> out;
  AttemptContext ctx{JobId{1}, "t", 1, f.payload, f.metadata, 1s, f.signal.slot()};
  f.payload = "not a duration";
  h->start(ctx, [&](AttemptResult res) { out = std::move(res); });
  f.clock.advance(29ms);
  f.io.restart();
  f.io.poll();
  EXPECT_FALSE(out);
  f.clock.advance(1ms);
  f.io.restart();
  f.io.poll();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->failure, FailureClass::kNone);
  out.reset();
  h->start(ctx, [&](AttemptResult res) { out = std::move(res); });
  f.signal.emit(boost::asio::cancellation_type::terminal);
  f.io.restart();
  f.io.poll();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->failure, FailureClass::kCancelled);
}

TEST(BuiltinHandlers, FailEveryNthCallInTheConfiguredWay) {
  Fixture f;
  BuiltinHandlerOptions o;
  o.kind = BuiltinHandlerOptions::Kind::kFail;
  o.fail_every = 3;
  o.fail_mode = BuiltinHandlerOptions::FailMode::kPermanent;
  auto h = make_builtin_handler(o, f.io.get_executor(), f.clock);
  EXPECT_EQ(f.run(*h, "")->failure, FailureClass::kNone);
  EXPECT_EQ(f.run(*h, "")->failure, FailureClass::kNone);
  EXPECT_EQ(f.run(*h, "")->failure, FailureClass::kPermanent);
  o.fail_every = 1;
  o.fail_mode = BuiltinHandlerOptions::FailMode::kRetryable;
  h = make_builtin_handler(o, f.io.get_executor(), f.clock);
  EXPECT_EQ(f.run(*h, "")->failure, FailureClass::kRetryable);
  o.fail_mode = BuiltinHandlerOptions::FailMode::kThrow;
  h = make_builtin_handler(o, f.io.get_executor(), f.clock);
  EXPECT_THROW(f.run(*h, ""), std::runtime_error);
}

}  // namespace
}  // namespace troupe::core
