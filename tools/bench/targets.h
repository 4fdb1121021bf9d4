#pragma once

#include <memory>

#include "tools/bench/bench_options.h"
#include "tools/bench/load.h"

namespace troupe::bench {

/// The target for `options.mode` (payload of options.payload_size bytes).
std::unique_ptr<Target> make_target(const BenchOptions& options);

}  // namespace troupe::bench
