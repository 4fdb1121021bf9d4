#include "support/test_config.h"

#include <sstream>

namespace troupe::test {

std::string config_yaml(const ServerSpec& server, const std::vector<TroupeSpec>& troupes) {
  std::ostringstream y;
  y << "server:\n"
    << "  grpc_address: \"" << server.grpc_address << "\"\n"
    << "  metrics_address: \"" << server.metrics_address << "\"\n"
    << "  threads: " << server.threads << "\n"
    << "  shutdown:\n"
    << "    drain_timeout: " << server.drain_timeout << "\n"
    << "  limits:\n"
    << "    max_payload: " << server.max_payload << "\n"
    << "    max_metadata_entries: " << server.max_metadata_entries << "\n"
    << "    max_metadata_bytes: " << server.max_metadata_bytes << "\n"
    << server.extra << server.sections;
  if (!server.store.empty()) y << "store: " << server.store << "\n";
  y << "logging:\n"
    << "  level: info\n"
    << "troupes:\n";
  for (const auto& t : troupes) {
    y << "  - name: " << t.name << "\n"
      << "    mode: " << t.mode << "\n";
    if (t.mode == "dynamic") {
      y << "    actors: {min: " << t.min_actors << ", initial: " << t.min_actors
        << ", max: " << t.max_actors << "}\n";
    } else {
      y << "    actors: " << t.max_actors << "\n";
    }
    y << "    mailbox: " << t.mailbox_capacity << "\n"
      << "    retry: {max_attempts: " << t.max_attempts
      << ", initial_backoff: 10ms, max_backoff: 50ms}\n";
    if (t.circuit_breaker) {
      y << "    circuit_breaker: {enabled: true, consecutive_failures: " << t.breaker_failures
        << ", open_timeout: " << t.breaker_open_timeout << "}\n";
    } else {
      y << "    circuit_breaker: {enabled: false}\n";
    }
    if (!t.supervisor.empty()) y << "    supervisor: " << t.supervisor << "\n";
    if (!t.dispatch.empty()) y << "    dispatch: " << t.dispatch << "\n";
    if (!t.http_url.empty()) {
      y << "    handler: {kind: http, url: \"" << t.http_url << "\"}\n";
      continue;
    }
    y << "    handler: {kind: builtin, name: " << t.builtin;
    if (t.builtin == "sleep") y << ", sleep: " << t.sleep;
    if (t.builtin == "fail")
      y << ", fail_mode: " << t.fail_mode << ", fail_every: " << t.fail_every;
    y << "}\n";
  }
  return y.str();
}

}  // namespace troupe::test
