#pragma once

/// Test harness for tests/bench/echo_server (the bare gRPC baseline): starts
/// it on 127.0.0.1 port 0 under TroupedProcess's process machinery and reads
/// the bound address from its "echo_server listening on ..." line.

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "support/trouped_process.h"

namespace troupe::test {

/// A running echo_server; the process stops (SIGKILL) with this object.
struct EchoServerProcess {
  std::unique_ptr<TroupedProcess> process;
  std::string address;  // HOST:PORT it listens on
  std::shared_ptr<grpc::Channel> channel() const;
};

/// Starts echo_server with `--style style` (callback or cq) and `extra_args`
/// and waits until it serves; fails the current test (and returns nullptr)
/// when it does not.
std::unique_ptr<EchoServerProcess> start_echo_server(const std::string& style,
                                                     std::vector<std::string> extra_args = {});

/// The echo_server binary built alongside the tests.
std::string echo_server_binary();

}  // namespace troupe::test
