#include "tests/support/run_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

extern char** environ;

namespace troupe::test {
namespace {

std::string errno_text(const char* what, int error) {
  return std::string(what) + ": " + std::strerror(error);
}

/// The inherited environment with `overrides` replacing or adding entries.
std::vector<std::string> merged_environment(const std::map<std::string, std::string>& overrides) {
  std::vector<std::string> entries;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    if (!overrides.contains(entry.substr(0, entry.find('=')))) entries.push_back(entry);
  }
  for (const auto& [name, value] : overrides) entries.push_back(name + "=" + value);
  return entries;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (auto& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

/// A memory file holding `text`, positioned at its start; -1 on failure.
int memory_file(const std::string& text) {
  const int fd = ::memfd_create("stdin", MFD_CLOEXEC);
  if (fd < 0) return -1;
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return -1;
    }
    written += static_cast<std::size_t>(n);
  }
  ::lseek(fd, 0, SEEK_SET);
  return fd;
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

std::string ProcessResult::describe() const {
  if (!spawn_error.empty()) return "spawn failed: " + spawn_error;
  if (term_signal != 0) {
    return "signal " + std::to_string(term_signal) + (timed_out ? " (time limit passed)" : "");
  }
  return "exit " + std::to_string(exit_code);
}

std::ostream& operator<<(std::ostream& os, const ProcessResult& result) {
  return os << result.describe() << "; stderr:\n" << result.err;
}

pid_t spawn_in_own_group(const std::vector<std::string>& argv_strings,
                         const std::map<std::string, std::string>& env, int stdin_fd, int stdout_fd,
                         int stderr_fd, std::string& error, int inherited_fd) {
  if (argv_strings.empty()) {
    error = "empty argv";
    return -1;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (stdin_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, stdin_fd, STDIN_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&actions, stdout_fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, stderr_fd, STDERR_FILENO);
  // dup2 clears close-on-exec on the copy (also when inherited_fd is 3).
  if (inherited_fd >= 0) posix_spawn_file_actions_adddup2(&actions, inherited_fd, 3);
  posix_spawn_file_actions_addclosefrom_np(&actions, inherited_fd >= 0 ? 4 : 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own process group, so a kill reaches whatever it started; no signal
  // blocked or ignored that the test runner happens to block or ignore.
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (const int signo : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaddset(&defaults, signo);
  posix_spawnattr_setsigdefault(&attr, &defaults);

  auto env_strings = merged_environment(env);
  auto envp = c_strings(env_strings);
  auto argv_copy = argv_strings;
  auto argv = c_strings(argv_copy);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    error = errno_text(("posix_spawnp " + argv_strings[0]).c_str(), rc);
    return -1;
  }
  return pid;
}

ChildProcess::ChildProcess(ProcessOptions options)
    : deadline_(std::chrono::steady_clock::now() + options.time_limit) {
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    result_.spawn_error = errno_text("pipe2", errno);
    return;
  }
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    result_.spawn_error = errno_text("pipe2", errno);
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return;
  }
  out_fd_ = out_pipe[0];
  err_fd_ = err_pipe[0];
  // Our ends never block: a final drain after a kill must not hang on output
  // held open by a process that left the group.
  ::fcntl(out_fd_, F_SETFL, O_NONBLOCK);
  ::fcntl(err_fd_, F_SETFL, O_NONBLOCK);
  int stdin_fd = -1;
  if (!options.stdin_text.empty()) {
    stdin_fd = memory_file(options.stdin_text);
    if (stdin_fd < 0) result_.spawn_error = errno_text("memfd for stdin", errno);
  }

  if (result_.spawn_error.empty()) {
    pid_ = spawn_in_own_group(options.argv, options.env, stdin_fd, out_pipe[1], err_pipe[1],
                              result_.spawn_error);
  }
  close_fd(stdin_fd);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (pid_ <= 0) {
    close_fd(out_fd_);
    close_fd(err_fd_);
    return;
  }
  // Exit is awaited with a pidfd in the same poll as the pipes: no polling
  // loop, no blocking waitpid that the time limit could not interrupt.
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  if (pidfd_ < 0) {
    result_.spawn_error = errno_text("pidfd_open (Linux >= 5.3 required)", errno);
    kill_group();
    reap(0);
  }
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !reaped_) {
    kill_group();
    reap(0);
  }
  close_fd(pidfd_);
  close_fd(out_fd_);
  close_fd(err_fd_);
}

void ChildProcess::send_signal(int signo) const {
  if (pid_ > 0 && !reaped_) ::kill(pid_, signo);
}

void ChildProcess::kill_group() {
  if (pid_ <= 0) return;
  ::kill(-pid_, SIGKILL);
  if (!reaped_) ::kill(pid_, SIGKILL);
}

void ChildProcess::reap(int options) {
  int status = 0;
  pid_t rc;
  do {
    rc = ::waitpid(pid_, &status, options);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0 && errno == ECHILD) {
    // Reaped elsewhere (SIGCHLD ignored by the test program): it is gone,
    // how it ended is unknown.
    reaped_ = true;
    close_fd(pidfd_);
    return;
  }
  if (rc != pid_) return;  // WNOHANG and still running
  reaped_ = true;
  close_fd(pidfd_);
  if (WIFEXITED(status)) {
    result_.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result_.term_signal = WTERMSIG(status);
  }
}

bool ChildProcess::pump() {
  std::array<pollfd, 3> fds{};
  nfds_t count = 0;
  for (const int fd : {out_fd_, err_fd_, pidfd_}) {
    if (fd >= 0) fds[count++] = pollfd{fd, POLLIN, 0};
  }
  if (count == 0) return false;
  const auto left = deadline_ - std::chrono::steady_clock::now();
  if (left <= 0ms) return false;
  // Rounded up, so a sub-millisecond remainder does not spin with timeout 0.
  const auto left_ms = std::chrono::ceil<std::chrono::milliseconds>(left);
  if (::poll(fds.data(), count, static_cast<int>(left_ms.count())) < 0) {
    return errno == EINTR;
  }
  for (nfds_t i = 0; i < count; ++i) {
    if (fds[i].revents == 0) continue;
    if (fds[i].fd == pidfd_) {
      reap(WNOHANG);
      continue;
    }
    const bool is_out = fds[i].fd == out_fd_;
    char buffer[4096];
    const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
    if (n > 0) {
      (is_out ? result_.out : result_.err).append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
      close_fd(is_out ? out_fd_ : err_fd_);
    }
  }
  return true;
}

bool ChildProcess::read_until(const std::function<bool()>& done) {
  while (!done()) {
    if (!pump()) return done();
  }
  return true;
}

const ProcessResult& ChildProcess::wait() {
  while (pump()) {
  }
  if (pid_ <= 0) return result_;
  if (!reaped_ || out_fd_ >= 0 || err_fd_ >= 0) {
    // Time is up: the child, or something it started that still holds its
    // output, is killed. Whatever was written before stays in the result.
    result_.timed_out = !reaped_;
    kill_group();
    if (!reaped_) reap(0);
    for (int* fd : {&out_fd_, &err_fd_}) {
      std::string& sink = fd == &out_fd_ ? result_.out : result_.err;
      char buffer[4096];
      ssize_t n;
      while (*fd >= 0 && (n = ::read(*fd, buffer, sizeof buffer)) > 0) {
        sink.append(buffer, static_cast<std::size_t>(n));
      }
      close_fd(*fd);
    }
  }
  return result_;
}

ProcessResult run_process(ProcessOptions options) {
  ChildProcess child(std::move(options));
  return child.wait();
}

}  // namespace troupe::test
