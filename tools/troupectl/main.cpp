#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tools/common/exit_code.h"
#include "tools/troupectl/commands.h"
#include "tools/troupectl/options.h"

int main(int argc, char** argv) {
  using troupe::tools::ExitCode;
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = troupe::troupectl::parse_options(args, std::getenv("TROUPE_ADDRESS"));
  if (auto* err = std::get_if<troupe::troupectl::UsageError>(&parsed)) {
    std::fprintf(stderr, "troupectl: %s\n", err->message.c_str());
    return static_cast<int>(ExitCode::kUsage);
  }
  const auto& opts = std::get<troupe::troupectl::Options>(parsed);
  if (opts.command == troupe::troupectl::Command::kHelp) {
    std::fputs(troupe::troupectl::usage_text(), stdout);
    return static_cast<int>(ExitCode::kOk);
  }
  return troupe::troupectl::run_command(opts);
}
