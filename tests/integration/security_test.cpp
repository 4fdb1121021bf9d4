// Who may do what, against the real trouped: listeners off loopback, TLS and
// mTLS with certificates made by openssl at test time, bearer tokens and
// per-troupe permissions.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <regex>

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

}  // namespace
}  // namespace troupe::test
