#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace troupe::tools {

/// Parses a duration the way trouped's config does: one or more
/// number+unit parts, e.g. "250ms", "30s", "5m", "1h", "1m30s", "1.5s".
/// Units: ns, us, ms, s, m, h. A bare "0" is zero. Returns nullopt on
/// anything else (no unit, negative, unknown unit, overflow).
std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text);

/// Human-readable duration with a unit that keeps 3 significant digits:
/// "850us", "12.3ms", "1.50s".
std::string format_duration(std::chrono::nanoseconds d);

}  // namespace troupe::tools
