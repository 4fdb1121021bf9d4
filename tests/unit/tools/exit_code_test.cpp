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
  EXPECT_NE(nf.find("troupectl troupes"), std::string::npos);
}

}  // namespace
}  // namespace troupe::tools
