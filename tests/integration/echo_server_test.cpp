// tests/bench/echo_server, the bare gRPC baseline, in both server styles:
// Echo returns the payload, EchoStream answers every request in order, and
// the server stops cleanly on SIGTERM (also with a stream still open) and by
// itself after --max-lifetime.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "support/echo_server_process.h"
#include "troupe/bench/v1/echo.grpc.pb.h"

namespace troupe::test {
namespace {

namespace echo = ::troupe::bench::v1;

std::chrono::system_clock::time_point in(std::chrono::seconds s) {
  return std::chrono::system_clock::now() + s;
}

class EchoServerStyle : public ::testing::TestWithParam<std::string> {};

TEST_P(EchoServerStyle, EchoReturnsThePayloadAndCorrelationId) {
  const auto server = start_echo_server(GetParam());
  ASSERT_NE(server, nullptr);
  auto stub = echo::EchoService::NewStub(server->channel());
  for (const std::string& payload : {std::string("hello"), std::string(64 << 10, 'z'),
                                     std::string("\0binary\xff", 8), std::string()}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(in(std::chrono::seconds(10)));
    echo::EchoRequest request;
    request.set_payload(payload);
    request.set_correlation_id(payload.size() + 7);
    echo::EchoReply reply;
    const grpc::Status status = stub->Echo(&ctx, request, &reply);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(reply.payload(), payload);
    EXPECT_EQ(reply.correlation_id(), payload.size() + 7);
  }
}

TEST_P(EchoServerStyle, EchoStreamRepliesInOrderWithCorrelationIds) {
  const auto server = start_echo_server(GetParam());
  ASSERT_NE(server, nullptr);
  auto stub = echo::EchoService::NewStub(server->channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(in(std::chrono::seconds(30)));
  auto stream = stub->EchoStream(&ctx);
  echo::EchoRequest request;
  echo::EchoReply reply;
  std::uint64_t next_reply = 0;
  auto expect_reply = [&] {
    ASSERT_TRUE(stream->Read(&reply));
    EXPECT_EQ(reply.correlation_id(), next_reply);
    EXPECT_EQ(reply.payload(), "p" + std::to_string(next_reply));
    ++next_reply;
  };
  auto send = [&](std::uint64_t id) {
    request.set_correlation_id(id);
    request.set_payload("p" + std::to_string(id));
    ASSERT_TRUE(stream->Write(request));
  };
  // Ping-pong first, then 150 requests ahead of their replies (more than the
  // server's 64-reply queue, so it pauses and resumes reading).
  std::uint64_t id = 0;
  for (; id < 20; ++id) {
    send(id);
    expect_reply();
  }
  for (; id < 170; ++id) send(id);
  ASSERT_TRUE(stream->WritesDone());
  while (next_reply < id) {
    expect_reply();
    if (HasFailure()) break;
  }
  EXPECT_FALSE(stream->Read(&reply)) << "a reply more than the requests";
  const grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_P(EchoServerStyle, TroupeBenchDrivesBothModesWithoutErrors) {
  const auto server = start_echo_server(GetParam());
  ASSERT_NE(server, nullptr);
  for (const char* mode : {"echo", "echo-stream"}) {
    // echo-stream counts an out-of-order reply as DATA_LOSS: ok == count means
    // every one of the 4 concurrent streams answered in order.
    const std::string cmd = std::string(TROUPE_BENCH_PATH) + " --address " + server->address +
                            " --mode " + mode +
                            " --count 2000 --concurrency 16 --streams 4 --window 64"
                            " --payload-size 64 --output json";
    FILE* pipe = ::popen(cmd.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    std::string out;
    char buf[4096];
    while (std::fgets(buf, sizeof buf, pipe) != nullptr) out += buf;
    const int status = ::pclose(pipe);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << mode << ": " << out;
    EXPECT_NE(out.find("\"requests\":2000,\"ok\":2000,"), std::string::npos) << mode << ": " << out;
  }
}

TEST_P(EchoServerStyle, StopsCleanlyOnSigtermWithAStreamOpen) {
  const auto server = start_echo_server(GetParam());
  ASSERT_NE(server, nullptr);
  auto stub = echo::EchoService::NewStub(server->channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(in(std::chrono::seconds(30)));
  auto stream = stub->EchoStream(&ctx);
  echo::EchoRequest request;
  request.set_correlation_id(1);
  echo::EchoReply reply;
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&reply));
  // The open stream is cancelled at the server's shutdown deadline (5s).
  server->process->send_signal(SIGTERM);
  EXPECT_EQ(server->process->wait_exit(std::chrono::seconds(20)), 0) << server->process->log();
  EXPECT_FALSE(stream->Read(&reply));
  EXPECT_FALSE(stream->Finish().ok());
}

TEST_P(EchoServerStyle, StopsByItselfAfterMaxLifetime) {
  const auto server = start_echo_server(GetParam(), {"--max-lifetime", "300ms"});
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(server->process->wait_exit(std::chrono::seconds(20)), 0) << server->process->log();
  EXPECT_NE(server->process->log().find("--max-lifetime reached"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Styles, EchoServerStyle, ::testing::Values("callback", "cq"),
                         [](const auto& param_info) { return param_info.param; });

TEST(EchoServer, RejectsBadArguments) {
  TroupedProcess process(CommandOptions{.argv = {echo_server_binary(), "--style", "threads"}});
  EXPECT_EQ(process.wait_exit(std::chrono::seconds(20)), 2);
  EXPECT_NE(process.log().find("usage: echo_server"), std::string::npos) << process.log();
}

}  // namespace
}  // namespace troupe::test
