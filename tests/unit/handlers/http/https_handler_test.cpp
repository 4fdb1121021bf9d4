// https through the http handler: a TLS server with a certificate made at
// test time (OpenSSL API; nothing from outside), trusted through ca_file.

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>

#include "core/runtime.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "handlers/http/http_handler.h"
#include "tests/unit/handlers/test_support.h"

namespace troupe::core {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

/// A self-signed P-256 certificate for CN=localhost with SANs localhost and
/// 127.0.0.1, valid for a day, as PEM strings.
struct SelfSigned {
  std::string cert_pem;
  std::string key_pem;
};

SelfSigned make_self_signed() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* san =
      X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
  X509_add_ext(cert, san, -1);
  X509_EXTENSION_free(san);
  X509_EXTENSION* bc = X509V3_EXT_conf_nid(nullptr, &v3, NID_basic_constraints, "critical,CA:TRUE");
  X509_add_ext(cert, bc, -1);
  X509_EXTENSION_free(bc);
  X509_sign(cert, key, EVP_sha256());

  auto to_pem = [](auto write) {
    BIO* bio = BIO_new(BIO_s_mem());
    write(bio);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(bio);
    return out;
  };
  SelfSigned out;
  out.cert_pem = to_pem([&](BIO* b) { PEM_write_bio_X509(b, cert); });
  out.key_pem = to_pem(
      [&](BIO* b) { PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr); });
  X509_free(cert);
  EVP_PKEY_free(key);
  return out;
}

/// Answers every request with 200 and "tls:" + body, keeping connections
/// alive; counts accepted connections. Single-threaded, on the test's io.
class TlsTestServer {
 public:
  TlsTestServer(asio::io_context& io, const SelfSigned& identity)
      : context_(ssl::context::tls_server),
        acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    context_.use_certificate_chain(asio::buffer(identity.cert_pem));
    context_.use_private_key(asio::buffer(identity.key_pem), ssl::context::pem);
    accept();
  }
  unsigned short port() const { return acceptor_.local_endpoint().port(); }
  int connections() const { return connections_; }
  int requests() const { return requests_; }
  void stop() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (auto& weak : sessions_) {
      if (auto s = weak.lock()) s->stream.next_layer().close(ignored);
    }
  }

 private:
  struct Session : std::enable_shared_from_this<Session> {
    Session(tcp::socket socket, ssl::context& ctx, TlsTestServer& server)
        : stream(std::move(socket), ctx), server(server) {}
    void start() {
      stream.async_handshake(ssl::stream_base::server,
                             [self = shared_from_this()](boost::system::error_code ec) {
                               if (!ec) self->read();
                             });
    }
    void read() {
      request = {};
      http::async_read(stream, buffer, request,
                       [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                         if (ec) return;
                         ++self->server.requests_;
                         auto res = std::make_shared<http::response<http::string_body>>(
                             http::status::ok, 11);
                         res->body() = "tls:" + self->request.body();
                         res->keep_alive(true);
                         res->prepare_payload();
                         http::async_write(self->stream, *res,
                                           [self, res](boost::system::error_code wec, std::size_t) {
                                             if (!wec) self->read();
                                           });
                       });
    }
    ssl::stream<tcp::socket> stream;
    TlsTestServer& server;
    boost::beast::flat_buffer buffer;
    http::request<http::string_body> request;
  };

  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
      if (ec) return;
      ++connections_;
      auto s = std::make_shared<Session>(std::move(socket), context_, *this);
      sessions_.push_back(s);
      s->start();
      accept();
    });
  }

  ssl::context context_;
  tcp::acceptor acceptor_;
  int connections_ = 0;
  int requests_ = 0;
  std::vector<std::weak_ptr<Session>> sessions_;
};

class HttpsHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    identity_ = make_self_signed();
    char tmpl[] = "/tmp/troupe-https-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ca_file_ = dir_ + "/ca.pem";
    std::FILE* f = std::fopen(ca_file_.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fwrite(identity_.cert_pem.data(), 1, identity_.cert_pem.size(), f);
    std::fclose(f);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  AttemptResult run(Handler& handler, const std::string& payload) {
    AttemptResult result;
    int calls = 0;
    const Metadata metadata;
    AttemptContext ctx{JobId{7}, "t", 1, payload, metadata, 10s, {}};
    handler.start(ctx, [&](AttemptResult r) {
      result = std::move(r);
      ++calls;
    });
    EXPECT_TRUE(testing::run_until(io_, [&] { return calls > 0; }));
    io_.restart();
    io_.poll();
    EXPECT_EQ(calls, 1);
    return result;
  }

  asio::io_context io_;
  asio::any_io_executor strand_ = asio::make_strand(io_);
  std::unique_ptr<Clock> clock_owner_ = make_steady_clock();
  Clock& clock_ = *clock_owner_;
  SelfSigned identity_;
  std::string dir_;
  std::string ca_file_;
};

TEST_F(HttpsHandlerTest, VerifiesTheServerByNameAndKeepsTheConnectionAlive) {
  TlsTestServer server(io_, identity_);
  HttpHandlerOptions o;
  o.url = "https://localhost:" + std::to_string(server.port()) + "/tls";
  o.ca_file = ca_file_;
  auto h = make_http_handler(o, strand_, clock_);
  for (int i = 0; i < 5; ++i) {
    const AttemptResult r = run(*h, "p" + std::to_string(i));
    ASSERT_EQ(r.failure, FailureClass::kNone) << r.output;
    EXPECT_EQ(r.output, "tls:p" + std::to_string(i));
  }
  EXPECT_EQ(server.requests(), 5);
  EXPECT_EQ(server.connections(), 1);
  server.stop();
}

TEST_F(HttpsHandlerTest, VerifiesAnIpAddressAgainstItsSan) {
  TlsTestServer server(io_, identity_);
  HttpHandlerOptions o;
  o.url = "https://127.0.0.1:" + std::to_string(server.port()) + "/";
  o.ca_file = ca_file_;
  auto h = make_http_handler(o, strand_, clock_);
  const AttemptResult r = run(*h, "ip");
  EXPECT_EQ(r.failure, FailureClass::kNone) << r.output;
  EXPECT_EQ(r.output, "tls:ip");
  server.stop();
}

TEST_F(HttpsHandlerTest, UntrustedCertificateFailsTheHandshake) {
  TlsTestServer server(io_, identity_);
  HttpHandlerOptions o;
  o.url = "https://localhost:" + std::to_string(server.port()) + "/";  // system trust store
  auto h = make_http_handler(o, strand_, clock_);
  const AttemptResult r = run(*h, "x");
  EXPECT_EQ(r.failure, FailureClass::kRetryable);
  EXPECT_THAT(r.output, HasSubstr("TLS handshake with localhost failed"));
  EXPECT_THAT(r.output, HasSubstr("certificate verify failed"));
  EXPECT_EQ(server.requests(), 0);
  server.stop();
}

TEST_F(HttpsHandlerTest, MissingCaFileFailsEveryAttemptPermanently) {
  HttpHandlerOptions o;
  o.url = "https://localhost:1/";
  o.ca_file = dir_ + "/missing.pem";
  auto h = make_http_handler(o, strand_, clock_);
  const AttemptResult r = run(*h, "x");
  EXPECT_EQ(r.failure, FailureClass::kPermanent);
  EXPECT_THAT(r.output, HasSubstr("cannot load TLS trust store"));
}

// A reload that changes nothing but ca_file must rebuild the handler: the old
// one holds the trust store it loaded at construction.
TEST_F(HttpsHandlerTest, AReloadChangingOnlyTheCaFileRebuildsTheTrustStore) {
  TlsTestServer server(io_, identity_);
  TroupeOptions t;
  t.name = "tls";
  t.mode = TroupeMode::kFixed;
  t.max_actors = 1;
  t.retry.max_attempts = 1;
  t.circuit_breaker.enabled = false;
  HttpHandlerOptions o;
  o.url = "https://localhost:" + std::to_string(server.port()) + "/";
  o.ca_file = dir_ + "/missing.pem";
  t.handler = o;
  auto runtime = make_runtime(io_, clock_, null_observer(), {});
  runtime->apply({t});

  auto run_job = [&] {
    std::optional<JobRecord> terminal;
    std::mutex mutex;
    JobRequest request;
    request.troupe = "tls";
    request.payload = "x";
    auto submitted = runtime->submit(std::move(request), [&](const JobRecord& r) {
      std::lock_guard lock(mutex);
      terminal = r;
    });
    EXPECT_TRUE(std::holds_alternative<Accepted>(submitted));
    EXPECT_TRUE(testing::run_until(io_, [&] {
      std::lock_guard lock(mutex);
      return terminal.has_value();
    }));
    std::lock_guard lock(mutex);
    return terminal.value_or(JobRecord{});
  };

  const JobRecord before = run_job();
  EXPECT_EQ(before.state, JobState::kFailed);
  EXPECT_THAT(before.error, HasSubstr("cannot load TLS trust store"));

  o.ca_file = ca_file_;
  t.handler = o;
  runtime->apply({t});
  const JobRecord after = run_job();
  EXPECT_EQ(after.state, JobState::kSucceeded) << after.error;
  EXPECT_EQ(after.result, "tls:x");
  runtime.reset();
  server.stop();
}

}  // namespace
}  // namespace troupe::core
