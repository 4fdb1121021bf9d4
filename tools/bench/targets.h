#pragma once

#include <grpcpp/channel.h>

#include <memory>
#include <string>
#include <vector>

#include "tools/bench/bench_options.h"
#include "tools/bench/load.h"
#include "tools/common/connection.h"

namespace troupe::bench {

/// The target for `options.mode` (payload of options.payload_size bytes).
std::unique_ptr<Target> make_target(const BenchOptions& options);

/// `count` channels to `address` over `connection`, each its own HTTP/2
/// connection.
std::vector<std::shared_ptr<grpc::Channel>> make_channels(const std::string& address,
                                                          const tools::Connection& connection,
                                                          std::uint32_t count);

}  // namespace troupe::bench
