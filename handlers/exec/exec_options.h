#pragma once

/// Options of the `exec` handler kind: a program run per job.

#include <sys/types.h>

#include <boost/asio/any_io_executor.hpp>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/handler.h"
#include "core/options.h"

namespace troupe::core {

struct ExecHandlerOptions {
  static constexpr std::string_view kKind = "exec";  // `kind:` in the config

  std::vector<std::string> argv;              // argv[0] resolved via PATH; never a shell
  std::string working_dir;                    // empty = daemon's cwd
  std::vector<std::string> env_allow;         // inherited by name, besides PATH
  std::map<std::string, std::string> env;     // fixed values
  std::size_t max_output = 1 << 20;           // stdout bytes; over -> permanent failure
  std::size_t max_stderr = 64 << 10;          // kept in the error, truncated
  Duration kill_grace = 5s;                   // SIGTERM -> SIGKILL
  std::vector<int> non_retryable_exit_codes;  // -> kPermanent
  std::string metadata_env_prefix = "TROUPE_META_";

  /// Who the job runs as (`user:` / `group:`), resolved when the config is
  /// read (trouped must then run as root). nullopt: trouped's own user.
  struct RunAs {
    std::string user;   // as configured; empty when only group was given
    std::string group;  // as configured; empty = the user's primary group
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;  // supplementary groups set with setgroups
    bool operator==(const RunAs&) const = default;
  };
  std::optional<RunAs> run_as;

  bool operator==(const ExecHandlerOptions&) const = default;
};

/// The kind's glue to core (handlers/exec/exec_kind.cpp), found by
/// HandlerOptions through argument-dependent lookup.
std::unique_ptr<Handler> build_handler(const ExecHandlerOptions& options,
                                       boost::asio::any_io_executor executor, Clock& clock);
std::string describe_handler(const ExecHandlerOptions& options);
std::string summarize_handler(const ExecHandlerOptions& options);

}  // namespace troupe::core
