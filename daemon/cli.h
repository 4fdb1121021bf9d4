#pragma once

/// trouped's command line: parsing, usage text, exit codes, and the
/// --check-config command. Pure functions over streams so tests and main.cpp
/// share them; nothing here touches global state.

#include <istream>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>

#include "config/config.h"
#include "core/options.h"

namespace troupe::daemon {

/// Process exit codes, documented in --help.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntimeFailure = 1;  // failed after a valid start
inline constexpr int kExitBadUsage = 2;        // bad command line
inline constexpr int kExitBadConfig = 2;       // unreadable or invalid config

/// What the command line asks for.
struct CommandLine {
  enum class Command { kRun, kCheckConfig, kHashToken, kVersion, kHelp };
  Command command = Command::kHelp;
  std::string config_path;  // kRun and kCheckConfig
};

/// A parsed command line, or what is wrong with it.
struct ParsedCommandLine {
  std::optional<CommandLine> command_line;
  std::string error;  // set iff !command_line
};

/// `args` excludes the program name. --help and --version win over anything
/// else; otherwise exactly one of --config FILE / --check-config FILE.
ParsedCommandLine parse_command_line(std::span<const std::string_view> args);
ParsedCommandLine parse_command_line(int argc, const char* const* argv);

/// "trouped 0.1.0"
std::string version_line();
/// The --help text, including the exit codes.
std::string usage();

/// Loads and validates `path`; on failure writes every error, one per line,
/// to `err` and returns nullopt.
std::optional<config::Config> load_config_or_report(const std::string& path, std::ostream& err);

/// One line about a troupe: mode, actors, mailbox, handler, breaker, retry.
std::string describe_troupe(const core::TroupeOptions& troupe);
/// The --check-config summary: the server settings and a table of troupes.
std::string describe_config(const config::Config& config);

/// The whole --check-config command; returns the exit code.
int run_check_config(const std::string& path, std::ostream& out, std::ostream& err);

/// `trouped hash-token`: reads a token from `in` (one line; surrounding
/// whitespace dropped, as token_file does) and writes its SHA-256 in hex, the
/// value auth.identities[].token_sha256 takes. The token never appears on a
/// command line. Returns the exit code.
int run_hash_token(std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace troupe::daemon
