// The exec kind's entry in the handler registry: its keys and its reader
// from YAML (handlers/registry.h).

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

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

/// `user:` and `group:`: looked up now (so a typo fails the config, not
/// every job) and only when trouped runs as root, the only way to switch.
void read_run_as(MapReader& m, core::ExecHandlerOptions& e) {
  core::ExecHandlerOptions::RunAs run_as;
  const bool has_user = m.string("user", run_as.user);
  const bool has_group = m.string("group", run_as.group);
  if (!has_user && !has_group) return;
  const std::string_view key = has_user ? "user" : "group";
  if (const uid_t self = ::geteuid(); self != 0) {
    m.diag().error(m.at(key), m.path(key),
                   "trouped runs as uid " + std::to_string(self) +
                       ", not root, so it cannot run jobs as another user or group; remove "
                       "user/group, or start trouped as root");
    return;
  }
  bool ok = true;
  std::vector<char> buffer(64 * 1024);
  if (has_user) {
    passwd entry{};
    passwd* found = nullptr;
    const int rc = ::getpwnam_r(run_as.user.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (found == nullptr) {
      m.diag().error(m.at("user"), m.path("user"),
                     "unknown user '" + run_as.user + "'" +
                         (rc != 0 ? " (" + std::string(std::strerror(rc)) + ")"
                                  : " (not in the passwd database)"));
      ok = false;
    } else {
      run_as.uid = entry.pw_uid;
      run_as.gid = entry.pw_gid;
      int count = 64;
      std::vector<gid_t> groups(static_cast<std::size_t>(count));
      while (::getgrouplist(run_as.user.c_str(), entry.pw_gid, groups.data(), &count) < 0) {
        groups.resize(static_cast<std::size_t>(count));
      }
      groups.resize(static_cast<std::size_t>(count));
      run_as.groups = std::move(groups);
    }
  } else {
    run_as.uid = 0;  // root, with another group only
  }
  if (has_group) {
    group entry{};
    group* found = nullptr;
    const int rc = ::getgrnam_r(run_as.group.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (found == nullptr) {
      m.diag().error(m.at("group"), m.path("group"),
                     "unknown group '" + run_as.group + "'" +
                         (rc != 0 ? " (" + std::string(std::strerror(rc)) + ")"
                                  : " (not in the group database)"));
      ok = false;
    } else {
      run_as.gid = entry.gr_gid;
      run_as.groups = {entry.gr_gid};  // the named group only
    }
  }
  if (ok) e.run_as = std::move(run_as);
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
  read_run_as(m, e);
  return e;
}

[[maybe_unused]] const bool exec_kind_registered = handler_registry().add(
    {core::ExecHandlerOptions::kKind,
     {"argv", "working_dir", "env_allow", "env", "max_output", "max_stderr", "kill_grace",
      "non_retryable_exit_codes", "metadata_env_prefix", "user", "group"},
     read_exec});

}  // namespace
}  // namespace troupe::handlers
