// Drives the real trouped binary: command line, --check-config, and a clean
// stop on SIGTERM/SIGINT.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Generous: the binary answers in milliseconds, but CI machines are shared.
constexpr auto kDeadline = 20s;

/// A trouped child process with its stdout and stderr captured through pipes.
/// Single-threaded: used only from the test body.
class Trouped {
 public:
  explicit Trouped(const std::vector<std::string>& args) {
    int out_pipe[2];
    int err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2 failed";
      return;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
    std::vector<std::string> storage = {TROUPED_BINARY};
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& arg : storage) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, TROUPED_BINARY, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out_pipe[1]);
    close(err_pipe[1]);
    out_fd_ = out_pipe[0];
    err_fd_ = err_pipe[0];
    if (rc != 0) {
      ADD_FAILURE() << "posix_spawn failed: " << rc;
      pid_ = -1;
    }
  }

  ~Trouped() {
    if (pid_ > 0) {  // a test failed half-way: never leave the child behind
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) close(out_fd_);
    if (err_fd_ >= 0) close(err_fd_);
  }

  Trouped(const Trouped&) = delete;
  Trouped& operator=(const Trouped&) = delete;

  /// Reads output until `done()` holds or both pipes close; false on timeout.
  bool read_until(const std::function<bool()>& done, Clock::time_point deadline) {
    while (!done()) {
      std::array<pollfd, 2> fds{};
      nfds_t count = 0;
      for (const int fd : {out_fd_, err_fd_}) {
        if (fd >= 0) fds[count++] = pollfd{fd, POLLIN, 0};
      }
      if (count == 0) return done();
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left <= 0ms) return false;
      if (poll(fds.data(), count, static_cast<int>(left.count())) < 0) return false;
      for (nfds_t i = 0; i < count; ++i) {
        if (fds[i].revents == 0) continue;
        const bool is_out = fds[i].fd == out_fd_;
        char buffer[4096];
        const ssize_t n = read(fds[i].fd, buffer, sizeof buffer);
        if (n > 0) {
          (is_out ? out_ : err_).append(buffer, static_cast<std::size_t>(n));
        } else {
          close(fds[i].fd);
          (is_out ? out_fd_ : err_fd_) = -1;
        }
      }
    }
    return true;
  }

  /// Reads everything until the child closes its output, then reaps it.
  /// Returns the exit code, or -1 (with a test failure) on timeout or signal.
  int wait(Clock::time_point deadline) {
    const bool closed = read_until([this] { return out_fd_ < 0 && err_fd_ < 0; }, deadline);
    if (!closed) {
      ADD_FAILURE() << "trouped did not exit in time; stderr so far:\n" << err_;
      return -1;
    }
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    if (!WIFEXITED(status)) {
      ADD_FAILURE() << "trouped died of signal " << WTERMSIG(status);
      return -1;
    }
    return WEXITSTATUS(status);
  }

  void signal(int number) { kill(pid_, number); }
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;
  std::string err_;
};

struct Finished {
  int exit_code;
  std::string out;
  std::string err;
};

Finished run(const std::vector<std::string>& args) {
  Trouped child(args);
  const int code = child.wait(Clock::now() + kDeadline);
  return {code, child.out(), child.err()};
}

/// A config file in the temp directory, removed when the test ends.
class TempFile {
 public:
  explicit TempFile(std::string_view contents) {
    static std::atomic<int> counter{0};
    path_ =
        std::filesystem::temp_directory_path() / ("trouped_cli_test_" + std::to_string(getpid()) +
                                                  "_" + std::to_string(counter++) + ".yaml");
    std::ofstream(path_) << contents;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

// Addresses on port 0 so the test still passes once --config really listens.
constexpr std::string_view kRunnableConfig = R"(server:
  grpc_address: 127.0.0.1:0
  metrics_address: 127.0.0.1:0
logging: {level: info, format: LOG_FORMAT}
troupes:
  - name: first
    handler: {kind: builtin, name: echo}
  - name: second
    mode: fixed
    actors: 2
    handler: {kind: exec, argv: [tr, a-z, A-Z]}
  - name: quoting
    handler: {kind: exec, argv: [echo, 'say "hi" \ bye']}
)";

std::string runnable_config(std::string_view format) {
  std::string text(kRunnableConfig);
  text.replace(text.find("LOG_FORMAT"), std::string_view("LOG_FORMAT").size(), format);
  return text;
}

TEST(Cli, VersionPrintsTheProjectVersion) {
  const Finished result = run({"--version"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out, "trouped " TROUPE_PROJECT_VERSION "\n");
  EXPECT_EQ(result.err, "");
}

TEST(Cli, HelpDocumentsEveryCommandAndExitCode) {
  const Finished result = run({"--help"});
  EXPECT_EQ(result.exit_code, 0);
  for (const char* part : {"--config FILE", "--check-config FILE", "--version", "--help",
                           "Exit codes:", "  0  ", "  1  ", "  2  "}) {
    EXPECT_TRUE(contains(result.out, part)) << part << " missing from:\n" << result.out;
  }
}

TEST(Cli, UnknownFlagIsAUsageError) {
  const Finished result = run({"--frobnicate"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_TRUE(contains(result.err, "unknown option '--frobnicate'")) << result.err;
  EXPECT_TRUE(contains(result.err, "Usage:")) << result.err;
  EXPECT_EQ(result.out, "");
}

TEST(Cli, MissingArgumentsAreUsageErrors) {
  EXPECT_EQ(run({}).exit_code, 2);
  const Finished no_file = run({"--config"});
  EXPECT_EQ(no_file.exit_code, 2);
  EXPECT_TRUE(contains(no_file.err, "--config needs a FILE argument")) << no_file.err;
  const Finished both = run({"--config", "a.yaml", "--check-config", "b.yaml"});
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_TRUE(contains(both.err, "exactly one")) << both.err;
}

TEST(Cli, UnreadableFileIsNamedAndExitsTwo) {
  const std::string path = "/nonexistent/dir/trouped.yaml";
  for (const char* flag : {"--check-config", "--config"}) {
    const Finished result = run({flag, path});
    EXPECT_EQ(result.exit_code, 2) << flag;
    EXPECT_TRUE(contains(result.err, path + ": cannot read config file: No such file or directory"))
        << result.err;
  }
}

TEST(Cli, CheckConfigSummarisesTheShippedConfig) {
  const Finished result = run({"--check-config", TROUPE_SHIPPED_CONFIG});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.err, "");
  EXPECT_TRUE(contains(result.out, std::string(TROUPE_SHIPPED_CONFIG) + ": OK")) << result.out;
  const auto loaded = troupe::config::load_file(TROUPE_SHIPPED_CONFIG);
  ASSERT_TRUE(loaded.config.has_value());
  ASSERT_FALSE(loaded.config->troupes.empty());
  const auto lines = lines_of(result.out);
  for (const auto& troupe : loaded.config->troupes) {
    const std::string row = "  " + troupe.name + " ";
    const bool listed = std::any_of(lines.begin(), lines.end(),
                                    [&](const std::string& line) { return line.starts_with(row); });
    EXPECT_TRUE(listed) << troupe.name << " missing from:\n" << result.out;
  }
}

TEST(Cli, CheckConfigPrintsEveryErrorOnItsOwnLine) {
  const TempFile file(R"(server:
  threads: many
troupes:
  - name: a
    timeout: 5
    handler: {kind: builtin, name: echo}
  - name: a
    actors: {min: 4, max: 2}
    handler: {kind: exec, argv: [cat], url: "http://x/"}
)");
  const Finished result = run({"--check-config", file.path()});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_EQ(result.out, "");
  const std::vector<std::string> expected = {
      file.path() + ":2:12: server.threads: expected a whole number, got \"many\"",
      file.path() +
          ":5:14: troupes[0].timeout: \"5\" has no unit; write e.g. \"5s\" or \"5ms\" (units ns, "
          "us, ms, s, m, h)",
      file.path() +
          ":7:11: troupes[1].name: duplicate troupe name \"a\": troupes[0].name (line 4) already "
          "uses it; names must be unique",
      file.path() + ":8:19: troupes[1].actors.min: min (4) is greater than max (2)",
      file.path() +
          ":9:40: troupes[1].handler.url: 'url' belongs to handler kind 'http', not 'exec'",
      file.path() + ": 5 errors; nothing was started",
  };
  EXPECT_EQ(lines_of(result.err), expected);
}

TEST(Cli, RunWithABadConfigExitsTwoWithoutStarting) {
  const TempFile file("troupes:\n  - name: x\n");
  const Finished result = run({"--config", file.path()});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_TRUE(contains(result.err, file.path() + ":2:5: troupes[0].handler: missing"))
      << result.err;
  EXPECT_FALSE(contains(result.err, "ready")) << result.err;
}

/// Starts trouped on `config`, waits for its ready line, sends `signal_number`
/// and expects a clean exit.
void run_until_signal(const std::string& format, int signal_number) {
  const TempFile file(runnable_config(format));
  Trouped child({"--config", file.path()});
  const auto deadline = Clock::now() + kDeadline;
  ASSERT_TRUE(child.read_until([&] { return contains(child.err(), "ready"); }, deadline))
      << "no ready line; stderr:\n"
      << child.err();
  child.signal(signal_number);
  EXPECT_EQ(child.wait(deadline), 0) << child.err();
  EXPECT_TRUE(contains(child.err(), "hosting troupe first:")) << child.err();
  EXPECT_TRUE(contains(child.err(), "hosting troupe second:")) << child.err();
  EXPECT_TRUE(contains(child.err(), "stopping")) << child.err();
  EXPECT_EQ(child.out(), "");
}

TEST(Cli, ConfigRunsUntilSigtermAndExitsZero) {
  run_until_signal("text", SIGTERM);
}

TEST(Cli, ConfigRunsUntilSigintAndExitsZero) {
  run_until_signal("text", SIGINT);
}

TEST(Cli, JsonLoggingWritesOneObjectPerLine) {
  const TempFile file(runnable_config("json"));
  Trouped child({"--config", file.path()});
  const auto deadline = Clock::now() + kDeadline;
  ASSERT_TRUE(child.read_until([&] { return contains(child.err(), "ready"); }, deadline))
      << child.err();
  child.signal(SIGTERM);
  EXPECT_EQ(child.wait(deadline), 0);
  const auto lines = lines_of(child.err());
  ASSERT_GE(lines.size(), 4u) << child.err();
  for (const auto& line : lines) {
    EXPECT_TRUE(line.starts_with(R"({"ts":")")) << line;
    EXPECT_TRUE(contains(line, R"(","level":"info",)")) << line;
    EXPECT_TRUE(contains(line, R"(,"msg":")")) << line;
    EXPECT_TRUE(line.ends_with("\"}")) << line;
  }
  // Quotes and backslashes in a message are escaped, so each line stays one
  // JSON object.
  EXPECT_TRUE(contains(child.err(), R"(handler exec echo say \"hi\" \\ bye,)")) << child.err();
}

}  // namespace
