#pragma once

#include <grpcpp/channel.h>

#include <memory>
#include <string>
#include <vector>

#include "tools/bench/bench_options.h"
#include "tools/bench/load.h"

namespace troupe::bench {

/// The target for `options.mode` (payload of options.payload_size bytes).
std::unique_ptr<Target> make_target(const BenchOptions& options);

/// `count` channels to `address`, each its own HTTP/2 connection.
std::vector<std::shared_ptr<grpc::Channel>> make_channels(const std::string& address,
                                                          std::uint32_t count);

}  // namespace troupe::bench
