// trouped: composition only. Parse the command line, load the config, set up
// logging, host until SIGTERM/SIGINT.

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <exception>
#include <iostream>

#include "config/config.h"
#include "daemon/cli.h"
#include "daemon/logging.h"

namespace {

/// Stand-in for the Daemon until it is wired in: announces each troupe, then
/// blocks until SIGTERM or SIGINT. The signal set is armed before "ready" is
/// logged so a signal sent on seeing that line is never lost.
int host_until_signalled(const troupe::config::Config& config) {
  boost::asio::io_context io;
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  int received = 0;
  signals.async_wait([&received](const boost::system::error_code& ec, int signal_number) {
    if (!ec) received = signal_number;
  });
  for (const auto& troupe : config.troupes) {
    spdlog::info("hosting troupe {}", troupe::daemon::describe_troupe(troupe));
  }
  spdlog::info("{} ready with {} troupes; stop with SIGTERM or SIGINT",
               troupe::daemon::version_line(), config.troupes.size());
  io.run();
  spdlog::info("stopping on {}", received == SIGINT ? "SIGINT" : "SIGTERM");
  return troupe::daemon::kExitOk;
}

}  // namespace

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
    case CommandLine::Command::kRun:
      break;
  }

  const auto config = troupe::daemon::load_config_or_report(command_line.config_path, std::cerr);
  if (!config) return troupe::daemon::kExitBadConfig;
  troupe::daemon::setup_logging(config->logging);
  try {
    return host_until_signalled(*config);
  } catch (const std::exception& e) {
    spdlog::critical("trouped failed: {}", e.what());
    return troupe::daemon::kExitRuntimeFailure;
  }
}
