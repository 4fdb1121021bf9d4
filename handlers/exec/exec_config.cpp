// The exec kind's entry in the handler registry: its keys and its reader
// from YAML (handlers/registry.h).

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

#include "config/yaml_reader.h"
#include "handlers/exec/exec_options.h"
#include "handlers/registry.h"

namespace troupe::handlers {
namespace {

using namespace config::detail;

/// A POSIX environment variable name: letters, digits and '_', not starting
/// with a digit.
bool is_env_name(std::string_view name) {
  if (name.empty() || (name.front() >= '0' && name.front() <= '9')) return false;
  return std::all_of(name.begin(), name.end(),
                     [](unsigned char c) { return std::isalnum(c) != 0 || c == '_'; });
}

core::HandlerOptions read_exec(MapReader& m) {
  core::ExecHandlerOptions e;
  if (const Field* argv = m.find("argv")) {
    read_string_list(m, "argv", e.argv, [](const std::string& arg) {
      return arg.empty() ? std::string("arguments must not be empty") : std::string();
    });
    if (argv->node().IsNull() || (argv->node().IsSequence() && argv->node().size() == 0)) {
      m.diag().error(argv->where(), argv->path(),
                     "must name the program to run, e.g. argv: [\"tr\", \"a-z\", \"A-Z\"]");
    }
  } else {
    m.diag().error(m.self().where(), m.path("argv"),
                   "missing; an exec handler needs the program and its arguments, e.g. "
                   "argv: [\"tr\", \"a-z\", \"A-Z\"] (no shell is involved)");
  }
  if (m.string("working_dir", e.working_dir) && e.working_dir.empty()) {
    m.diag().error(m.at("working_dir"), m.path("working_dir"),
                   "must not be empty; remove it to run in the daemon's directory");
  }
  const auto env_name = [](const std::string& name) {
    return is_env_name(name) ? std::string()
                             : "\"" + name +
                                   "\" is not an environment variable name "
                                   "(letters, digits and '_', not starting with a digit)";
  };
  read_string_list(m, "env_allow", e.env_allow, env_name);
  read_string_map(m, "env", e.env, env_name, [](const std::string&) { return std::string(); });
  m.size("max_output", e.max_output, 1, kGiB);
  m.size("max_stderr", e.max_stderr, 0, 64 * kMiB);
  m.duration("kill_grace", e.kill_grace, kNonNegative);
  read_int_list(m, "non_retryable_exit_codes", e.non_retryable_exit_codes, {1, 255});
  if (m.string("metadata_env_prefix", e.metadata_env_prefix) &&
      !is_env_name(e.metadata_env_prefix)) {
    m.diag().error(m.at("metadata_env_prefix"), m.path("metadata_env_prefix"),
                   "\"" + e.metadata_env_prefix +
                       "\" cannot start an environment variable name; use letters, digits and '_' "
                       "(e.g. TROUPE_META_)");
  }
  return e;
}

[[maybe_unused]] const bool registered =
    handler_registry().add({core::ExecHandlerOptions::kKind,
                            {"argv", "working_dir", "env_allow", "env", "max_output", "max_stderr",
                             "kill_grace", "non_retryable_exit_codes", "metadata_env_prefix"},
                            read_exec});

}  // namespace
}  // namespace troupe::handlers
