#pragma once

#include <string>

#include "tools/bench/load.h"

namespace troupe::bench {

/// Human-readable report (several lines).
std::string report_text(const BenchReport& r);
/// One JSON object; latencies in microseconds. Shape documented in docs/tools.md.
std::string report_json(const BenchReport& r);
/// 0 when some call succeeded; otherwise the exit code of the most frequent error.
int bench_exit_code(const BenchReport& r);

}  // namespace troupe::bench
