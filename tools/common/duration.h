#pragma once

#include <chrono>
#include <string>

namespace troupe::tools {

/// A measured duration (latency, run time) for display, with a unit that
/// keeps 3 significant digits: "850us", "12.3ms", "1.50s". What a user types
/// is parsed by syntax/duration.h, the one duration syntax.
std::string format_duration(std::chrono::nanoseconds d);

}  // namespace troupe::tools
