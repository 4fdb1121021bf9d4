#pragma once

#include <chrono>
#include <string>

namespace troupe::tools {

/// A measured duration (latency, run time) for display, with a unit that
/// keeps 3 significant digits: "850us", "12.3ms", "1.50s". What a user types
/// is parsed by syntax/duration.h, the one duration syntax.
std::string format_duration(std::chrono::nanoseconds d);

/// A duration in (fractional) microseconds, the unit of latencies in the
/// tools' JSON reports.
inline double micros(std::chrono::nanoseconds d) {
  return static_cast<double>(d.count()) / 1e3;
}

}  // namespace troupe::tools
