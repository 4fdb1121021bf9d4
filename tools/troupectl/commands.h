#pragma once

#include "tools/troupectl/options.h"

namespace troupe::troupectl {

/// Runs one parsed command against the daemon; returns the process exit code
/// (see ExitCode). Writes results to stdout and diagnostics to stderr.
/// Blocks the calling thread for the duration of the RPCs.
int run_command(const Options& opts);

}  // namespace troupe::troupectl
