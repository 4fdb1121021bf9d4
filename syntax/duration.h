#pragma once

/// The one duration syntax of trouped's config, troupectl, troupe-bench and
/// the builtin sleep handler's payload (docs/configuration.md, "Value
/// syntax"): one or more integer+unit parts, units ns, us, ms, s, m, h, from
/// the largest to the smallest ("1h30m", "1m30s", "250ms"). A bare "0" is
/// zero. Rejected: a bare number other than 0 (its unit is ambiguous),
/// fractions ("1.5s": write "1500ms"), signs, spaces, upper case, a unit
/// repeated or out of order, and anything over the largest signed 64-bit
/// count of nanoseconds (about 292 years).

#include <chrono>
#include <string>
#include <string_view>

#include "syntax/parsed.h"

namespace troupe::syntax {

Parsed<std::chrono::nanoseconds> parse_duration(std::string_view text);

/// The exact inverse of parse_duration, largest units first: "1m30s",
/// "250ms", "0s". Never negative input.
std::string format_duration(std::chrono::nanoseconds d);

}  // namespace troupe::syntax
