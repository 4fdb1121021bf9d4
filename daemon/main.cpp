// trouped: composition only. Parse the command line, load the config, set up
// logging, hand over to run_daemon (serve until SIGTERM/SIGINT, then drain).

#include <spdlog/spdlog.h>

#include <exception>
#include <iostream>

#include "config/config.h"
#include "daemon/cli.h"
#include "daemon/daemon.h"
#include "daemon/logging.h"

int main(int argc, char** argv) {
  using troupe::daemon::CommandLine;
  const auto parsed = troupe::daemon::parse_command_line(argc, argv);
  if (!parsed.command_line) {
    std::cerr << "trouped: " << parsed.error << "\n\n" << troupe::daemon::usage();
    return troupe::daemon::kExitBadUsage;
  }
  const CommandLine& command_line = *parsed.command_line;
  switch (command_line.command) {
    case CommandLine::Command::kHelp:
      std::cout << troupe::daemon::usage();
      return troupe::daemon::kExitOk;
    case CommandLine::Command::kVersion:
      std::cout << troupe::daemon::version_line() << "\n";
      return troupe::daemon::kExitOk;
    case CommandLine::Command::kCheckConfig:
      return troupe::daemon::run_check_config(command_line.config_path, std::cout, std::cerr);
    case CommandLine::Command::kHashToken:
      return troupe::daemon::run_hash_token(std::cin, std::cout, std::cerr);
    case CommandLine::Command::kRun:
      break;
  }

  const auto config = troupe::daemon::load_config_or_report(command_line.config_path, std::cerr);
  if (!config) return troupe::daemon::kExitBadConfig;
  troupe::daemon::setup_logging(config->logging);
  for (const auto& troupe : config->troupes) {
    spdlog::info("hosting troupe {}", troupe::daemon::describe_troupe(troupe));
  }
  try {
    return troupe::daemon::run_daemon(*config, command_line.config_path);
  } catch (const std::exception& e) {
    spdlog::critical("trouped failed: {}", e.what());
    return troupe::daemon::kExitRuntimeFailure;
  }
}
