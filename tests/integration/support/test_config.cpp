#include "support/test_config.h"

#include <sstream>

namespace troupe::test {

std::string config_yaml(const ServerSpec& server, const std::vector<TroupeSpec>& troupes) {
  std::ostringstream y;
  y << "server:\n"
    << "  grpc_address: \"" << server.grpc_address << "\"\n"
    << "  metrics_address: \"" << server.metrics_address << "\"\n"
    << "  threads: " << server.threads << "\n"
    << "  drain_timeout: " << server.drain_timeout << "\n"
    << "  limits:\n"
    << "    max_payload: " << server.max_payload << "\n"
    << "    max_metadata_entries: " << server.max_metadata_entries << "\n"
    << "    max_metadata_bytes: " << server.max_metadata_bytes << "\n"
    << "logging:\n"
    << "  level: info\n"
    << "troupes:\n";
  for (const auto& t : troupes) {
    y << "  - name: " << t.name << "\n"
      << "    mode: " << t.mode << "\n";
    if (t.mode == "dynamic") {
      y << "    min_actors: " << t.min_actors << "\n"
        << "    initial_actors: " << t.min_actors << "\n";
    }
    y << "    max_actors: " << t.max_actors << "\n"
      << "    mailbox_capacity: " << t.mailbox_capacity << "\n"
      << "    retry:\n"
      << "      max_attempts: " << t.max_attempts << "\n"
      << "      initial_backoff: 10ms\n"
      << "    circuit_breaker:\n"
      << "      enabled: " << (t.circuit_breaker ? "true" : "false") << "\n";
    if (t.circuit_breaker) {
      y << "      consecutive_failures: " << t.breaker_failures << "\n"
        << "      open_timeout: " << t.breaker_open_timeout << "\n";
    }
    y << "    handler:\n"
      << "      builtin: " << t.builtin << "\n";
    if (t.builtin == "sleep") y << "      sleep: " << t.sleep << "\n";
  }
  return y.str();
}

}  // namespace troupe::test
