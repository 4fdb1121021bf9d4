#include "tools/common/exit_code.h"

#include <gtest/gtest.h>

namespace troupe::tools {
namespace {

TEST(ExitCodeFor, MapsStatusCodesToDocumentedExitCodes) {
  EXPECT_EQ(exit_code_for(grpc::StatusCode::OK), ExitCode::kOk);
  EXPECT_EQ(exit_code_for(grpc::StatusCode::INVALID_ARGUMENT), ExitCode::kUsage);
  EXPECT_EQ(exit_code_for(grpc::StatusCode::NOT_FOUND), ExitCode::kNotFound);
  EXPECT_EQ(exit_code_for(grpc::StatusCode::UNAVAILABLE), ExitCode::kUnavailable);
  EXPECT_EQ(exit_code_for(grpc::StatusCode::RESOURCE_EXHAUSTED), ExitCode::kUnavailable);
  EXPECT_EQ(exit_code_for(grpc::StatusCode::DEADLINE_EXCEEDED), ExitCode::kRpcError);
  EXPECT_EQ(exit_code_for(grpc::StatusCode::INTERNAL), ExitCode::kRpcError);
  EXPECT_EQ(static_cast<int>(ExitCode::kJobUnsuccessful), 1);
  EXPECT_EQ(static_cast<int>(ExitCode::kUsage), 2);
  EXPECT_EQ(static_cast<int>(ExitCode::kNotFound), 3);
  EXPECT_EQ(static_cast<int>(ExitCode::kUnavailable), 4);
  EXPECT_EQ(static_cast<int>(ExitCode::kRpcError), 5);
}

TEST(StatusCodeName, NamesKnownAndUnknownCodes) {
  EXPECT_EQ(status_code_name(grpc::StatusCode::RESOURCE_EXHAUSTED), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(status_code_name(static_cast<grpc::StatusCode>(42)), "CODE_42");
}

TEST(DescribeRpcError, SaysWhatToDo) {
  const auto msg =
      describe_rpc_error(grpc::Status(grpc::StatusCode::UNAVAILABLE, "refused"), "example:1234");
  EXPECT_NE(msg.find("UNAVAILABLE: refused"), std::string::npos);
  EXPECT_NE(msg.find("example:1234"), std::string::npos);
  EXPECT_NE(msg.find("TROUPE_ADDRESS"), std::string::npos);
  const auto nf = describe_rpc_error(grpc::Status(grpc::StatusCode::NOT_FOUND, "no troupe x"), "a");
  EXPECT_NE(nf.find("NOT_FOUND: no troupe x"), std::string::npos);
}

// The hint follows what trouped says it did not find (status_mapping.cpp
// starts the message with "troupe" or "job").
TEST(DescribeRpcError, NotFoundHintFitsWhatWasNotFound) {
  const auto troupe = describe_rpc_error(
      grpc::Status(grpc::StatusCode::NOT_FOUND, "troupe \"x\" is not hosted here"), "a");
  EXPECT_NE(troupe.find("troupectl troupes"), std::string::npos) << troupe;
  EXPECT_EQ(troupe.find("result_ttl"), std::string::npos) << troupe;
  const auto job = describe_rpc_error(
      grpc::Status(grpc::StatusCode::NOT_FOUND, "job \"00000000000000ff\" is unknown"), "a");
  EXPECT_NE(job.find("result_ttl"), std::string::npos) << job;
  EXPECT_EQ(job.find("troupectl troupes"), std::string::npos) << job;
}

// gRPC's client turns a reply it cannot parse into UNIMPLEMENTED; the server
// did answer, so "is it trouped?" would send the user the wrong way.
TEST(DescribeRpcError, UnparseableReplyIsNotCalledAnUnknownServer) {
  const auto unparsed = describe_rpc_error(
      grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "No message returned for unary request"),
      "a:1");
  EXPECT_EQ(unparsed.find("is it trouped"), std::string::npos) << unparsed;
  EXPECT_NE(unparsed.find("cannot parse"), std::string::npos) << unparsed;
  const auto unknown = describe_rpc_error(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, ""), "a:1");
  EXPECT_NE(unknown.find("is it trouped"), std::string::npos) << unknown;
}

}  // namespace
}  // namespace troupe::tools
