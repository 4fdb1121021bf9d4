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

#include "core/options.h"

namespace troupe::config {

/// A parsed value, or the reason it could not be parsed.
template <class T>
struct Parsed {
  std::optional<T> value;
  std::string error;  // set iff !value

  static Parsed ok(T v) { return Parsed{std::move(v), {}}; }
  static Parsed fail(std::string why) { return Parsed{std::nullopt, std::move(why)}; }
};

/// "250ms", "30s", "5m", "1h", compound "1m30s"; units ns, us, ms, s, m, h in
/// descending order. "0" alone is accepted. Never negative.
Parsed<core::Duration> parse_duration(std::string_view text);

/// "512", "512B", "64KiB", "4MiB", "1GiB" (binary units only).
Parsed<std::size_t> parse_size(std::string_view text);

struct HostPort {
  std::string host;  // IPv6 without brackets
  std::uint16_t port = 0;
};
/// "127.0.0.1:50051", "[::1]:50051", "localhost:0".
Parsed<HostPort> parse_address(std::string_view text);
/// True when only this machine can reach `address`: 127.0.0.0/8, ::1 or
/// "localhost". 0.0.0.0, [::] and every other name are not loopback.
bool is_loopback(const HostPort& address);

struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;
  std::uint16_t port = 0;  // 0 when the URL does not name one
  std::string target;      // path and query, "/" when empty
};
/// "http://host[:port][/path]" or "https://...".
Parsed<Url> parse_url(std::string_view text);

/// True for a DNS host name (RFC 1123 labels).
bool is_hostname(std::string_view text);

/// Levenshtein distance, for suggestions.
std::size_t edit_distance(std::string_view a, std::string_view b);

/// The candidate closest to `word` when it is close enough to be a likely
/// typo, else nullopt.
std::optional<std::string_view> closest_match(std::string_view word,
                                              std::span<const std::string_view> candidates);

/// Human forms used in summaries and messages: "1m30s", "4MiB".
std::string format_duration(core::Duration d);
std::string format_size(std::size_t bytes);

}  // namespace troupe::config
