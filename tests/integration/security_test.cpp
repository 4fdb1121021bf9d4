// Who may do what, against the real trouped: listeners off loopback, TLS and
// mTLS with certificates made by openssl at test time, bearer tokens and
// per-troupe permissions.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <regex>

#include "support/certificates.h"
#include "support/test_config.h"
#include "support/trouped_process.h"
#include "troupe/v1/troupe.grpc.pb.h"

namespace troupe::test {
namespace {

TEST(SecurityListeners, OffLoopbackWithoutTlsIsRefusedAtStartWithAClearMessage) {
  ServerSpec server;
  server.grpc_address = "0.0.0.0:0";
  TroupedProcess trouped({.config_yaml = config_yaml(server, {TroupeSpec{}})});
  const auto code = trouped.wait_exit();
  ASSERT_TRUE(code.has_value()) << trouped.log();
  EXPECT_NE(*code, 0);
  EXPECT_NE(trouped.log().find("server.grpc_address: 0.0.0.0:0 is reachable from other machines, "
                               "and without TLS and authentication"),
            std::string::npos)
      << trouped.log();
  EXPECT_EQ(trouped.log().find("ready, serving"), std::string::npos) << trouped.log();
}

// ------------------------------------------------------------------ TLS

std::shared_ptr<grpc::Channel> secure_channel(
    const TroupedProcess& p, const std::shared_ptr<grpc::ChannelCredentials>& creds) {
  grpc::ChannelArguments args;
  // Each channel its own connection: a handshake per channel.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(p.grpc_address(), creds, args);
}

grpc::Status submit(const std::shared_ptr<grpc::Channel>& channel, const std::string& troupe,
                    const std::string& token = "", v1::SubmitResponse* out = nullptr) {
  auto stub = v1::JobService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  v1::SubmitRequest request;
  request.set_troupe(troupe);
  request.set_payload("hello");
  v1::SubmitResponse response;
  auto status = stub->Submit(&ctx, request, &response);
  if (out != nullptr) *out = response;
  return status;
}

/// A temporary directory for certificates, removed at the end of the test.
struct CertDir {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("troupe-certs-" + std::to_string(::getpid()) + "-" +
                                ::testing::UnitTest::GetInstance()->current_test_info()->name());
  CertDir() { std::filesystem::create_directories(path); }
  ~CertDir() { std::filesystem::remove_all(path); }
};

std::string tls_yaml(const CertificateFiles& server, const std::filesystem::path* client_ca,
                     const std::string& refresh = "10s") {
  std::string y = "  tls:\n    cert_file: " + server.cert.string() +
                  "\n    key_file: " + server.key.string() + "\n    refresh_interval: " + refresh +
                  "\n";
  if (client_ca != nullptr) y += "    client_ca_file: " + client_ca->string() + "\n";
  return y;
}

TEST(SecurityTls, TlsIsRequiredAndWorks) {
  CertDir dir;
  const TestCa ca(dir.path, "ca");
  const auto server_files = ca.issue_server("trouped");
  ServerSpec server;
  server.extra = tls_yaml(server_files, nullptr);
  auto trouped = start_trouped({.config_yaml = config_yaml(server, {TroupeSpec{}})});
  ASSERT_TRUE(trouped);

  v1::SubmitResponse accepted;
  const auto ok =
      submit(secure_channel(*trouped, tls_credentials(ca.cert())), "default", "", &accepted);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_FALSE(accepted.job_id().empty());

  const auto plaintext = submit(trouped->channel(), "default");
  EXPECT_EQ(plaintext.error_code(), grpc::StatusCode::UNAVAILABLE) << plaintext.error_message();

  const TestCa other(dir.path, "other-ca");
  const auto untrusted = submit(secure_channel(*trouped, tls_credentials(other.cert())), "default");
  EXPECT_EQ(untrusted.error_code(), grpc::StatusCode::UNAVAILABLE) << untrusted.error_message();
}

TEST(SecurityTls, MutualTlsRejectsClientsWithoutACertificateOrWithOneFromAnotherCa) {
  CertDir dir;
  const TestCa ca(dir.path, "ca");
  const auto server_files = ca.issue_server("trouped");
  const auto client = ca.issue_client("ci");
  const TestCa other(dir.path, "other-ca");
  const auto stranger = other.issue_client("ci");
  ServerSpec server;
  const auto ca_path = ca.cert();
  server.extra = tls_yaml(server_files, &ca_path);
  auto trouped = start_trouped({.config_yaml = config_yaml(server, {TroupeSpec{}})});
  ASSERT_TRUE(trouped);

  const auto with_cert =
      submit(secure_channel(*trouped, tls_credentials(ca.cert(), &client)), "default");
  EXPECT_TRUE(with_cert.ok()) << with_cert.error_message();
  const auto without = submit(secure_channel(*trouped, tls_credentials(ca.cert())), "default");
  EXPECT_EQ(without.error_code(), grpc::StatusCode::UNAVAILABLE) << without.error_message();
  const auto other_ca =
      submit(secure_channel(*trouped, tls_credentials(ca.cert(), &stranger)), "default");
  EXPECT_EQ(other_ca.error_code(), grpc::StatusCode::UNAVAILABLE) << other_ca.error_message();
}

TEST(SecurityTls, AKeyThatIsNotTheCertificatesIsRefusedAtStart) {
  CertDir dir;
  const TestCa ca(dir.path, "ca");
  const auto first = ca.issue_server("first");
  const auto second = ca.issue_server("second");
  ServerSpec server;
  server.extra = tls_yaml({first.cert, second.key}, nullptr);
  TroupedProcess trouped({.config_yaml = config_yaml(server, {TroupeSpec{}})});
  const auto code = trouped.wait_exit();
  ASSERT_TRUE(code.has_value());
  EXPECT_NE(*code, 0);
  EXPECT_NE(
      trouped.log().find("server.tls.key_file: " + second.key.string() + " does not go with " +
                         first.cert.string() + ": the private key is not the certificate's"),
      std::string::npos)
      << trouped.log();
}

/// Replaces `to`'s files with `from`'s, each by an atomic rename.
void install(const CertificateFiles& from, const CertificateFiles& to) {
  std::filesystem::copy_file(from.key, to.key.string() + ".new");
  std::filesystem::copy_file(from.cert, to.cert.string() + ".new");
  std::filesystem::rename(to.key.string() + ".new", to.key);
  std::filesystem::rename(to.cert.string() + ".new", to.cert);
}

TEST(SecurityTls, RotatedCertificatesServeNewConnectionsWhileOpenStreamsGoOn) {
  CertDir dir;
  const TestCa old_ca(dir.path, "old-ca");
  const TestCa new_ca(dir.path, "new-ca");
  const auto old_files = old_ca.issue_server("trouped-old");
  const auto new_files = new_ca.issue_server("trouped-new");
  const CertificateFiles live{dir.path / "live.crt", dir.path / "live.key"};
  std::filesystem::copy_file(old_files.cert, live.cert);
  std::filesystem::copy_file(old_files.key, live.key);
  ServerSpec server;
  server.extra = tls_yaml(live, nullptr, "1s");
  auto trouped = start_trouped({.config_yaml = config_yaml(server, {TroupeSpec{}})});
  ASSERT_TRUE(trouped);

  // A stream opened under the old certificate.
  auto old_channel = secure_channel(*trouped, tls_credentials(old_ca.cert()));
  auto stub = v1::JobService::NewStub(old_channel);
  grpc::ClientContext stream_ctx;
  auto stream = stub->SubmitStream(&stream_ctx);
  auto round_trip = [&](std::uint64_t id) {
    v1::StreamSubmitRequest in;
    in.set_correlation_id(id);
    in.mutable_request()->set_troupe("default");
    v1::StreamSubmitAck ack;
    return stream->Write(in) && stream->Read(&ack) && ack.correlation_id() == id &&
           !ack.job_id().empty();
  };
  ASSERT_TRUE(round_trip(1));

  install(new_files, live);
  trouped->send_signal(SIGHUP);
  ASSERT_TRUE(trouped->wait_for_log(std::regex("hold a matching certificate and key")))
      << trouped->log();
  // gRPC's watcher installs the new pair within refresh_interval (1s); each
  // probe is a fresh connection that trusts only the new CA.
  bool rotated = false;
  const auto until = std::chrono::steady_clock::now() + 30s;
  while (!rotated && std::chrono::steady_clock::now() < until) {
    rotated = submit(secure_channel(*trouped, tls_credentials(new_ca.cert())), "default").ok();
  }
  EXPECT_TRUE(rotated) << trouped->log();
  EXPECT_TRUE(round_trip(2)) << "the stream opened before the rotation broke";
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

}  // namespace
}  // namespace troupe::test
