#include "support/echo_server_process.h"

#include <gtest/gtest.h>

#include <regex>

namespace troupe::test {

std::string echo_server_binary() {
  return ECHO_SERVER_PATH;
}

std::shared_ptr<grpc::Channel> EchoServerProcess::channel() const {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

std::unique_ptr<EchoServerProcess> start_echo_server(const std::string& style,
                                                     std::vector<std::string> extra_args) {
  std::vector<std::string> argv = {echo_server_binary(), "--address", "127.0.0.1:0", "--style",
                                   style,
                                   // Never outlives a test run, even if a test leaks it.
                                   "--max-lifetime", "5m"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  auto server = std::make_unique<EchoServerProcess>();
  server->process = std::make_unique<TroupedProcess>(CommandOptions{.argv = argv});
  const std::regex listening(R"(echo_server listening on (\S+) style=(\S+))");
  std::smatch match;
  const std::string log = server->process->wait_for_log(listening) ? server->process->log() : "";
  if (!std::regex_search(log, match, listening) || match[2].str() != style) {
    ADD_FAILURE() << "echo_server --style " << style << " did not start serving; log:\n"
                  << server->process->log();
    return nullptr;
  }
  server->address = match[1].str();
  return server;
}

}  // namespace troupe::test
