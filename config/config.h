#pragma once

/// Loads and validates trouped's YAML configuration.

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "core/options.h"

namespace troupe::config {

struct LimitsOptions {
  std::size_t max_payload = 4u << 20;  // bytes per job payload
  std::size_t max_metadata_entries = 32;
  std::size_t max_metadata_bytes = 8u << 10;  // keys + values
};

struct ServerOptions {
  std::string grpc_address = "0.0.0.0:50051";
  std::string metrics_address = "0.0.0.0:9464";
  std::uint32_t threads = 0;  // 0 = hardware concurrency
  core::Duration drain_timeout = std::chrono::seconds(30);
  LimitsOptions limits;
};

struct LoggingOptions {
  enum class Format { kText, kJson };
  std::string level = "info";
  Format format = Format::kText;
};

/// The whole file, validated.
struct Config {
  ServerOptions server;
  LoggingOptions logging;
  core::RuntimeOptions runtime;
  std::vector<core::TroupeOptions> troupes;
};

}  // namespace troupe::config
