#pragma once

/// The one syntax for network addresses: listen addresses ("host:port") and
/// http(s) URLs, as the config validates them and the http handler connects
/// to them. Hosts are IPv4 addresses, bracketed IPv6 addresses ("[::1]") or
/// DNS names (RFC 1123); the port is split off after the host, never inside
/// an IPv6 literal.

#include <cstdint>
#include <string>
#include <string_view>

#include "syntax/parsed.h"

namespace troupe::syntax {

struct HostPort {
  std::string host;  // IPv6 without brackets
  std::uint16_t port = 0;
};
/// "127.0.0.1:50051", "[::1]:50051", "localhost:0": the port is required and
/// may be 0 (any free port).
Parsed<HostPort> parse_address(std::string_view text);
/// True when only this machine can reach `address`: 127.0.0.0/8, ::1 or
/// "localhost". 0.0.0.0, [::] and every other name are not loopback.
bool is_loopback(const HostPort& address);

struct Url {
  std::string scheme;      // "http" or "https"
  std::string host;        // IPv6 without brackets
  std::uint16_t port = 0;  // as written, else the scheme's default: 80 or 443
  std::string target;      // path and query, "/" when empty; a #fragment is dropped

  bool tls() const { return scheme == "https"; }
  /// What an HTTP Host header carries: the host (bracketed when IPv6), and
  /// ":port" unless it is the scheme's default.
  std::string host_header() const;
};
/// "http://host[:port][/path][?query][#fragment]" or "https://...". Rejects
/// other schemes, a missing host, a port outside 1..65535 or empty after
/// ':', and userinfo ("user:pw@host": credentials belong in headers).
Parsed<Url> parse_url(std::string_view text);

/// True for a DNS host name (RFC 1123 labels).
bool is_hostname(std::string_view text);

}  // namespace troupe::syntax
