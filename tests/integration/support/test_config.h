#pragma once

/// trouped YAML for tests, built in one place so the tests do not each
/// spell the config schema (docs/configuration.md).

#include <cstdint>
#include <string>
#include <vector>

namespace troupe::test {

/// One troupe with a builtin handler (or an http one, with http_url).
struct TroupeSpec {
  std::string name = "default";
  std::string builtin = "echo";  // noop, echo, sleep, fail
  std::string sleep = "20ms";    // builtin sleep: when the payload is not a duration
  std::string mode = "fixed";    // fixed: exactly max_actors
  std::uint32_t min_actors = 1;
  std::uint32_t max_actors = 4;
  std::uint32_t mailbox_capacity = 1024;  // per actor
  std::uint32_t max_attempts = 1;
  bool circuit_breaker = false;
  /// Circuit breaker: consecutive failures that open it (when enabled).
  std::uint32_t breaker_failures = 2;
  std::string breaker_open_timeout = "60s";
  /// Builtin fail: how (retryable, permanent, throw) and how often.
  std::string fail_mode = "retryable";
  std::uint32_t fail_every = 1;
  /// The supervisor map as YAML flow (e.g. "{max_restarts: 2}"); empty: defaults.
  std::string supervisor{};
  std::string http_url{};  // set: handler kind http, POST to this URL (not builtin)
  std::string dispatch{};  // set: `dispatch:` (least_loaded, round_robin, key)
};

struct ServerSpec {
  std::string grpc_address = "127.0.0.1:0";
  std::string metrics_address = "127.0.0.1:0";
  std::uint32_t threads = 2;
  std::string drain_timeout = "20s";
  std::size_t max_payload = 1 << 20;
  std::size_t max_metadata_entries = 8;
  std::size_t max_metadata_bytes = 1024;
  /// More `server:` keys, each line indented by two spaces (e.g. tls).
  std::string extra = {};
  /// More top-level sections (e.g. auth), written after `server:`.
  std::string sections = {};
  /// The `store:` section as YAML flow (e.g. "{kind: memory}"); empty: none,
  /// so trouped's default applies (sqlite in trouped-data/ next to the
  /// config file: every test trouped gets a store of its own in its temp
  /// directory).
  std::string store = {};
};

/// The YAML text of a config with `server` and `troupes`.
std::string config_yaml(const ServerSpec& server, const std::vector<TroupeSpec>& troupes);

}  // namespace troupe::test
