// Who may do what, against the real trouped: listeners off loopback, TLS and
// mTLS with certificates made by openssl at test time, bearer tokens and
// per-troupe permissions.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include "grpc/health/v1/health.grpc.pb.h"
#include "support/certificates.h"
#include "support/test_config.h"
#include "support/trouped_process.h"
#include "tests/support/run_process.h"
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

// ------------------------------------------------------- tokens, permissions

constexpr const char* kCiToken = "ci-token-5f1c7a";
constexpr const char* kOpsToken = "ops-token-93bd0e";

/// sha256(token) in hex, made by `trouped hash-token` as an operator would.
std::string hash_token(const std::string& token) {
  const ProcessResult result =
      run_process({.argv = {trouped_binary(), "hash-token"}, .stdin_text = token + "\n"});
  EXPECT_EQ(result.exit_code, 0) << result;
  return result.out.substr(0, result.out.find('\n'));
}

/// ci: submit and read on "batch-*", read on "shared"; ops: everything.
std::string auth_yaml(const std::string& ci_line) {
  return "auth:\n  identities:\n    - name: ci\n      " + ci_line +
         "\n      permissions:\n        \"batch-*\": [submit, read]\n        shared: [read]\n"
         "    - name: ops\n      token_sha256: " +
         hash_token(kOpsToken) + "\n      permissions: {\"*\": [\"*\"]}\n";
}

class SecurityAuth : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerSpec server;
    server.sections = auth_yaml("token_sha256: " + hash_token(kCiToken));
    trouped_ = start_trouped(
        {.config_yaml = config_yaml(
             server, {TroupeSpec{.name = "batch-a"}, TroupeSpec{.name = "shared"},
                      TroupeSpec{.name = "private", .builtin = "sleep", .sleep = "60s"}})});
    ASSERT_TRUE(trouped_);
  }

  std::uint64_t submitted(const std::string& troupe) {
    auto stub = v1::AdminService::NewStub(trouped_->channel());
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", std::string("Bearer ") + kOpsToken);
    v1::GetTroupeRequest request;
    request.set_name(troupe);
    v1::Troupe out;
    EXPECT_TRUE(stub->GetTroupe(&ctx, request, &out).ok());
    return out.counters().submitted();
  }

  std::unique_ptr<TroupedProcess> trouped_;
};

TEST_F(SecurityAuth, ATokenWithoutSubmitOnATroupeIsDeniedAndNoJobIsCreated) {
  const auto denied = submit(trouped_->channel(), "shared", kCiToken);
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(denied.error_message(), "identity \"ci\" lacks submit on troupe \"shared\"");
  EXPECT_EQ(submitted("shared"), 0u);

  EXPECT_TRUE(submit(trouped_->channel(), "batch-a", kCiToken).ok());
  EXPECT_EQ(submitted("batch-a"), 1u);
}

TEST_F(SecurityAuth, AWrongOrMissingTokenIsUnauthenticatedWithoutNamingIdentities) {
  const auto wrong = submit(trouped_->channel(), "batch-a", "not-a-token");
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(wrong.error_message(), "the bearer token matches no identity");
  const auto none = submit(trouped_->channel(), "batch-a");
  EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(none.error_message().find("no credentials"), std::string::npos);
  EXPECT_EQ(submitted("batch-a"), 0u);

  // Counted by reason, logged without the token.
  const auto scrape = http_get(trouped_->metrics_address(), "/metrics");
  EXPECT_EQ(metric_value(scrape.body,
                         "troupe_auth_denied_total{method=\"Submit\",reason=\"unauthenticated\"}"),
            2.0)
      << scrape.body;
  EXPECT_TRUE(trouped_->wait_for_log(std::regex("denied Submit from .*UNAUTHENTICATED")));
  EXPECT_EQ(trouped_->log().find("not-a-token"), std::string::npos);
}

TEST_F(SecurityAuth, ReadAndCancelOfAJobOfAnotherTroupeAreDenied) {
  v1::SubmitResponse accepted;
  ASSERT_TRUE(submit(trouped_->channel(), "private", kOpsToken, &accepted).ok());
  auto stub = v1::JobService::NewStub(trouped_->channel());
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", std::string("Bearer ") + kCiToken);
    v1::GetJobRequest request;
    request.set_job_id(accepted.job_id());
    v1::Job job;
    const auto status = stub->GetJob(&ctx, request, &job);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_EQ(status.error_message(), "identity \"ci\" lacks read on troupe \"private\"");
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", std::string("Bearer ") + kCiToken);
    v1::WatchJobRequest request;
    request.set_job_id(accepted.job_id());
    auto reader = stub->WatchJob(&ctx, request);
    v1::Job job;
    EXPECT_FALSE(reader->Read(&job));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", std::string("Bearer ") + kCiToken);
    v1::CancelJobRequest request;
    request.set_job_id(accepted.job_id());
    v1::CancelJobResponse response;
    const auto status = stub->CancelJob(&ctx, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_EQ(status.error_message(), "identity \"ci\" lacks cancel on troupe \"private\"");
  }
  // Still running: the denied cancel did nothing; ops may cancel it.
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", std::string("Bearer ") + kOpsToken);
  v1::CancelJobRequest request;
  request.set_job_id(accepted.job_id());
  v1::CancelJobResponse response;
  ASSERT_TRUE(stub->CancelJob(&ctx, request, &response).ok());
  EXPECT_TRUE(response.cancelled());
}

TEST_F(SecurityAuth, StreamedSubmitsAreCheckedOneByOne) {
  auto stub = v1::JobService::NewStub(trouped_->channel());
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", std::string("Bearer ") + kCiToken);
  auto stream = stub->SubmitStream(&ctx);
  v1::StreamSubmitAck ack;
  v1::StreamSubmitRequest in;
  in.set_correlation_id(1);
  in.mutable_request()->set_troupe("shared");
  ASSERT_TRUE(stream->Write(in) && stream->Read(&ack));
  EXPECT_EQ(ack.code(), static_cast<int>(grpc::StatusCode::PERMISSION_DENIED));
  EXPECT_TRUE(ack.job_id().empty());
  in.set_correlation_id(2);
  in.mutable_request()->set_troupe("batch-a");
  ASSERT_TRUE(stream->Write(in) && stream->Read(&ack));
  EXPECT_EQ(ack.code(), 0);
  EXPECT_FALSE(ack.job_id().empty());
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());

  grpc::ClientContext anonymous;
  auto refused = stub->SubmitStream(&anonymous);
  EXPECT_FALSE(refused->Read(&ack));
  EXPECT_EQ(refused->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

// Every call checks who calls first (UNAUTHENTICATED), then what it names
// (INVALID_ARGUMENT), then the permission on it (PERMISSION_DENIED), then the
// rest of the request (docs/api.md, "Order of checks").
TEST_F(SecurityAuth, ChecksRunInOneOrderOnEveryCall) {
  auto admin = v1::AdminService::NewStub(trouped_->channel());
  const auto get_troupe = [&](const std::string& name, const std::string& token) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    v1::GetTroupeRequest request;
    request.set_name(name);
    v1::Troupe out;
    return admin->GetTroupe(&ctx, request, &out);
  };
  const auto dead_jobs = [&](const std::string& troupe, std::uint32_t limit,
                             const std::string& token) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    v1::ListDeadJobsRequest request;
    request.set_troupe(troupe);
    request.set_limit(limit);
    v1::ListDeadJobsResponse out;
    return admin->ListDeadJobs(&ctx, request, &out);
  };
  // No credentials: nothing about the request is looked at.
  EXPECT_EQ(get_troupe("", "").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(dead_jobs("", 0, "").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(dead_jobs("shared", 20000, "").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(submit(trouped_->channel(), "").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // Authenticated: an empty name is INVALID_ARGUMENT whatever the identity
  // may do (ci has no admin at all, and submit only on batch-*).
  const auto no_name = get_troupe("", kCiToken);
  EXPECT_EQ(no_name.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << no_name.error_message();
  EXPECT_EQ(dead_jobs("", 0, kCiToken).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  const auto no_troupe = submit(trouped_->channel(), "", kCiToken);
  EXPECT_EQ(no_troupe.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << no_troupe.error_message();
  // Then the permission, before the rest of the request.
  EXPECT_EQ(get_troupe("shared", kCiToken).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(dead_jobs("private", 20000, kCiToken).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(dead_jobs("shared", 20000, kCiToken).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(dead_jobs("shared", 0, kCiToken).ok());

  auto jobs = v1::JobService::NewStub(trouped_->channel());
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", std::string("Bearer ") + kCiToken);
  auto stream = jobs->SubmitStream(&ctx);
  v1::StreamSubmitRequest in;
  in.set_correlation_id(1);
  v1::StreamSubmitAck ack;
  ASSERT_TRUE(stream->Write(in) && stream->Read(&ack));
  EXPECT_EQ(ack.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT)) << ack.message();
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(SecurityAuth, AdminListsOnlyAdministeredTroupesAndHealthNeedsNoToken) {
  auto admin = v1::AdminService::NewStub(trouped_->channel());
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", std::string("Bearer ") + kCiToken);
  v1::ListTroupesResponse list;
  const auto status = admin->ListTroupes(&ctx, {}, &list);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(status.error_message(), "identity \"ci\" lacks admin on every troupe");
  // GetCluster too, before it says the store is not a cluster's.
  grpc::ClientContext cluster_ctx;
  cluster_ctx.AddMetadata("authorization", std::string("Bearer ") + kCiToken);
  v1::GetClusterResponse cluster;
  const auto cluster_status = admin->GetCluster(&cluster_ctx, {}, &cluster);
  EXPECT_EQ(cluster_status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(cluster_status.error_message(), "identity \"ci\" lacks admin on every troupe");

  auto health = grpc::health::v1::Health::NewStub(trouped_->channel());
  grpc::ClientContext health_ctx;
  grpc::health::v1::HealthCheckResponse serving;
  ASSERT_TRUE(health->Check(&health_ctx, {}, &serving).ok());
  EXPECT_EQ(serving.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(SecurityAuth, ReloadReplacesTheIdentities) {
  ASSERT_TRUE(submit(trouped_->channel(), "batch-a", kCiToken).ok());
  ServerSpec server;
  server.sections = auth_yaml("token_sha256: " + hash_token("rotated-ci-token"));
  trouped_->write_config(
      config_yaml(server, {TroupeSpec{.name = "batch-a"}, TroupeSpec{.name = "shared"},
                           TroupeSpec{.name = "private", .builtin = "sleep", .sleep = "60s"}}));
  trouped_->send_signal(SIGHUP);
  ASSERT_TRUE(trouped_->wait_for_log(std::regex("reload: auth now has 2 identities")));
  EXPECT_EQ(submit(trouped_->channel(), "batch-a", kCiToken).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(submit(trouped_->channel(), "batch-a", "rotated-ci-token").ok());
}

// server.insecure with a gRPC port that has TLS and tokens anyway (the
// Kubernetes manifests: only /metrics needs the switch): the INSECURE warning
// names /metrics only. Without TLS it names the gRPC port too.
TEST(SecurityListeners, InsecureWarnsOnlyAboutTheListenersLeftOpen) {
  CertDir dir;
  const TestCa ca(dir.path, "ca");
  ServerSpec server;
  server.grpc_address = "0.0.0.0:0";
  server.metrics_address = "0.0.0.0:0";
  server.extra = tls_yaml(ca.issue_server("trouped"), nullptr) + "  insecure: true\n";
  server.sections = auth_yaml("token_sha256: " + hash_token(kCiToken));
  const std::string grpc_warning = "INSECURE (server.insecure: true): gRPC on 0.0.0.0:0";
  const std::string metrics_warning = "INSECURE (server.insecure: true): /metrics on 0.0.0.0:0";
  {
    auto trouped = start_trouped({.config_yaml = config_yaml(server, {TroupeSpec{}})});
    ASSERT_TRUE(trouped);
    EXPECT_NE(trouped->log().find(metrics_warning), std::string::npos) << trouped->log();
    EXPECT_EQ(trouped->log().find(grpc_warning), std::string::npos) << trouped->log();
  }
  server.extra = "  insecure: true\n";
  auto plain = start_trouped({.config_yaml = config_yaml(server, {TroupeSpec{}})});
  ASSERT_TRUE(plain);
  EXPECT_NE(plain->log().find(grpc_warning), std::string::npos) << plain->log();
  EXPECT_NE(plain->log().find(metrics_warning), std::string::npos) << plain->log();
}

TEST(SecurityMtls, AClientCertificateSubjectNamesAnIdentityAndATokenFileAnother) {
  CertDir dir;
  const TestCa ca(dir.path, "ca");
  const auto server_files = ca.issue_server("trouped");
  const auto ci_cert = ca.issue_client("ci");
  const auto stranger_cert = ca.issue_client("stranger");
  const auto token_file = dir.path / "ops.token";
  std::ofstream(token_file) << kOpsToken << "\n";
  ServerSpec server;
  const auto ca_path = ca.cert();
  server.extra = tls_yaml(server_files, &ca_path);
  server.sections =
      "auth:\n  identities:\n    - name: ci\n      certificate_subject: \"O=troupe-test,CN=ci\"\n"
      "      permissions: {\"batch-*\": [submit]}\n"
      "    - name: ops\n      token_file: " +
      token_file.string() + "\n      permissions: {\"*\": [\"*\"]}\n";
  auto trouped = start_trouped({.config_yaml = config_yaml(server, {TroupeSpec{.name = "batch-a"},
                                                                    TroupeSpec{.name = "other"}})});
  ASSERT_TRUE(trouped);

  auto ci = secure_channel(*trouped, tls_credentials(ca.cert(), &ci_cert));
  EXPECT_TRUE(submit(ci, "batch-a").ok());
  const auto denied = submit(ci, "other");
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(denied.error_message(), "identity \"ci\" lacks submit on troupe \"other\"");

  auto stranger = secure_channel(*trouped, tls_credentials(ca.cert(), &stranger_cert));
  const auto unknown = submit(stranger, "batch-a");
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(unknown.error_message().find("\"O=troupe-test,CN=stranger\" names no identity"),
            std::string::npos)
      << unknown.error_message();
  // A token wins over the certificate.
  EXPECT_TRUE(submit(stranger, "other", kOpsToken).ok());
}

// ------------------------------------------------------------ the tools

TEST(SecurityTools, TroupectlAndTroupeBenchSpeakTlsWithAClientCertificateAndAToken) {
  CertDir dir;
  const TestCa ca(dir.path, "ca");
  const auto server_files = ca.issue_server("trouped");
  const auto client = ca.issue_client("bench");
  const auto token_file = dir.path / "ops.token";
  std::ofstream(token_file) << kOpsToken << "\n";
  ServerSpec server;
  const auto ca_path = ca.cert();
  server.extra = tls_yaml(server_files, &ca_path);
  server.sections =
      "auth:\n  identities:\n    - name: ops\n      token_sha256: " + hash_token(kOpsToken) +
      "\n      permissions: {\"*\": [\"*\"]}\n";
  auto trouped = start_trouped({.config_yaml = config_yaml(server, {TroupeSpec{.name = "echo"}})});
  ASSERT_TRUE(trouped);
  const std::vector<std::string> tls = {
      "--address", trouped->grpc_address(), "--ca",       ca.cert().string(),
      "--cert",    client.cert.string(),    "--cert-key", client.key.string()};
  auto troupectl = [&](std::vector<std::string> args, std::map<std::string, std::string> env) {
    std::vector<std::string> argv = {TROUPECTL_PATH};
    argv.insert(argv.end(), tls.begin(), tls.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process({.argv = argv, .env = std::move(env)});
  };

  const auto listed = troupectl({"--token-file", token_file.string(), "troupes"}, {});
  EXPECT_EQ(listed.exit_code, 0) << listed;
  EXPECT_NE(listed.out.find("echo"), std::string::npos) << listed.out;
  const auto from_env =
      troupectl({"submit", "echo", "--payload", "hi", "--wait"}, {{"TROUPE_TOKEN", kOpsToken}});
  EXPECT_EQ(from_env.exit_code, 0) << from_env;
  const auto without = troupectl({"troupes"}, {{"TROUPE_TOKEN", ""}});
  EXPECT_EQ(without.exit_code, 5) << without;
  EXPECT_NE(without.err.find("UNAUTHENTICATED"), std::string::npos) << without.err;
  EXPECT_NE(without.err.find("--token-file or TROUPE_TOKEN"), std::string::npos) << without.err;

  std::vector<std::string> bench = {TROUPE_BENCH_PATH,   "--troupe", "echo",
                                    "--count",           "200",      "--token-file",
                                    token_file.string(), "--output", "json"};
  bench.insert(bench.end(), tls.begin(), tls.end());
  const auto run = run_process({.argv = bench});
  EXPECT_EQ(run.exit_code, 0) << run;
  EXPECT_NE(run.out.find("\"ok\":200,"), std::string::npos) << run.out;
}

// ------------------------------------------------------------- /metrics

/// `up` of scrape job `job` in Prometheus at `address`: "1", "0", or empty
/// while it has not scraped yet.
std::string prometheus_up(const std::string& address, const std::string& job) {
  const auto reply = http_get(address, "/api/v1/query?query=up%7Bjob%3D%22" + job + "%22%7D");
  std::smatch match;
  if (!std::regex_search(reply.body, match, std::regex(R"re("value":\[[0-9.]+,"([01])"\])re"))) {
    return "";
  }
  return match[1];
}

TEST(SecurityMetrics, BasicAuthOnMetricsIsScrapedByTheRealPrometheus) {
  CertDir dir;
  const auto password_file = dir.path / "metrics.password";
  std::ofstream(password_file) << "scrape-secret-81c2\n";
  ServerSpec server;
  server.extra =
      "  metrics_auth:\n    username: prometheus\n    password_file: " + password_file.string() +
      "\n";
  auto trouped = start_trouped({.config_yaml = config_yaml(server, {TroupeSpec{}})});
  ASSERT_TRUE(trouped);
  EXPECT_EQ(http_get(trouped->metrics_address(), "/metrics").status, 401);

  int port = 0;
  const int held = listen_on_free_port(port);
  ASSERT_GE(held, 0);
  ::close(held);  // Prometheus takes it over; a test-local race at worst
  const std::string prometheus_address = "127.0.0.1:" + std::to_string(port);
  std::ofstream(dir.path / "prometheus.yml")
      << "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
      << "scrape_configs:\n"
      << "  - job_name: trouped\n"
      << "    basic_auth: {username: prometheus, password_file: " << password_file.string() << "}\n"
      << "    static_configs: [{targets: [\"" << trouped->metrics_address() << "\"]}]\n"
      << "  - job_name: wrong-password\n"
      << "    basic_auth: {username: prometheus, password: guess}\n"
      << "    static_configs: [{targets: [\"" << trouped->metrics_address() << "\"]}]\n";
  TroupedProcess prometheus(CommandOptions{
      .argv = {"prometheus", "--config.file=" + (dir.path / "prometheus.yml").string(),
               "--storage.tsdb.path=" + (dir.path / "tsdb").string(),
               "--web.listen-address=" + prometheus_address}});
  ASSERT_TRUE(prometheus.wait_for_log(std::regex("Server is ready to receive web requests"), 60s))
      << prometheus.log();
  // Each probe is one query; Prometheus scrapes once a second.
  std::string up;
  std::string wrong;
  const auto until = std::chrono::steady_clock::now() + 60s;
  while ((up.empty() || wrong.empty()) && std::chrono::steady_clock::now() < until) {
    if (up.empty()) up = prometheus_up(prometheus_address, "trouped");
    if (wrong.empty()) wrong = prometheus_up(prometheus_address, "wrong-password");
  }
  EXPECT_EQ(up, "1") << prometheus.log();
  EXPECT_EQ(wrong, "0") << prometheus.log();
}

}  // namespace
}  // namespace troupe::test
