#pragma once

/// Process-wide logging set-up from the config's `logging` section.

#include <spdlog/common.h>
#include <spdlog/formatter.h>
#include <spdlog/logger.h>

#include <memory>
#include <string_view>

#include "config/config.h"

namespace troupe::daemon {

/// Maps a validated level name ("trace" ... "off") to spdlog's level.
spdlog::level::level_enum log_level(std::string_view name);

/// One JSON object per line: {"ts":"2026-01-02T03:04:05.678Z","level":"info",
/// "logger":"trouped","msg":"..."}. Stateless; clone() for each sink.
std::unique_ptr<spdlog::formatter> make_json_formatter();

/// A logger writing to `sink` as `options` says: text is
/// "2026-01-02T03:04:05.678Z info message" (UTC), json as above.
std::shared_ptr<spdlog::logger> make_logger(const config::LoggingOptions& options,
                                            spdlog::sink_ptr sink);

/// Installs the default logger: stderr, coloured only when stderr is a
/// terminal, flushed on every line. Call once, before other threads log.
void setup_logging(const config::LoggingOptions& options);

}  // namespace troupe::daemon
