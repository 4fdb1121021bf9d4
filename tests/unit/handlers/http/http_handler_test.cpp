#include "handlers/http/http_handler.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <ctime>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/handlers/http/test_http_server.h"
#include "tests/unit/handlers/test_support.h"

namespace troupe::core {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using testing::Reply;
using testing::TestHttpServer;

std::string http_date(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

TEST(HttpClassifyTest, StatusTable) {
  HttpHandlerOptions o;
  for (int s : {200, 201, 204, 299}) EXPECT_EQ(classify_http(o, s), FailureClass::kNone) << s;
  for (int s : {408, 429, 500, 502, 503, 504, 599}) {
    EXPECT_EQ(classify_http(o, s), FailureClass::kRetryable) << s;
  }
  for (int s : {100, 301, 304, 400, 401, 403, 404, 409, 410, 422}) {
    EXPECT_EQ(classify_http(o, s), FailureClass::kPermanent) << s;
  }
  o.retryable_statuses = {409};
  EXPECT_EQ(classify_http(o, 409), FailureClass::kRetryable);
  EXPECT_EQ(classify_http(o, 429), FailureClass::kPermanent);
  EXPECT_EQ(classify_http(o, 503), FailureClass::kRetryable);  // every 5xx regardless
}

TEST(HttpRetryAfterTest, SecondsAndDates) {
  const auto now = std::chrono::system_clock::from_time_t(1'700'000'000);
  EXPECT_EQ(parse_retry_after("120", now), Duration(120s));
  EXPECT_EQ(parse_retry_after(" 0 ", now), Duration(0s));
  EXPECT_EQ(parse_retry_after(http_date(now + 90s), now), Duration(90s));
  EXPECT_EQ(parse_retry_after(http_date(now - 90s), now), Duration(0s));
  // 1'700'000'000 is Tue, 14 Nov 2023 22:13:20 GMT.
  EXPECT_EQ(parse_retry_after("Tuesday, 14-Nov-23 22:13:50 GMT", now), Duration(30s));
  EXPECT_EQ(parse_retry_after("Tue Nov 14 22:14:20 2023", now), Duration(60s));
  EXPECT_EQ(parse_retry_after("soon", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("-5", now), std::nullopt);
}

class HttpHandlerTest : public ::testing::Test {
 protected:
  struct Outcome {
    AttemptResult result;
    int calls = 0;
    std::chrono::steady_clock::duration elapsed{};
  };

  Outcome run(Handler& handler, const std::string& payload, const Metadata& metadata = {},
              std::uint64_t id = 0xabc, std::uint32_t attempt = 1) {
    Outcome out;
    AttemptContext ctx{JobId{id}, "t", attempt,        payload,
                       metadata,  10s, signal_.slot(), fence_term_};
    const auto t0 = std::chrono::steady_clock::now();
    handler.start(ctx, [&out](AttemptResult r) {
      out.result = std::move(r);
      ++out.calls;
    });
    EXPECT_TRUE(testing::run_until(io_, [&] { return out.calls > 0; }));
    out.elapsed = std::chrono::steady_clock::now() - t0;
    io_.restart();
    io_.poll();  // whatever completes right after done (must not call done again)
    EXPECT_EQ(out.calls, 1);
    return out;
  }

  std::unique_ptr<Handler> make(const std::string& url, HttpHandlerOptions o = {}) {
    o.url = url;
    return make_http_handler(o, strand_, clock_);
  }

  std::int64_t fence_term_ = 0;  // AttemptContext::fence_term
  boost::asio::io_context io_;
  boost::asio::any_io_executor strand_ = boost::asio::make_strand(io_);
  std::unique_ptr<Clock> clock_owner_ = make_steady_clock();
  Clock& clock_ = *clock_owner_;
  boost::asio::cancellation_signal signal_;
};

TEST_F(HttpHandlerTest, ASingletonsFencingTermIsAHeaderOnlyWhileOneIsHeld) {
  TestHttpServer server(io_, [](const auto&) { return Reply{200, "ok", {}, 0ms, false, false}; });
  auto h = make(server.url("/"));
  fence_term_ = 9;
  ASSERT_EQ(run(*h, "a").result.failure, FailureClass::kNone);
  fence_term_ = 0;  // the same handler (its kept-alive request) after the lease went
  ASSERT_EQ(run(*h, "b").result.failure, FailureClass::kNone);
  ASSERT_EQ(server.requests().size(), 2u);
  EXPECT_EQ(server.requests()[0]["X-Troupe-Fence-Term"], "9");
  EXPECT_EQ(server.requests()[1]["X-Troupe-Fence-Term"], "");
}

TEST_F(HttpHandlerTest, PostsPayloadAndReturnsBodyWithHeadersForDeduplication) {
  TestHttpServer server(
      io_, [](const auto& req) { return Reply{200, "got:" + req.body(), {}, 0ms, false, false}; });
  HttpHandlerOptions o;
  o.headers = {{"X-Api-Key", "k1"}, {"Content-Type", "application/json"}};
  auto h = make(server.url("/jobs?q=1"), o);
  const Outcome out =
      run(*h, R"({"n":1})", {{"trace-id", "t-42"}, {"bad name", "v\r\nInjected: x"}}, 0x1f, 3);
  ASSERT_EQ(out.result.failure, FailureClass::kNone) << out.result.output;
  EXPECT_EQ(out.result.output, R"(got:{"n":1})");
  ASSERT_EQ(server.requests().size(), 1u);
  const auto& req = server.requests()[0];
  EXPECT_EQ(req.method_string(), "POST");
  EXPECT_EQ(req.target(), "/jobs?q=1");
  EXPECT_EQ(req.body(), R"({"n":1})");
  EXPECT_EQ(req["X-Troupe-Job-Id"], "000000000000001f");
  EXPECT_EQ(req["X-Troupe-Attempt"], "3");
  EXPECT_EQ(req["X-Troupe-Meta-trace-id"], "t-42");
  EXPECT_EQ(req["X-Troupe-Meta-bad-name"], "v  Injected: x");
  EXPECT_EQ(req["Injected"], "");
  EXPECT_EQ(req["X-Api-Key"], "k1");
  EXPECT_EQ(req["Content-Type"], "application/json");
  EXPECT_EQ(req["Host"], "127.0.0.1:" + std::to_string(server.port()));
}

TEST_F(HttpHandlerTest, MethodIsConfigurable) {
  TestHttpServer server(io_, [](const auto&) { return Reply{204}; });
  HttpHandlerOptions o;
  o.method = "PUT";
  auto h = make(server.url(), o);
  EXPECT_EQ(run(*h, "x").result.failure, FailureClass::kNone);
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].method_string(), "PUT");
}

TEST_F(HttpHandlerTest, KeepAliveReusesOneConnectionAcrossJobs) {
  TestHttpServer server(io_, [](const auto& req) { return Reply{200, req.body()}; });
  auto h = make(server.url());
  constexpr int kJobs = 25;
  for (int i = 0; i < kJobs; ++i) {
    const Outcome out = run(*h, "job-" + std::to_string(i), {}, static_cast<std::uint64_t>(i));
    ASSERT_EQ(out.result.failure, FailureClass::kNone) << out.result.output;
    EXPECT_EQ(out.result.output, "job-" + std::to_string(i));
  }
  EXPECT_EQ(server.requests().size(), static_cast<std::size_t>(kJobs));
  EXPECT_EQ(server.connections(), 1);
}

TEST_F(HttpHandlerTest, ReconnectsWhenTheServerClosedTheKeptConnection) {
  TestHttpServer server(io_, [](const auto&) { return Reply{200, "ok", {}, 0ms, false, true}; });
  auto h = make(server.url());
  for (int i = 0; i < 3; ++i) {
    const Outcome out = run(*h, "x");
    EXPECT_EQ(out.result.failure, FailureClass::kNone) << i << ": " << out.result.output;
  }
  EXPECT_EQ(server.connections(), 3);
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST_F(HttpHandlerTest, ClientErrorsArePermanent) {
  TestHttpServer server(io_, [](const auto&) { return Reply{404, "no such queue"}; });
  auto h = make(server.url("/q"));
  const Outcome out = run(*h, "x");
  EXPECT_EQ(out.result.failure, FailureClass::kPermanent);
  EXPECT_THAT(out.result.output, HasSubstr("404"));
  EXPECT_THAT(out.result.output, HasSubstr("no such queue"));
  EXPECT_FALSE(out.result.retry_after);
}

TEST_F(HttpHandlerTest, ServerErrorsAndThrottlingAreRetryableHonouringRetryAfter) {
  Reply next;
  TestHttpServer server(io_, [&](const auto&) { return next; });
  auto h = make(server.url());

  next = Reply{429, "slow down", {{"Retry-After", "7"}}};
  Outcome out = run(*h, "x");
  EXPECT_EQ(out.result.failure, FailureClass::kRetryable);
  EXPECT_EQ(out.result.retry_after, Duration(7s));

  next = Reply{503, "", {{"Retry-After", http_date(std::chrono::system_clock::now() + 120s)}}};
  out = run(*h, "x");
  EXPECT_EQ(out.result.failure, FailureClass::kRetryable);
  ASSERT_TRUE(out.result.retry_after);
  EXPECT_GT(*out.result.retry_after, Duration(100s));
  EXPECT_LE(*out.result.retry_after, Duration(121s));

  next = Reply{500};
  out = run(*h, "x");
  EXPECT_EQ(out.result.failure, FailureClass::kRetryable);
  EXPECT_FALSE(out.result.retry_after);

  next = Reply{408};
  EXPECT_EQ(run(*h, "x").result.failure, FailureClass::kRetryable);
  // All on the one kept-alive connection.
  EXPECT_EQ(server.connections(), 1);
}

// The 512-byte clip of an error body cuts between characters: "a" then
// 2-byte characters puts byte 512 inside one.
TEST_F(HttpHandlerTest, ErrorBodyIsClippedBetweenCharacters) {
  std::string accents;
  for (int i = 0; i < 600; ++i) accents += "\xC3\xA9";
  TestHttpServer server(io_, [&](const auto&) { return Reply{500, "a" + accents}; });
  auto h = make(server.url());
  const Outcome out = run(*h, "x");
  ASSERT_EQ(out.result.failure, FailureClass::kRetryable);
  const auto begin = out.result.output.find(": a");
  const auto end = out.result.output.find("... (");
  ASSERT_NE(begin, std::string::npos) << out.result.output;
  ASSERT_NE(end, std::string::npos) << out.result.output;
  EXPECT_EQ(out.result.output.substr(begin + 2, end - begin - 2), "a" + accents.substr(0, 510));
  EXPECT_THAT(out.result.output, HasSubstr("(690 bytes more)"));
}

TEST_F(HttpHandlerTest, DroppedConnectionIsRetryableAndTheNextJobReconnects) {
  bool drop = true;
  TestHttpServer server(io_, [&](const auto&) { return Reply{200, "ok", {}, 0ms, drop, false}; });
  auto h = make(server.url());
  Outcome out = run(*h, "x");
  EXPECT_EQ(out.result.failure, FailureClass::kRetryable);
  EXPECT_THAT(out.result.output, HasSubstr("failed"));
  drop = false;
  out = run(*h, "x");
  EXPECT_EQ(out.result.failure, FailureClass::kNone) << out.result.output;
}

TEST_F(HttpHandlerTest, ConnectionRefusedIsRetryable) {
  unsigned short port = 0;
  {
    boost::asio::ip::tcp::acceptor probe(
        io_, {boost::asio::ip::make_address("127.0.0.1"), 0});  // a port nobody listens on
    port = probe.local_endpoint().port();
  }
  auto h = make("http://127.0.0.1:" + std::to_string(port) + "/");
  const Outcome out = run(*h, "x");
  EXPECT_EQ(out.result.failure, FailureClass::kRetryable);
  EXPECT_THAT(out.result.output, HasSubstr("connect to 127.0.0.1"));
}

TEST_F(HttpHandlerTest, ResponseOverMaxResponseIsPermanent) {
  TestHttpServer server(io_, [](const auto&) { return Reply{200, std::string(5000, 'z')}; });
  HttpHandlerOptions o;
  o.max_response = 1000;
  auto h = make(server.url(), o);
  Outcome out = run(*h, "x");
  EXPECT_EQ(out.result.failure, FailureClass::kPermanent);
  EXPECT_THAT(out.result.output, HasSubstr("max_response (1000 bytes)"));
  server.set_responder([](const auto&) { return Reply{200, "small"}; });
  out = run(*h, "x");
  EXPECT_EQ(out.result.failure, FailureClass::kNone);
  EXPECT_EQ(out.result.output, "small");
}

TEST_F(HttpHandlerTest, CancellationClosesTheConnectionOfASlowResponse) {
  TestHttpServer server(io_, [&](const auto&) {
    // Cancel once the request has arrived; the answer would take 30s.
    boost::asio::post(strand_, [&] { signal_.emit(boost::asio::cancellation_type::terminal); });
    return Reply{200, "late", {}, 30s};
  });
  auto h = make(server.url());
  Outcome out = run(*h, "x");
  EXPECT_EQ(out.result.failure, FailureClass::kCancelled);
  EXPECT_LT(out.elapsed, 10s);
  EXPECT_EQ(server.requests().size(), 1u);

  // The cancelled connection is not reused.
  server.set_responder([](const auto&) { return Reply{200, "fresh"}; });
  out = run(*h, "x");
  EXPECT_EQ(out.result.failure, FailureClass::kNone) << out.result.output;
  EXPECT_EQ(server.connections(), 2);
}

TEST_F(HttpHandlerTest, ConcurrentActorsEachKeepTheirOwnConnection) {
  TestHttpServer server(io_, [](const auto& req) { return Reply{200, req.body()}; });
  HttpHandlerOptions o;
  o.url = server.url("/c");
  std::vector<boost::asio::any_io_executor> strands;
  std::vector<std::unique_ptr<Handler>> handlers;
  for (int i = 0; i < 4; ++i) {
    strands.push_back(boost::asio::make_strand(io_));
    handlers.push_back(make_http_handler(o, strands.back(), clock_));
  }
  std::atomic<int> ok{0};
  std::atomic<int> bad{0};
  bool finished = testing::run_actors_concurrently(
      io_, strands, handlers, 50, [&](int actor, int job, const AttemptResult& r) {
        const std::string expected =
            "actor-" + std::to_string(actor) + "-job-" + std::to_string(job);
        (r.failure == FailureClass::kNone && r.output == expected ? ok : bad)++;
      });
  // The server's kept connections keep the io_context busy: stop it first.
  server.stop();
  ASSERT_TRUE(finished);
  EXPECT_EQ(ok, 200);
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(server.requests().size(), 200u);
  EXPECT_EQ(server.connections(), 4);
}

TEST_F(HttpHandlerTest, InvalidUrlFailsEveryAttemptPermanently) {
  auto h = make("gopher://nope");
  const Outcome out = run(*h, "x");
  EXPECT_EQ(out.result.failure, FailureClass::kPermanent);
  EXPECT_THAT(out.result.output, HasSubstr("invalid url"));
}

// ------------------------------------------------------------ signing

TEST(HttpSignatureTest, KnownAnswer) {
  // Python: hmac.new(b"topsecret", b'1700000000.{"order": 42}', hashlib.sha256).hexdigest()
  EXPECT_EQ(sign_http_request("topsecret", "1700000000", R"({"order": 42})"),
            "v1=6294e7e3cee63e287cee6bbf7c077d3c371bca8e697fbde063d3299d6b32f7fc");
}

TEST(HttpSignatureTest, EveryInputChangesIt) {
  const std::string base = sign_http_request("k", "1700000000", "body");
  EXPECT_NE(sign_http_request("K", "1700000000", "body"), base);
  EXPECT_NE(sign_http_request("k", "1700000001", "body"), base);
  EXPECT_NE(sign_http_request("k", "1700000000", "bodY"), base);
  // The '.' separates: moving a character across it changes the signature.
  EXPECT_NE(sign_http_request("k", "170000000", "0body"), base);
  EXPECT_EQ(base.size(), 3u + 64u);
}

/// What a receiving service does: HMAC-SHA256 of "<timestamp>.<body>" with
/// the shared secret, computed here with OpenSSL directly.
std::string expected_signature(const std::string& secret, const std::string& timestamp,
                               const std::string& body) {
  const std::string message = timestamp + "." + body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &size);
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  for (unsigned int i = 0; i < size; ++i) std::snprintf(hex + 2 * i, 3, "%02x", mac[i]);
  return "v1=" + std::string(hex, 2 * size);
}

TEST_F(HttpHandlerTest, SignedRequestCarriesATimestampAndAVerifiableSignature) {
  TestHttpServer server(io_, [](const auto&) { return Reply{200, "ok"}; });
  HttpHandlerOptions o;
  o.signing_secret = "s3cret";
  auto h = make(server.url("/hook"), o);
  ASSERT_EQ(run(*h, R"({"n":1})").result.failure, FailureClass::kNone);
  ASSERT_EQ(server.requests().size(), 1u);
  const auto& req = server.requests()[0];
  const std::string timestamp(req["X-Troupe-Timestamp"]);
  ASSERT_FALSE(timestamp.empty());
  const auto sent =
      std::chrono::system_clock::time_point(std::chrono::seconds(std::stoll(timestamp)));
  EXPECT_LT(std::chrono::abs(std::chrono::system_clock::now() - sent), 60s);
  EXPECT_EQ(req["X-Troupe-Signature"], expected_signature("s3cret", timestamp, req.body()));
  EXPECT_NE(req["X-Troupe-Signature"], expected_signature("other", timestamp, req.body()));
}

TEST_F(HttpHandlerTest, UnsignedWithoutASecret) {
  TestHttpServer server(io_, [](const auto&) { return Reply{200, "ok"}; });
  auto h = make(server.url());
  ASSERT_EQ(run(*h, "x").result.failure, FailureClass::kNone);
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].count("X-Troupe-Signature"), 0u);
  EXPECT_EQ(server.requests()[0].count("X-Troupe-Timestamp"), 0u);
}

// ------------------------------------------------------------ redirects

TEST_F(HttpHandlerTest, RedirectIsNotFollowedByDefaultAndTheErrorNamesTheLocation) {
  TestHttpServer server(io_, [](const auto&) {
    return Reply{302, "", {{"Location", "/elsewhere"}}};
  });
  auto h = make(server.url("/jobs"));
  const Outcome out = run(*h, "x");
  EXPECT_EQ(out.result.failure, FailureClass::kPermanent);
  EXPECT_THAT(out.result.output, HasSubstr("-> 302 Found: redirect to /elsewhere not followed"));
  EXPECT_THAT(out.result.output, HasSubstr("follow_redirects"));
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST_F(HttpHandlerTest, FollowRedirectsResendsTheSignedRequestOnTheSameHost) {
  TestHttpServer server(io_, [](const auto& req) {
    if (req.target() == "/old") return Reply{308, "", {{"Location", "/new?x=1"}}};
    return Reply{200, "at " + std::string(req.target()) + ": " + req.body()};
  });
  HttpHandlerOptions o;
  o.follow_redirects = true;
  o.signing_secret = "k";
  auto h = make(server.url("/old"), o);
  const Outcome out = run(*h, "payload");
  ASSERT_EQ(out.result.failure, FailureClass::kNone) << out.result.output;
  EXPECT_EQ(out.result.output, "at /new?x=1: payload");
  ASSERT_EQ(server.requests().size(), 2u);
  const auto& second = server.requests()[1];
  EXPECT_EQ(second.method_string(), "POST");
  EXPECT_EQ(second["X-Troupe-Signature"],
            expected_signature("k", std::string(second["X-Troupe-Timestamp"]), "payload"));
  // The kept connection still serves the configured url.
  EXPECT_EQ(run(*h, "again").result.output, "at /new?x=1: again");
}

TEST_F(HttpHandlerTest, SeeOtherFetchesTheAnswerWithGet) {
  TestHttpServer server(io_, [](const auto& req) {
    if (req.target() == "/submit") return Reply{303, "", {{"Location", "/result"}}};
    return Reply{200, std::string(req.method_string()) + " body=" + req.body()};
  });
  HttpHandlerOptions o;
  o.follow_redirects = true;
  auto h = make(server.url("/submit"), o);
  EXPECT_EQ(run(*h, "payload").result.output, "GET body=");
}

TEST_F(HttpHandlerTest, RedirectToAnotherHostOrTooManyAreRefused) {
  TestHttpServer server(io_, [](const auto& req) {
    if (req.target() == "/away") return Reply{307, "", {{"Location", "http://example.invalid/x"}}};
    return Reply{307, "", {{"Location", "/loop"}}};
  });
  HttpHandlerOptions o;
  o.follow_redirects = true;
  auto away = make(server.url("/away"), o);
  Outcome out = run(*away, "x");
  EXPECT_EQ(out.result.failure, FailureClass::kPermanent);
  EXPECT_THAT(out.result.output, HasSubstr("redirect to http://example.invalid/x not followed: "
                                           "another host"));
  auto loop = make(server.url("/loop"), o);
  const std::size_t before = server.requests().size();
  out = run(*loop, "x");
  EXPECT_EQ(out.result.failure, FailureClass::kPermanent);
  EXPECT_THAT(out.result.output, HasSubstr("not followed: 5 redirects already"));
  EXPECT_EQ(server.requests().size() - before, 6u);
}

}  // namespace
}  // namespace troupe::core
