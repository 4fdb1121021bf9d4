// Drives the real trouped binary: command line, --check-config, and a clean
// stop on SIGTERM/SIGINT.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "tests/support/run_process.h"

namespace {

using namespace std::chrono_literals;

// Generous: the binary answers in milliseconds, but CI machines are shared.
constexpr auto kDeadline = 20s;

using troupe::test::ChildProcess;
using troupe::test::ProcessOptions;
using troupe::test::ProcessResult;

/// trouped with `args`, bounded by kDeadline.
ProcessOptions trouped(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {TROUPED_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return {.argv = std::move(argv), .time_limit = kDeadline};
}

ProcessResult run(const std::vector<std::string>& args) {
  return troupe::test::run_process(trouped(args));
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
store: {kind: memory}
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
  const ProcessResult result = run({"--version"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out, "trouped " TROUPE_PROJECT_VERSION "\n");
  EXPECT_EQ(result.err, "");
}

TEST(Cli, HelpDocumentsEveryCommandAndExitCode) {
  const ProcessResult result = run({"--help"});
  EXPECT_EQ(result.exit_code, 0);
  for (const char* part : {"--config FILE", "--check-config FILE", "--version", "--help",
                           "Exit codes:", "  0  ", "  1  ", "  2  ", "  75 "}) {
    EXPECT_TRUE(contains(result.out, part)) << part << " missing from:\n" << result.out;
  }
}

TEST(Cli, UnknownFlagIsAUsageError) {
  const ProcessResult result = run({"--frobnicate"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_TRUE(contains(result.err, "unknown option '--frobnicate'")) << result.err;
  EXPECT_TRUE(contains(result.err, "Usage:")) << result.err;
  EXPECT_EQ(result.out, "");
}

TEST(Cli, MissingArgumentsAreUsageErrors) {
  EXPECT_EQ(run({}).exit_code, 2);
  const ProcessResult no_file = run({"--config"});
  EXPECT_EQ(no_file.exit_code, 2);
  EXPECT_TRUE(contains(no_file.err, "--config needs a FILE argument")) << no_file.err;
  const ProcessResult both = run({"--config", "a.yaml", "--check-config", "b.yaml"});
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_TRUE(contains(both.err, "exactly one")) << both.err;
}

TEST(Cli, UnreadableFileIsNamedAndExitsTwo) {
  const std::string path = "/nonexistent/dir/trouped.yaml";
  for (const char* flag : {"--check-config", "--config"}) {
    const ProcessResult result = run({flag, path});
    EXPECT_EQ(result.exit_code, 2) << flag;
    EXPECT_TRUE(contains(result.err, path + ": cannot read config file: No such file or directory"))
        << result.err;
  }
}

TEST(Cli, CheckConfigSummarisesTheShippedConfig) {
  const ProcessResult result = run({"--check-config", TROUPE_SHIPPED_CONFIG});
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

TEST(Cli, CheckConfigNamesTheStoreAndOpensNothing) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("trouped_cli_store_" + std::to_string(getpid()));
  const TempFile file("store: {path: " + (dir / "jobs.db").string() + R"(, sync: normal}
troupes:
  - name: a
    handler: {kind: builtin, name: echo}
)");
  const ProcessResult result = run({"--check-config", file.path()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(contains(result.out, "store: sqlite " + (dir / "jobs.db").string() + ", sync normal"))
      << result.out;
  EXPECT_FALSE(std::filesystem::exists(dir));  // validated, not created
}

/// A TCP port on 127.0.0.1 that is bound but not listening while it lives:
/// a connection to it is refused, and no other process can take it.
class RefusingPort {
 public:
  RefusingPort() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      ADD_FAILURE() << "cannot bind a port on 127.0.0.1";
    }
    port_ = ntohs(address.sin_port);
  }
  ~RefusingPort() {
    if (fd_ >= 0) ::close(fd_);
  }
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;
  int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
};

// A shared store is the one part of a config outside the file: --check-config
// connects to it and names store.dsn, at its place, when nothing answers,
// without printing the DSN's password.
TEST(Cli, CheckConfigReportsAPostgresDsnItCannotReach) {
  const RefusingPort refusing;
  const TempFile file(R"(troupes:
  - name: a
    handler: {kind: builtin, name: echo}
store:
  kind: postgres
  dsn: "host=127.0.0.1 port=)" +
                      std::to_string(refusing.port()) +
                      R"( dbname=troupe user=troupe password=hunter2 connect_timeout=5"
)");
  const ProcessResult result = run({"--check-config", file.path()});
  EXPECT_EQ(result.exit_code, 2) << result;
  EXPECT_EQ(result.out, "");
  const auto lines = lines_of(result.err);
  ASSERT_EQ(lines.size(), 2u) << result.err;
  const std::string expected = file.path() +
                               ":6:8: store.dsn: cannot reach the PostgreSQL server " +
                               "host=127.0.0.1 port=" + std::to_string(refusing.port()) +
                               " dbname=troupe user=troupe password=*** connect_timeout=5: ";
  EXPECT_TRUE(lines[0].starts_with(expected)) << lines[0];
  EXPECT_GT(lines[0].size(), expected.size()) << "no reason given: " << lines[0];
  EXPECT_FALSE(contains(result.err, "hunter2")) << result.err;
  EXPECT_EQ(lines[1], file.path() + ": 1 error; nothing was started");
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
  const ProcessResult result = run({"--check-config", file.path()});
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

// An exec troupe with `user:` needs trouped to run as root: as anyone else
// the config is refused when it is read, naming the key (setpriv drops this
// root test process's trouped to nobody).
TEST(Cli, ExecUserIsRefusedWhenTroupedIsNotRoot) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to start trouped as another user";
  const TempFile file(R"(troupes:
  - name: a
    handler: {kind: exec, argv: [id], user: nobody}
)");
  std::filesystem::permissions(file.path(), std::filesystem::perms::others_read,
                               std::filesystem::perm_options::add);
  ProcessOptions options = trouped({"--check-config", file.path()});
  options.argv.insert(options.argv.begin(),
                      {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  const ProcessResult result = troupe::test::run_process(options);
  EXPECT_EQ(result.exit_code, 2) << result;
  EXPECT_EQ(lines_of(result.err),
            (std::vector<std::string>{
                file.path() +
                    ":3:45: troupes[0].handler.user: trouped runs as uid 65534, not root, so it "
                    "cannot run jobs as another user or group; remove user/group, or start "
                    "trouped as root",
                file.path() + ": 1 error; nothing was started"}));
}

TEST(Cli, RunWithABadConfigExitsTwoWithoutStarting) {
  const TempFile file("troupes:\n  - name: x\n");
  const ProcessResult result = run({"--config", file.path()});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_TRUE(contains(result.err, file.path() + ":2:5: troupes[0].handler: missing"))
      << result.err;
  EXPECT_FALSE(contains(result.err, "ready")) << result.err;
}

// docs/operations.md states the exit code of an invalid config; it must be
// the one trouped exits with (and the one README and --help give).
TEST(Cli, OperationsDocGivesTheBadConfigExitCode) {
  std::ifstream doc(TROUPE_OPERATIONS_DOC);
  ASSERT_TRUE(doc) << TROUPE_OPERATIONS_DOC;
  const std::string text((std::istreambuf_iterator<char>(doc)), std::istreambuf_iterator<char>());
  constexpr std::string_view kSentence = "Any error stops start-up with exit code ";
  const auto at = text.find(kSentence);
  ASSERT_NE(at, std::string::npos) << "operations.md no longer says how a bad config exits";
  const int documented = std::atoi(text.c_str() + at + kSentence.size());
  const TempFile file("troupes:\n  - name: x\n");
  EXPECT_EQ(run({"--config", file.path()}).exit_code, documented);
}

/// Starts trouped on `config`, waits for its ready line, sends `signal_number`
/// and expects a clean exit.
void run_until_signal(const std::string& format, int signal_number) {
  const TempFile file(runnable_config(format));
  ChildProcess child(trouped({"--config", file.path()}));
  ASSERT_TRUE(child.read_until([&] { return contains(child.err(), "ready"); }))
      << "no ready line; stderr:\n"
      << child.err();
  child.send_signal(signal_number);
  const ProcessResult& result = child.wait();
  EXPECT_EQ(result.exit_code, 0) << result;
  EXPECT_TRUE(contains(result.err, "hosting troupe first:")) << result.err;
  EXPECT_TRUE(contains(result.err, "hosting troupe second:")) << result.err;
  EXPECT_TRUE(contains(result.err, "stopping")) << result.err;
  // kind memory says at start that jobs do not survive a restart.
  EXPECT_TRUE(contains(result.err, "store: memory; jobs do not survive a restart")) << result.err;
  EXPECT_EQ(result.out, "");
}

TEST(Cli, ConfigRunsUntilSigtermAndExitsZero) {
  run_until_signal("text", SIGTERM);
}

TEST(Cli, ConfigRunsUntilSigintAndExitsZero) {
  run_until_signal("text", SIGINT);
}

TEST(Cli, JsonLoggingWritesOneObjectPerLine) {
  const TempFile file(runnable_config("json"));
  ChildProcess child(trouped({"--config", file.path()}));
  ASSERT_TRUE(child.read_until([&] { return contains(child.err(), "ready"); })) << child.err();
  child.send_signal(SIGTERM);
  const ProcessResult& result = child.wait();
  EXPECT_EQ(result.exit_code, 0) << result;
  const auto lines = lines_of(child.err());
  ASSERT_GE(lines.size(), 4u) << child.err();
  for (const auto& line : lines) {
    EXPECT_TRUE(line.starts_with(R"({"ts":")")) << line;
    // info, and one warning: the memory store's (jobs do not survive a restart).
    EXPECT_TRUE(contains(line, R"(","level":"info",)") || contains(line, R"(","level":"warn",)"))
        << line;
    EXPECT_TRUE(contains(line, R"(,"msg":")")) << line;
    EXPECT_TRUE(line.ends_with("\"}")) << line;
  }
  // Quotes and backslashes in a message are escaped, so each line stays one
  // JSON object.
  EXPECT_TRUE(contains(child.err(), R"(handler exec echo say \"hi\" \\ bye,)")) << child.err();
}

}  // namespace
