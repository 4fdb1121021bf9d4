#pragma once

// Runs a program the way a test needs to: argv without a shell, stdin from a
// string, stdout and stderr captured apart, a bound on run time after which
// the whole process group is killed. Shared by the unit tests of the tools
// and the integration tests of trouped, troupectl and troupe-bench.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <ostream>
#include <string>
#include <vector>

namespace troupe::test {

using namespace std::chrono_literals;

struct ProcessOptions {
  /// argv[0] is the program: a path, or a name looked up in PATH.
  std::vector<std::string> argv = {};
  /// Added to (and overriding) the inherited environment.
  std::map<std::string, std::string> env = {};
  /// The child's whole stdin (a memory file); empty = /dev/null.
  std::string stdin_text = {};
  /// From the spawn; when it passes, the child's process group is SIGKILLed.
  std::chrono::milliseconds time_limit = 60s;
};

/// How a child ended and what it wrote.
struct ProcessResult {
  int exit_code = -1;       ///< its exit status; -1 unless it exited by itself
  int term_signal = 0;      ///< the signal that ended it, 0 if it exited
  bool timed_out = false;   ///< it was killed because the time limit passed
  std::string spawn_error;  ///< non-empty when it could not be started
  std::string out;
  std::string err;

  /// "exit 3", "signal 9 (time limit passed)", "spawn failed: ...".
  std::string describe() const;
};

/// Prints describe() and stderr, for test failure messages.
std::ostream& operator<<(std::ostream& os, const ProcessResult& result);

/// Starts argv (argv[0] a path, or a name looked up in PATH) in a process
/// group of its own, with no signal blocked and SIGPIPE, SIGINT, SIGTERM,
/// SIGHUP and SIGCHLD at their defaults, the inherited environment plus
/// `env`, and the given descriptors as its stdin (-1: /dev/null), stdout and
/// stderr. No other descriptor of the test process reaches it, except
/// `inherited_fd` (when >= 0) as its descriptor 3 (without close-on-exec).
/// Returns its pid, or -1 with `error` saying why.
pid_t spawn_in_own_group(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env, int stdin_fd, int stdout_fd,
                         int stderr_fd, std::string& error, int inherited_fd = -1);

/// One child process in its own process group, with stdout and stderr on
/// pipes. Single-threaded: all methods run on the test's thread and block
/// (on poll, never in a sleep) at most until the time limit. The destructor
/// SIGKILLs the process group if the child still runs, and reaps it.
class ChildProcess {
 public:
  /// Spawns at once; a failure is reported by result().spawn_error.
  explicit ChildProcess(ProcessOptions options);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  bool started() const { return result_.spawn_error.empty(); }
  pid_t pid() const { return pid_; }
  void send_signal(int signo) const;

  /// Reads output until `done()` holds; false when the time limit passes, or
  /// the child exits and closes its output, first.
  bool read_until(const std::function<bool()>& done);

  /// Reads until the child has exited and closed its output. When the time
  /// limit passes first, kills the process group and says so in the result.
  const ProcessResult& wait();

  /// Output so far.
  const std::string& out() const { return result_.out; }
  const std::string& err() const { return result_.err; }

 private:
  /// One poll round on the pipes and the pidfd; false when the time limit
  /// passed or nothing is left to wait for.
  bool pump();
  void kill_group();
  void reap(int options);

  std::chrono::steady_clock::time_point deadline_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  bool reaped_ = false;
  ProcessResult result_;
};

/// Runs `options.argv` to the end (or the time limit) and returns the result.
ProcessResult run_process(ProcessOptions options);

}  // namespace troupe::test
