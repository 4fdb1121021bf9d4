#include "daemon/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

#include "core/utf8.h"

namespace troupe::daemon {
namespace {

constexpr std::string_view kLoggerName = "trouped";

std::string_view level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    case spdlog::level::off:
    case spdlog::level::n_levels:
      break;
  }
  return "off";
}

void append(spdlog::memory_buf_t& dest, std::string_view text) {
  dest.append(text.data(), text.data() + text.size());
}

/// Appends `text` as the body of a JSON string (RFC 8259 escapes). JSON is
/// Unicode: bytes that are not UTF-8 (a troupe name from a config file, a
/// program's output) become U+FFFD.
void append_escaped(spdlog::memory_buf_t& dest, std::string_view raw) {
  std::string repaired;
  std::string_view text = raw;
  if (!core::is_valid_utf8(raw)) {
    repaired = core::valid_utf8(raw);
    text = repaired;
  }
  for (const char c : text) {
    switch (c) {
      case '"':
        append(dest, "\\\"");
        break;
      case '\\':
        append(dest, "\\\\");
        break;
      case '\n':
        append(dest, "\\n");
        break;
      case '\r':
        append(dest, "\\r");
        break;
      case '\t':
        append(dest, "\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
          append(dest, escaped);
        } else {
          dest.push_back(c);
        }
    }
  }
}

/// RFC 3339 UTC timestamp with milliseconds.
void append_timestamp(spdlog::memory_buf_t& dest, spdlog::log_clock::time_point time) {
  using namespace std::chrono;
  const auto since_epoch = time.time_since_epoch();
  const auto seconds = duration_cast<std::chrono::seconds>(since_epoch);
  const auto millis = duration_cast<milliseconds>(since_epoch - seconds).count();
  const std::time_t t = seconds.count();
  std::tm utc{};
  gmtime_r(&t, &utc);
  char buffer[40];
  const std::size_t n = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &utc);
  append(dest, std::string_view(buffer, n));
  std::snprintf(buffer, sizeof buffer, ".%03dZ", static_cast<int>(millis));
  append(dest, buffer);
}

/// See make_json_formatter().
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    append(dest, R"({"ts":")");
    append_timestamp(dest, msg.time);
    append(dest, R"(","level":")");
    append(dest, level_name(msg.level));
    if (msg.logger_name.size() != 0) {
      append(dest, R"(","logger":")");
      append_escaped(dest, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    }
    append(dest, R"(","msg":")");
    append_escaped(dest, std::string_view(msg.payload.data(), msg.payload.size()));
    append(dest, "\"}\n");
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

spdlog::level::level_enum log_level(std::string_view name) {
  for (const auto level : {spdlog::level::trace, spdlog::level::debug, spdlog::level::info,
                           spdlog::level::warn, spdlog::level::err, spdlog::level::critical}) {
    if (level_name(level) == name) return level;
  }
  return spdlog::level::off;
}

std::unique_ptr<spdlog::formatter> make_json_formatter() {
  return std::make_unique<JsonFormatter>();
}

std::shared_ptr<spdlog::logger> make_logger(const config::LoggingOptions& options,
                                            spdlog::sink_ptr sink) {
  auto logger = std::make_shared<spdlog::logger>(std::string(kLoggerName), std::move(sink));
  if (options.format == config::LoggingOptions::Format::kJson) {
    logger->set_formatter(make_json_formatter());
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  }
  logger->set_level(log_level(options.level));
  // Lines must reach a pipe (systemd, tests) as they happen.
  logger->flush_on(spdlog::level::trace);
  return logger;
}

void setup_logging(const config::LoggingOptions& options) {
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>(spdlog::color_mode::automatic);
  spdlog::set_default_logger(make_logger(options, std::move(sink)));
}

}  // namespace troupe::daemon
