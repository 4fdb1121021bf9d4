#include "daemon/cli.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <sstream>
#include <variant>
#include <vector>

#include "config/crypto.h"
#include "config/value_parsers.h"
#include "core/handler.h"
#include "daemon/journal_factory.h"
#include "daemon/version.h"
#include "store/pg_journal.h"

namespace troupe::daemon {
namespace {

using config::format_duration;
using config::format_size;

// How long --check-config waits for the database of store.dsn.
constexpr core::Duration kProbeTimeout = std::chrono::seconds(5);

/// Every error on its own line, then the count; returns kExitBadConfig.
int report_errors(const std::string& path, const std::vector<config::ConfigError>& errors,
                  std::ostream& err) {
  for (const auto& error : errors) err << error.to_string() << "\n";
  err << path << ": " << errors.size() << (errors.size() == 1 ? " error" : " errors")
      << "; nothing was started\n";
  err.flush();
  return kExitBadConfig;
}

std::string_view mode_name(core::TroupeMode mode) {
  return mode == core::TroupeMode::kFixed ? "fixed" : "dynamic";
}

std::string_view dispatch_name(core::DispatchStrategy dispatch) {
  switch (dispatch) {
    case core::DispatchStrategy::kLeastLoaded:
      return "least_loaded";
    case core::DispatchStrategy::kRoundRobin:
      return "round_robin";
    case core::DispatchStrategy::kKey:
      return "key";
  }
  return "?";
}

std::string format_number(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

std::string actors_text(const core::TroupeOptions& t) {
  return std::to_string(t.min_actors) + "/" + std::to_string(t.initial_actors) + "/" +
         std::to_string(t.max_actors);
}

std::string breaker_text(const core::CircuitBreakerOptions& c) {
  if (!c.enabled) return "off";
  std::string text;
  if (c.consecutive_failures != 0) {
    text += std::to_string(c.consecutive_failures) + " in a row or ";
  }
  text += format_number(c.failure_rate_threshold * 100) + "% of " + std::to_string(c.window_size) +
          ", open " + format_duration(c.open_timeout) + ", " +
          (c.policy == core::CircuitBreakerOptions::OpenPolicy::kReject ? "reject" : "hold");
  return text;
}

std::string retry_text(const core::RetryOptions& r) {
  if (r.max_attempts == 1) return "1 attempt";
  return std::to_string(r.max_attempts) + " attempts, " + format_duration(r.initial_backoff) +
         ".." + format_duration(r.max_backoff) + " x" + format_number(r.multiplier);
}

/// Left-aligned columns separated by two spaces.
std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line = "  ";
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace

ParsedCommandLine parse_command_line(std::span<const std::string_view> args) {
  const auto fail = [](std::string why) { return ParsedCommandLine{std::nullopt, std::move(why)}; };
  bool help = false;
  bool version = false;
  std::vector<CommandLine> commands;
  if (!args.empty() && args.front() == "hash-token") {
    if (args.size() > 1) {
      return fail("hash-token takes no arguments; it reads the token from stdin");
    }
    return {CommandLine{CommandLine::Command::kHashToken, {}}, {}};
  }
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      help = true;
      continue;
    }
    if (arg == "--version") {
      version = true;
      continue;
    }
    bool matched = false;
    for (const auto& [flag, command] :
         {std::pair{std::string_view("--config"), CommandLine::Command::kRun},
          std::pair{std::string_view("--check-config"), CommandLine::Command::kCheckConfig}}) {
      if (arg == flag) {
        if (i + 1 >= args.size() || args[i + 1].empty()) {
          return fail(std::string(flag) + " needs a FILE argument");
        }
        commands.push_back({command, std::string(args[++i])});
        matched = true;
      } else if (arg.starts_with(std::string(flag) + "=")) {
        const std::string_view path = arg.substr(flag.size() + 1);
        if (path.empty()) return fail(std::string(flag) + " needs a FILE argument");
        commands.push_back({command, std::string(path)});
        matched = true;
      }
    }
    if (matched) continue;
    if (arg.starts_with("-")) return fail("unknown option '" + std::string(arg) + "'");
    return fail("unexpected argument '" + std::string(arg) + "'");
  }
  if (help) return {CommandLine{CommandLine::Command::kHelp, {}}, {}};
  if (version) return {CommandLine{CommandLine::Command::kVersion, {}}, {}};
  if (commands.empty()) return fail("nothing to do; give --config FILE or --check-config FILE");
  if (commands.size() > 1) {
    return fail("give exactly one of --config FILE or --check-config FILE");
  }
  return {commands.front(), {}};
}

ParsedCommandLine parse_command_line(int argc, const char* const* argv) {
  std::vector<std::string_view> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return parse_command_line(args);
}

std::string version_line() {
  return std::string("trouped ") + kVersion;
}

std::string usage() {
  return R"(Usage: trouped --config FILE          run the daemon with FILE
       trouped --check-config FILE    validate FILE (and reach store.dsn with
                                      kind postgres), print a summary, and exit
       trouped hash-token             read a token on stdin, print its SHA-256
                                      (for auth.identities[].token_sha256)
       trouped --version              print the version and exit
       trouped --help                 print this help and exit

trouped hosts troupes of actors that run jobs submitted over gRPC. FILE is a
YAML file; see docs/configuration.md and config/trouped.yaml. SIGTERM or SIGINT
drains and stops the daemon.

Exit codes:
  0  success (including a clean stop on SIGTERM/SIGINT)
  1  runtime failure after a valid start (a port taken, the store in use by
     another trouped, corrupt or not writable, its PostgreSQL server
     unreachable)
  2  bad command line, or an unreadable or invalid config file (every error is
     printed as FILE:LINE:COLUMN: KEY.PATH: MESSAGE; --check-config: also a
     store.dsn it cannot reach)
  75 the store failed while running (write or fsync error, disk full): it
     drained and stopped; restart it and recovery runs
)";
}

std::optional<config::Config> load_config_or_report(const std::string& path, std::ostream& err) {
  config::LoadResult result = config::load_file(path);
  if (result.config) return std::move(result.config);
  report_errors(path, result.errors, err);
  return std::nullopt;
}

std::string describe_troupe(const core::TroupeOptions& t) {
  return t.name + ": " + std::string(mode_name(t.mode)) + ", actors " + actors_text(t) +
         " (min/initial/max), mailbox " + std::to_string(t.mailbox_capacity) + ", dispatch " +
         std::string(dispatch_name(t.dispatch)) + ", timeout " + format_duration(t.timeout) +
         ", handler " + core::summarize(t.handler) + ", breaker " +
         breaker_text(t.circuit_breaker) + ", retry " + retry_text(t.retry) +
         (t.rate_limit.enabled ? ", rate " + format_number(t.rate_limit.per_second) + "/s" : "");
}

std::string describe_config(const config::Config& config) {
  std::ostringstream out;
  out << "server: grpc " << config.server.grpc_address << ", metrics "
      << config.server.metrics_address << ", threads "
      << (config.server.threads == 0 ? std::string("auto") : std::to_string(config.server.threads))
      << ", drain " << format_duration(config.server.drain_timeout) << ", max payload "
      << format_size(config.server.limits.max_payload) << "\n";
  out << describe_store(config.store) << "\n";
  out << "logging: " << config.logging.level << ", "
      << (config.logging.format == config::LoggingOptions::Format::kJson ? "json" : "text") << "\n";
  out << config.troupes.size() << (config.troupes.size() == 1 ? " troupe:\n" : " troupes:\n");
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "MODE", "ACTORS", "MAILBOX", "HANDLER", "BREAKER", "RETRY"}};
  for (const auto& t : config.troupes) {
    rows.push_back({t.name, std::string(mode_name(t.mode)), actors_text(t),
                    std::to_string(t.mailbox_capacity), core::summarize(t.handler),
                    breaker_text(t.circuit_breaker), retry_text(t.retry)});
  }
  out << table(rows);
  return out.str();
}

int run_check_config(const std::string& path, std::ostream& out, std::ostream& err) {
  config::LoadResult loaded = config::load_file(path);
  if (!loaded.config) return report_errors(path, loaded.errors, err);
  // The one part of a config that lives outside the file: a shared store
  // must answer, or every replica would fail at start.
  if (loaded.config->store.kind == config::StoreOptions::Kind::kPostgres) {
    const std::string& dsn = loaded.config->store.postgres.dsn;
    if (auto why = store::probe_postgres(dsn, kProbeTimeout); !why.empty()) {
      return report_errors(
          path,
          {loaded.error_at("store.dsn", "cannot reach the PostgreSQL server " +
                                            (dsn.empty() ? std::string("(libpq defaults and PG* "
                                                                       "environment variables)")
                                                         : redact_dsn(dsn)) +
                                            ": " + why)},
          err);
    }
  }
  out << path << ": OK\n" << describe_config(*loaded.config);
  out.flush();
  return kExitOk;
}

}  // namespace troupe::daemon

namespace troupe::daemon {

int run_hash_token(std::istream& in, std::ostream& out, std::ostream& err) {
  std::string token;
  std::getline(in, token);
  const std::string_view trimmed = config::trim_token(token);
  if (trimmed.empty()) {
    err << "trouped hash-token: no token on stdin; e.g. head -c 32 /dev/urandom | base64 | tee "
           "token | trouped hash-token\n";
    return kExitBadUsage;
  }
  out << config::to_hex(config::sha256(trimmed)) << "\n";
  return kExitOk;
}

}  // namespace troupe::daemon
