#include "handlers/exec/exec_handler.h"

// How a child is run (the choice the design leaves open):
//   posix_spawn (never a shell; argv[0] resolved via PATH by us, so "no such
//   program" is known before spawning) with POSIX_SPAWN_SETPGROUP (a new
//   process group per child, so a timeout kills everything the job started),
//   SETSIGDEF/SETSIGMASK (the child starts with default dispositions and an
//   empty mask whatever the daemon does), pipes made with O_CLOEXEC (so a
//   concurrent spawn on another thread never inherits them) and the child's
//   ends closed in the parent right after the spawn. The child gets stdin,
//   stdout and stderr only: every descriptor above 2 is closed in it
//   (posix_spawn_file_actions_addclosefrom_np, glibc >= 2.34).
//   Exit is awaited with a pidfd (pidfd_open, Linux >= 5.3) wrapped in an
//   asio stream_descriptor: it becomes readable when the child exits, so an
//   actor waiting on a child holds no thread and no SIGCHLD handler is needed.
//   The child is reaped with waitpid(pid) only once waitid(WNOWAIT) confirms
//   it exited (a pidfd wake-up alone is not trusted; see on_exit_readable).

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/utf8.h"

namespace troupe::core {
namespace {

namespace asio = boost::asio;
using Descriptor = asio::posix::stream_descriptor;

std::string errno_text(int err) {
  return std::system_category().message(err);
}

/// Owns a file descriptor until it is released or goes out of scope.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

/// Moves `fd` to a number >= 3 (keeping O_CLOEXEC), so that the dup2 onto
/// 0/1/2 in the child can never clobber another pipe end when the daemon runs
/// with a standard descriptor closed.
bool lift_above_stdio(UniqueFd& fd) {
  if (fd.get() > 2) return true;
  const int lifted = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, 3);
  if (lifted < 0) return false;
  fd = UniqueFd(lifted);
  return true;
}

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

/// A pipe with both ends O_CLOEXEC and numbered above stdio; errno on failure.
std::optional<Pipe> make_pipe(int& err) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    err = errno;
    return std::nullopt;
  }
  Pipe p{UniqueFd(fds[0]), UniqueFd(fds[1])};
  if (!lift_above_stdio(p.read) || !lift_above_stdio(p.write)) {
    err = errno;
    return std::nullopt;
  }
  return p;
}

/// The step at which a child started by fork_exec_as() failed.
enum ChildStep : int { kStepStdio = 1, kStepIds, kStepChdir, kStepExec };

/// posix_spawn cannot change the user, so a job with `user`/`group` is
/// started with fork + execve: the same child setup as the posix_spawn path
/// (new process group, stdio from the pipes, nothing else open, default
/// signal dispositions, empty mask), plus setgroups/setgid/setuid before the
/// chdir and the exec. Between fork and exec the child makes only
/// async-signal-safe calls and raw syscalls for the ids (glibc's wrappers
/// would try to apply them to threads the child does not have); everything
/// it reads was prepared before the fork. A failure before the exec comes
/// back through a close-on-exec pipe as {step, errno}. Returns 0 and sets
/// `pid`, or returns an errno and sets `step`.
int fork_exec_as(const ExecHandlerOptions::RunAs& run_as, const char* program,
                 const char* working_dir, const int stdio[3], char* const argv[],
                 char* const envp[], pid_t& pid, int& step) {
  int err = 0;
  auto report = make_pipe(err);
  if (!report) {
    step = kStepStdio;
    return err;
  }
  const int report_fd = report->write.get();
  const gid_t* groups = run_as.groups.data();
  const std::size_t group_count = run_as.groups.size();
  const pid_t child = ::fork();
  if (child < 0) {
    step = kStepStdio;
    return errno;
  }
  if (child == 0) {
    auto fail = [report_fd](int at) {
      const int message[2] = {at, errno};
      [[maybe_unused]] const ssize_t n = ::write(report_fd, message, sizeof message);
      ::_exit(127);
    };
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) {
      if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &default_action, nullptr);
    }
    ::setpgid(0, 0);
    for (int fd = 0; fd < 3; ++fd) {
      if (::dup2(stdio[fd], fd) < 0) fail(kStepStdio);
    }
    if (::syscall(SYS_setgroups, group_count, groups) != 0) fail(kStepIds);
    if (::syscall(SYS_setgid, run_as.gid) != 0) fail(kStepIds);
    if (::syscall(SYS_setuid, run_as.uid) != 0) fail(kStepIds);
    // As the job's user: a working_dir it may not enter is its failure.
    if (working_dir != nullptr && ::chdir(working_dir) != 0) fail(kStepChdir);
    ::syscall(SYS_close_range, 3u, static_cast<unsigned>(report_fd) - 1u, 0u);
    ::syscall(SYS_close_range, static_cast<unsigned>(report_fd) + 1u, ~0u, 0u);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(program, argv, envp);
    fail(kStepExec);
  }
  ::setpgid(child, child);  // also from here, so no kill(-pid) can miss the group
  report->write.reset();
  int message[2] = {0, 0};
  std::size_t got = 0;
  while (got < sizeof message) {
    const ssize_t n =
        ::read(report->read.get(), reinterpret_cast<char*>(message) + got, sizeof message - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the exec happened
    got += static_cast<std::size_t>(n);
  }
  if (got < sizeof message) {
    pid = child;
    return 0;
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  step = message[0];
  return message[1] != 0 ? message[1] : EIO;
}

std::string signal_name(int sig) {
  if (const char* abbrev = ::sigabbrev_np(sig)) return std::string("SIG") + abbrev;
  return "signal " + std::to_string(sig);
}

/// Metadata key -> environment variable suffix: [A-Z0-9_] only.
std::string sanitize_env_name(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  for (char c : key) {
    if (c >= 'a' && c <= 'z') {
      out.push_back(static_cast<char>(c - 'a' + 'A'));
    } else if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_') {
      out.push_back(c);
    } else {
      out.push_back('_');
    }
  }
  return out;
}

/// argv[0] as given when it has a slash; otherwise the first executable
/// regular file of that name along `path` (empty entries mean ".").
std::optional<std::string> resolve_program(const std::string& name, const std::string& path) {
  if (name.find('/') != std::string::npos) return name;
  std::size_t begin = 0;
  while (begin <= path.size()) {
    std::size_t end = path.find(':', begin);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(begin, end - begin);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    begin = end + 1;
  }
  return std::nullopt;
}

void ignore_sigpipe_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction current {};
    if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      struct sigaction ignore {};
      ignore.sa_handler = SIG_IGN;
      ::sigemptyset(&ignore.sa_mask);
      ::sigaction(SIGPIPE, &ignore, nullptr);
    }
  });
}

/// The process groups of this process's running exec children, for
/// kill_exec_process_groups(). A group is listed from its spawn until just
/// before its leader is reaped: while listed, the unreaped leader pins the
/// group id, so a kill through the list never reaches a recycled one.
/// Thread-safe; once killed, it kills every group added after too.
class LiveGroups {
 public:
  void add(pid_t group) {
    std::lock_guard lock(mutex_);
    if (killed_) {
      ::kill(-group, SIGKILL);
      return;
    }
    groups_.insert(group);
  }
  void remove(pid_t group) {
    std::lock_guard lock(mutex_);
    groups_.erase(group);
  }
  std::size_t kill_all() {
    std::lock_guard lock(mutex_);
    killed_ = true;
    for (const pid_t group : groups_) ::kill(-group, SIGKILL);
    return groups_.size();
  }

 private:
  std::mutex mutex_;
  std::unordered_set<pid_t> groups_;
  bool killed_ = false;
};

LiveGroups& live_groups() {
  // Never destroyed: attempts may outlive static destruction.
  static auto* groups = new LiveGroups();
  return *groups;
}

/// What every attempt of one handler shares: options and the environment
/// inherited from the daemon, captured once when the handler is built.
struct ExecConfig {
  ExecHandlerOptions options;
  std::map<std::string, std::string> base_env;  // PATH + env_allow + env
};

/// One running attempt: a child process, its three pipes and its pidfd. Lives
/// in a shared_ptr held by its pending operations. Every member function runs
/// on the actor's strand (`executor_`); `done` is invoked there exactly once.
class ExecAttempt : public std::enable_shared_from_this<ExecAttempt> {
 public:
  ExecAttempt(std::shared_ptr<const ExecConfig> config, asio::any_io_executor executor,
              Clock& clock, AttemptCallback done)
      : config_(std::move(config)),
        executor_(std::move(executor)),
        clock_(clock),
        done_(std::move(done)),
        stdin_(executor_),
        stdout_(executor_),
        stderr_(executor_),
        pidfd_(executor_) {}

  ExecAttempt(const ExecAttempt&) = delete;
  ExecAttempt& operator=(const ExecAttempt&) = delete;

  /// Only reached with a live child when the io_context was destroyed with
  /// the attempt pending: kill and reap it so nothing outlives the daemon.
  ~ExecAttempt() {
    if (pid_ > 0 && !reaped_) {
      ::kill(-pid_, SIGKILL);
      ::kill(pid_, SIGKILL);
      live_groups().remove(pid_);
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }

  void run(const AttemptContext& ctx) {
    payload_ = &ctx.payload;
    slot_ = ctx.cancellation;
    const ExecHandlerOptions& options = config_->options;

    std::map<std::string, std::string> env = config_->base_env;
    // Metadata never overrides a configured or inherited variable.
    for (const auto& [key, value] : ctx.metadata) {
      env.emplace(options.metadata_env_prefix + sanitize_env_name(key), value);
    }
    env.insert_or_assign("TROUPE_JOB_ID", ctx.id.to_string());
    env.insert_or_assign("TROUPE_ATTEMPT", std::to_string(ctx.attempt));
    if (ctx.fence_term != 0)
      env.insert_or_assign("TROUPE_FENCE_TERM", std::to_string(ctx.fence_term));

    const auto path_it = env.find("PATH");
    const std::string path = path_it == env.end() ? std::string() : path_it->second;
    const std::optional<std::string> program = resolve_program(options.argv.at(0), path);
    if (!program) {
      fail_early(FailureClass::kPermanent,
                 "exec: program '" + options.argv[0] + "' not found in PATH (" + path + ")");
      return;
    }
    program_ = *program;

    if (!spawn(env)) return;

    if (slot_.is_connected()) {
      // The cancellation handler only posts: emit() may run on any strand and
      // must not see the slot cleared from inside its own handler.
      slot_.assign([weak = weak_from_this(), ex = executor_](asio::cancellation_type type) {
        if (!type) return;
        asio::post(ex, [weak] {
          if (auto self = weak.lock()) self->cancel();
        });
      });
    }

    write_stdin();
    read_stdout();
    read_stderr();
    wait_exit();
  }

 private:
  static constexpr std::size_t kChunk = 64 * 1024;

  bool spawn(const std::map<std::string, std::string>& env) {
    const ExecHandlerOptions& options = config_->options;
    int err = 0;
    auto in = make_pipe(err);
    auto out = in ? make_pipe(err) : std::nullopt;
    auto errp = out ? make_pipe(err) : std::nullopt;
    if (!errp) {
      fail_early(FailureClass::kRetryable, "exec: cannot create pipes: " + errno_text(err));
      return false;
    }

    std::vector<std::string> env_strings;
    env_strings.reserve(env.size());
    for (const auto& [key, value] : env) env_strings.push_back(key + "=" + value);
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv_strings = options.argv;
    std::vector<char*> argv;
    for (auto& s : argv_strings) argv.push_back(s.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawnattr_init(&attr);
    ::posix_spawn_file_actions_adddup2(&actions, in->read.get(), STDIN_FILENO);
    ::posix_spawn_file_actions_adddup2(&actions, out->write.get(), STDOUT_FILENO);
    ::posix_spawn_file_actions_adddup2(&actions, errp->write.get(), STDERR_FILENO);
    // Nothing else reaches the job: not what trouped inherited from its
    // parent, nor a descriptor another thread opened without close-on-exec.
    ::posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
    if (!options.working_dir.empty()) {
      ::posix_spawn_file_actions_addchdir_np(&actions, options.working_dir.c_str());
    }
    sigset_t all;
    sigset_t none;
    ::sigfillset(&all);
    ::sigemptyset(&none);
    ::posix_spawnattr_setflags(
        &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    ::posix_spawnattr_setpgroup(&attr, 0);  // the child leads a new group: pgid == pid
    ::posix_spawnattr_setsigdefault(&attr, &all);
    ::posix_spawnattr_setsigmask(&attr, &none);

    pid_t pid = 0;
    int rc = 0;
    int step = kStepExec;
    if (options.run_as) {
      const int stdio[3] = {in->read.get(), out->write.get(), errp->write.get()};
      rc = fork_exec_as(*options.run_as, program_.c_str(),
                        options.working_dir.empty() ? nullptr : options.working_dir.c_str(), stdio,
                        argv.data(), envp.data(), pid, step);
    } else {
      rc = ::posix_spawn(&pid, program_.c_str(), &actions, &attr, argv.data(), envp.data());
    }
    ::posix_spawn_file_actions_destroy(&actions);
    ::posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      std::string where =
          options.working_dir.empty() ? "" : " in working_dir '" + options.working_dir + "'";
      if (step == kStepIds) {
        const auto& run_as = *options.run_as;
        where = " as uid " + std::to_string(run_as.uid) + " gid " + std::to_string(run_as.gid);
      }
      fail_early(FailureClass::kPermanent,
                 "exec: cannot start '" + program_ + "'" + where + ": " + errno_text(rc));
      return false;
    }
    pid_ = pid;
    live_groups().add(pid_);
    // The child's ends close here (UniqueFd), so EOF reaches us when it exits.
    in->read.reset();
    out->write.reset();
    errp->write.reset();

    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    if (pidfd < 0) {
      const int pidfd_err = errno;
      ::kill(-pid_, SIGKILL);
      live_groups().remove(pid_);
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      reaped_ = true;
      fail_early(FailureClass::kRetryable,
                 "exec: pidfd_open failed (Linux >= 5.3 required): " + errno_text(pidfd_err));
      return false;
    }
    pidfd_.assign(pidfd);
    stdin_.assign(in->write.release());
    stdout_.assign(out->read.release());
    stderr_.assign(errp->read.release());
    // Completions must never block the io_context.
    stdin_.non_blocking(true);
    stdout_.non_blocking(true);
    stderr_.non_blocking(true);
    return true;
  }

  void write_stdin() {
    if (payload_->empty()) {
      close_stdin();
      return;
    }
    asio::async_write(stdin_, asio::buffer(*payload_),
                      [self = shared_from_this()](const boost::system::error_code&, std::size_t) {
                        // EPIPE: the child exited or closed stdin without
                        // reading everything; its exit status tells the story.
                        self->close_stdin();
                      });
  }

  void close_stdin() {
    boost::system::error_code ignored;
    stdin_.close(ignored);
    stdin_done_ = true;
    maybe_finish();
  }

  void read_stdout() {
    stdout_.async_read_some(asio::buffer(stdout_chunk_),
                            [self = shared_from_this()](const boost::system::error_code& ec,
                                                        std::size_t n) { self->on_stdout(ec, n); });
  }

  void on_stdout(const boost::system::error_code& ec, std::size_t n) {
    if (n > 0 && !overflow_) {
      const std::size_t limit = config_->options.max_output;
      if (output_.size() + n > limit) {
        overflow_ = true;
        // Closing our end makes the child's next write fail (EPIPE/SIGPIPE),
        // and the group is terminated as on cancellation.
        boost::system::error_code ignored;
        stdout_.close(ignored);
        stdout_done_ = true;
        terminate();
        maybe_finish();
        return;
      }
      output_.append(stdout_chunk_.data(), n);
    }
    if (ec) {
      boost::system::error_code ignored;
      stdout_.close(ignored);
      stdout_done_ = true;
      maybe_finish();
      return;
    }
    read_stdout();
  }

  void read_stderr() {
    stderr_.async_read_some(asio::buffer(stderr_chunk_),
                            [self = shared_from_this()](const boost::system::error_code& ec,
                                                        std::size_t n) { self->on_stderr(ec, n); });
  }

  void on_stderr(const boost::system::error_code& ec, std::size_t n) {
    if (n > 0) {
      // Keep the tail: the last lines usually say what went wrong.
      stderr_text_.append(stderr_chunk_.data(), n);
      const std::size_t limit = config_->options.max_stderr;
      if (stderr_text_.size() > limit) {
        // Cut where a character starts, so UTF-8 stays UTF-8.
        const std::size_t drop = stderr_text_.size() - utf8_suffix(stderr_text_, limit).size();
        stderr_dropped_ += drop;
        stderr_text_.erase(0, drop);
      }
    }
    if (ec) {
      boost::system::error_code ignored;
      stderr_.close(ignored);
      stderr_done_ = true;
      maybe_finish();
      return;
    }
    read_stderr();
  }

  /// True once the child has exited (a zombie waiting to be reaped); does
  /// not reap it.
  bool child_exited() const {
    siginfo_t info{};
    return ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
           info.si_pid != 0;
  }

  void wait_exit() {
    pidfd_.async_wait(Descriptor::wait_read,
                      [self = shared_from_this()](const boost::system::error_code& ec) {
                        self->on_exit_readable(ec);
                      });
    // asio waits (unlike reads) are not speculative and the pidfd is
    // edge-triggered: if the child exited before the wait was queued, another
    // io thread may already have taken the only edge. Look once, now that the
    // wait is queued.
    if (child_exited()) {
      asio::post(executor_, [self = shared_from_this()] { self->on_exit_readable({}); });
    }
  }

  void on_exit_readable(const boost::system::error_code& ec) {
    if (ec == asio::error::operation_aborted || reaped_) return;
    // The wake-up may be spurious: an epoll registration of a pidfd another
    // actor closed while a concurrent posix_spawn child still held a copy
    // outlives the close and can fire on asio's recycled state for ours.
    // Trust only waitid.
    if (!child_exited()) {
      wait_exit();
      return;
    }
    // Whatever is left in the child's group is an orphan of this job: kill it
    // while the zombie leader still pins the group id, then reap the leader
    // (it has exited: this does not block).
    ::kill(-pid_, SIGKILL);
    live_groups().remove(pid_);
    int status = 0;
    pid_t r = 0;
    do {
      r = ::waitpid(pid_, &status, 0);
    } while (r < 0 && errno == EINTR);
    reaped_ = true;
    wait_status_ = status;
    if (r < 0) wait_status_.reset();  // someone else reaped it (ECHILD)
    boost::system::error_code ignored;
    pidfd_.close(ignored);
    if (kill_timer_) kill_timer_->cancel();
    if (!(stdin_done_ && stdout_done_ && stderr_done_)) {
      // A descendant that left the group may still hold a pipe: drain for at
      // most kill_grace, then close our ends.
      drain_timer_ = clock_.make_timer(executor_);
      drain_timer_->wait(config_->options.kill_grace, [self = shared_from_this()](bool fired) {
        if (fired) self->close_pipes();
      });
    }
    maybe_finish();
  }

  void close_pipes() {
    boost::system::error_code ignored;
    // Closing cancels pending operations; their handlers mark them done.
    stdin_.close(ignored);
    stdout_.close(ignored);
    stderr_.close(ignored);
  }

  void cancel() {
    if (finished_ || cancelled_) return;
    cancelled_ = true;
    terminate();
  }

  /// SIGTERM to the group now, SIGKILL after kill_grace; after the exit, just
  /// stop waiting for output.
  void terminate() {
    if (reaped_) {
      close_pipes();
      return;
    }
    if (kill_timer_) return;  // already terminating
    ::kill(-pid_, SIGTERM);
    ::kill(pid_, SIGTERM);  // in case the child moved itself to another group
    kill_timer_ = clock_.make_timer(executor_);
    kill_timer_->wait(config_->options.kill_grace, [self = shared_from_this()](bool fired) {
      if (fired && !self->reaped_) {
        ::kill(-self->pid_, SIGKILL);
        ::kill(self->pid_, SIGKILL);
      }
    });
  }

  void maybe_finish() {
    if (finished_ || !reaped_ || !stdin_done_ || !stdout_done_ || !stderr_done_) return;
    if (drain_timer_) drain_timer_->cancel();
    if (kill_timer_) kill_timer_->cancel();
    finish(make_result());
  }

  AttemptResult make_result() {
    const ExecHandlerOptions& options = config_->options;
    const std::string how = wait_status_ ? describe_exit(*wait_status_) : "was reaped elsewhere";
    if (cancelled_) {
      return AttemptResult::failed(FailureClass::kCancelled,
                                   "exec: cancelled; process group terminated (" + how + ")");
    }
    if (overflow_) {
      return AttemptResult::failed(
          FailureClass::kPermanent,
          "exec: output exceeded max_output (" + std::to_string(options.max_output) +
              " bytes); process terminated. Raise max_output or make the program print less.");
    }
    if (!wait_status_) {
      return AttemptResult::failed(FailureClass::kRetryable,
                                   "exec: '" + program_ + "' " + how + with_stderr());
    }
    const FailureClass cls = classify_exit(options, *wait_status_);
    if (cls == FailureClass::kNone) return AttemptResult::success(std::move(output_));
    return AttemptResult::failed(cls, "exec: '" + program_ + "' " + how + with_stderr());
  }

  std::string with_stderr() const {
    if (stderr_text_.empty()) return "";
    std::string out = "; stderr";
    if (stderr_dropped_ > 0) {
      out += " (last " + std::to_string(stderr_text_.size()) + " bytes, " +
             std::to_string(stderr_dropped_) + " dropped)";
    }
    return out + ": " + stderr_text_;
  }

  /// A failure before any asynchronous work started: complete from the
  /// strand, never from inside start().
  void fail_early(FailureClass cls, std::string why) {
    asio::post(executor_, [self = shared_from_this(), cls, why = std::move(why)]() mutable {
      self->finish(AttemptResult::failed(cls, std::move(why)));
    });
  }

  void finish(AttemptResult result) {
    if (finished_) return;
    finished_ = true;
    // Before done: the runtime may destroy the signal once it has the result.
    if (slot_.is_connected()) slot_.clear();
    AttemptCallback done = std::move(done_);
    done(std::move(result));
  }

  std::shared_ptr<const ExecConfig> config_;
  asio::any_io_executor executor_;
  Clock& clock_;
  AttemptCallback done_;
  asio::cancellation_slot slot_;
  const std::string* payload_ = nullptr;  // valid until done_ is invoked
  std::string program_;

  Descriptor stdin_;
  Descriptor stdout_;
  Descriptor stderr_;
  Descriptor pidfd_;
  pid_t pid_ = -1;
  std::unique_ptr<Timer> kill_timer_;
  std::unique_ptr<Timer> drain_timer_;

  std::array<char, kChunk> stdout_chunk_{};
  std::array<char, kChunk> stderr_chunk_{};
  std::string output_;
  std::string stderr_text_;
  std::size_t stderr_dropped_ = 0;
  std::optional<int> wait_status_;

  bool stdin_done_ = false;
  bool stdout_done_ = false;
  bool stderr_done_ = false;
  bool reaped_ = false;
  bool overflow_ = false;
  bool cancelled_ = false;
  bool finished_ = false;
};

/// One per actor; holds only configuration (attempts own their processes).
class ExecHandler final : public Handler {
 public:
  ExecHandler(std::shared_ptr<const ExecConfig> config, asio::any_io_executor executor,
              Clock& clock)
      : config_(std::move(config)), executor_(std::move(executor)), clock_(clock) {}

  void start(const AttemptContext& ctx, AttemptCallback done) override {
    auto attempt = std::make_shared<ExecAttempt>(config_, executor_, clock_, std::move(done));
    attempt->run(ctx);
  }

 private:
  std::shared_ptr<const ExecConfig> config_;
  asio::any_io_executor executor_;
  Clock& clock_;
};

}  // namespace

FailureClass classify_exit(const ExecHandlerOptions& options, int wait_status) {
  if (WIFEXITED(wait_status)) {
    const int code = WEXITSTATUS(wait_status);
    if (code == 0) return FailureClass::kNone;
    const auto& permanent = options.non_retryable_exit_codes;
    if (std::find(permanent.begin(), permanent.end(), code) != permanent.end()) {
      return FailureClass::kPermanent;
    }
    return FailureClass::kRetryable;
  }
  // Killed by a signal trouped did not send (those for a timeout, a cancel or
  // max_output are classified before this is asked): its process died.
  return FailureClass::kCrash;
}

std::string describe_exit(int wait_status) {
  if (WIFEXITED(wait_status))
    return "exited with status " + std::to_string(WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    std::string out = "killed by " + signal_name(WTERMSIG(wait_status));
    if (WCOREDUMP(wait_status)) out += " (core dumped)";
    return out;
  }
  return "ended with wait status " + std::to_string(wait_status);
}

std::size_t kill_exec_process_groups() {
  return live_groups().kill_all();
}

std::unique_ptr<Handler> make_exec_handler(const ExecHandlerOptions& options,
                                           boost::asio::any_io_executor actor_executor,
                                           Clock& clock) {
  ignore_sigpipe_once();
  auto config = std::make_shared<ExecConfig>();
  config->options = options;
  if (config->options.argv.empty()) config->options.argv.push_back("");  // fails per attempt
  if (const char* path = std::getenv("PATH")) config->base_env["PATH"] = path;
  for (const auto& name : options.env_allow) {
    if (const char* value = std::getenv(name.c_str())) config->base_env[name] = value;
  }
  for (const auto& [key, value] : options.env) config->base_env.insert_or_assign(key, value);
  return std::make_unique<ExecHandler>(std::move(config), std::move(actor_executor), clock);
}

}  // namespace troupe::core
