#pragma once

/// Parsers for the scalar syntaxes of the config file (durations, byte sizes,
/// listen addresses, URLs) and the "did you mean" helper. Pure functions, no
/// YAML: each returns the value or a message saying what is wrong and how to
/// write it instead.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "syntax/duration.h"
#include "syntax/parsed.h"
#include "syntax/url.h"

namespace troupe::config {

using syntax::Parsed;

// Durations, addresses and URLs have one parser each, shared with tools and
// handlers (syntax/); the config reads them through these names.
using syntax::format_duration;
using syntax::HostPort;
using syntax::is_hostname;
using syntax::is_loopback;
using syntax::parse_address;
using syntax::parse_duration;
using syntax::parse_url;
using syntax::Url;

/// "512", "512B", "64KiB", "4MiB", "1GiB" (binary units only).
Parsed<std::size_t> parse_size(std::string_view text);

/// Levenshtein distance, for suggestions.
std::size_t edit_distance(std::string_view a, std::string_view b);

/// The candidate closest to `word` when it is close enough to be a likely
/// typo, else nullopt.
std::optional<std::string_view> closest_match(std::string_view word,
                                              std::span<const std::string_view> candidates);

/// Human form used in summaries and messages: "4MiB".
std::string format_size(std::size_t bytes);

}  // namespace troupe::config
