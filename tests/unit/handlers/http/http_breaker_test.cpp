// The circuit breaker end to end: the runtime running an http troupe against
// a local server the test controls. The server's request count proves that
// no call is made while the breaker is open.

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <string>
#include <variant>

#include "core/manual_clock.h"
#include "core/runtime.h"
#include "gtest/gtest.h"
#include "handlers/http/http_options.h"
#include "tests/unit/handlers/http/test_http_server.h"
#include "tests/unit/handlers/test_support.h"

namespace troupe::core {
namespace {

using namespace std::chrono_literals;
using testing::Reply;
using testing::TestHttpServer;

class HttpBreakerTest : public ::testing::Test {
 protected:
  HttpBreakerTest()
      : server_(io_, [this](const TestHttpServer::Request&) {
          return failing_ ? Reply(503, "down") : Reply(200, "ok");
        }) {}

  TroupeOptions troupe_options() const {
    TroupeOptions o;
    o.name = "api";
    o.mode = TroupeMode::kFixed;
    o.max_actors = 1;
    o.retry.max_attempts = 1;
    o.circuit_breaker.consecutive_failures = 3;
    o.circuit_breaker.minimum_calls = 100;  // only the consecutive rule here
    o.circuit_breaker.window_size = 100;
    o.circuit_breaker.open_timeout = 10s;
    o.circuit_breaker.half_open_max_calls = 1;
    HttpHandlerOptions http;
    http.url = server_.url("/work");
    o.handler = http;
    return o;
  }

  static JobRequest api_job() {
    JobRequest r;
    r.troupe = "api";
    r.payload = "p";
    return r;
  }

  /// Submits one job and runs the io_context until it is terminal (bounded
  /// in real time: the server answers at once).
  JobRecord run_job() {
    std::optional<JobRecord> done;
    auto accepted = runtime_->submit(api_job(), [&done](const JobRecord& r) { done = r; });
    EXPECT_TRUE(std::holds_alternative<Accepted>(accepted));
    EXPECT_TRUE(testing::run_until(io_, [&done] { return done.has_value(); }))
        << "job did not finish within 20s";
    return done.value_or(JobRecord{});
  }

  CircuitState circuit() const { return runtime_->troupe("api")->circuit; }

  boost::asio::io_context io_;
  ManualClock clock_;
  bool failing_ = true;
  TestHttpServer server_;
  std::unique_ptr<Runtime> runtime_ = make_runtime(io_, clock_, null_observer(), {});
};

TEST_F(HttpBreakerTest, OpensStopsCallingHalfOpensAndClosesWhenTheServerRecovers) {
  runtime_->apply({troupe_options()});

  for (int i = 0; i < 3; ++i) EXPECT_EQ(run_job().state, JobState::kDead);
  io_.poll();
  EXPECT_EQ(server_.requests().size(), 3u);
  EXPECT_EQ(circuit(), CircuitState::kOpen);

  // Open: submits are refused with a retry hint and the server sees nothing.
  for (int i = 0; i < 5; ++i) {
    auto r = runtime_->submit(api_job());
    ASSERT_TRUE(std::holds_alternative<Rejection>(r));
    EXPECT_EQ(std::get<Rejection>(r).reason, RejectReason::kCircuitOpen);
    EXPECT_GT(std::get<Rejection>(r).retry_after.count(), 0);
  }
  io_.poll();
  EXPECT_EQ(server_.requests().size(), 3u);

  // The server recovers; after open_timeout one probe is let through and
  // its success closes the breaker.
  failing_ = false;
  clock_.advance(10s);
  io_.poll();
  EXPECT_EQ(circuit(), CircuitState::kHalfOpen);
  const JobRecord probe = run_job();
  EXPECT_EQ(probe.state, JobState::kSucceeded);
  EXPECT_EQ(probe.result, "ok");
  io_.poll();
  EXPECT_EQ(circuit(), CircuitState::kClosed);
  EXPECT_EQ(server_.requests().size(), 4u);
  EXPECT_EQ(run_job().state, JobState::kSucceeded);
}

}  // namespace
}  // namespace troupe::core
