#include "handlers/exec/exec_handler.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/handlers/test_support.h"

namespace troupe::core {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

namespace fs = std::filesystem;

std::size_t open_fd_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

/// Zombie children of this process, found by scanning /proc (does not reap).
std::size_t zombie_children() {
  std::size_t n = 0;
  const pid_t self = ::getpid();
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "stat");
    std::string line;
    if (!std::getline(in, line)) continue;
    // pid (comm) state ppid ...: comm may contain spaces, so parse after ')'.
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == self && state == 'Z') ++n;
  }
  return n;
}

class ExecHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/troupe-exec-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string script(const std::string& name, const std::string& body) {
    const std::string path = (fs::path(dir_) / name).string();
    std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
    fs::permissions(path, fs::perms::owner_all);
    return path;
  }

  struct Outcome {
    AttemptResult result;
    int calls = 0;
    std::chrono::steady_clock::duration elapsed{};
  };

  /// Runs one attempt to completion (bounded). `after_start` runs once
  /// start() has returned, before the io_context runs.
  Outcome run(Handler& handler, const std::string& payload, const Metadata& metadata = {},
              const std::function<void()>& after_start = {}) {
    Outcome out;
    AttemptContext ctx{JobId{0x1234}, "t", 2, payload, metadata, 10s, signal_.slot(), fence_term_};
    const auto t0 = std::chrono::steady_clock::now();
    handler.start(ctx, [&out](AttemptResult r) {
      out.result = std::move(r);
      ++out.calls;
    });
    if (after_start) after_start();
    EXPECT_TRUE(testing::run_until(io_, [&] { return out.calls > 0; }));
    out.elapsed = std::chrono::steady_clock::now() - t0;
    testing::drain(io_, 200ms);
    EXPECT_EQ(out.calls, 1);
    return out;
  }

  std::unique_ptr<Handler> make(const ExecHandlerOptions& o) {
    return make_exec_handler(o, strand_, clock_);
  }

  std::int64_t fence_term_ = 0;  // AttemptContext::fence_term
  boost::asio::io_context io_;
  boost::asio::any_io_executor strand_ = boost::asio::make_strand(io_);
  std::unique_ptr<Clock> clock_owner_ = make_steady_clock();
  Clock& clock_ = *clock_owner_;
  boost::asio::cancellation_signal signal_;
  std::string dir_;
};

TEST(ExecClassifyTest, MapsExitStatusesAndSignals) {
  ExecHandlerOptions o;
  o.non_retryable_exit_codes = {2, 64};
  auto exited = [](int code) { return code << 8; };  // W_EXITCODE(code, 0)
  EXPECT_EQ(classify_exit(o, exited(0)), FailureClass::kNone);
  EXPECT_EQ(classify_exit(o, exited(1)), FailureClass::kRetryable);
  EXPECT_EQ(classify_exit(o, exited(2)), FailureClass::kPermanent);
  EXPECT_EQ(classify_exit(o, exited(64)), FailureClass::kPermanent);
  EXPECT_EQ(classify_exit(o, exited(255)), FailureClass::kRetryable);
  // Death by a signal nobody in trouped sent is a crash (a timeout or a
  // cancel kills too, but those attempts are classified before this).
  EXPECT_EQ(classify_exit(o, SIGSEGV), FailureClass::kCrash);
  EXPECT_EQ(classify_exit(o, SIGKILL), FailureClass::kCrash);
  EXPECT_EQ(describe_exit(exited(3)), "exited with status 3");
  EXPECT_EQ(describe_exit(SIGSEGV), "killed by SIGSEGV");
  EXPECT_EQ(describe_exit(SIGKILL), "killed by SIGKILL");
}

TEST_F(ExecHandlerTest, CatEchoesStdinAndResolvesArgv0ViaPath) {
  ExecHandlerOptions o;
  o.argv = {"cat"};
  auto h = make(o);
  const Outcome out = run(*h, "hello, troupe");
  EXPECT_EQ(out.result.failure, FailureClass::kNone) << out.result.output;
  EXPECT_EQ(out.result.output, "hello, troupe");
}

TEST_F(ExecHandlerTest, ArgumentsArePassedVerbatimWithoutAShell) {
  ExecHandlerOptions o;
  o.argv = {script("args.sh", "for a in \"$@\"; do printf '[%s]' \"$a\"; done"), "a b", "$HOME",
            "*", ";echo x"};
  auto h = make(o);
  const Outcome out = run(*h, "");
  EXPECT_EQ(out.result.failure, FailureClass::kNone);
  EXPECT_EQ(out.result.output, "[a b][$HOME][*][;echo x]");
}

TEST_F(ExecHandlerTest, NonZeroExitIsRetryableWithStderr) {
  ExecHandlerOptions o;
  o.argv = {script("fail.sh", "echo 'disk on fire' >&2; exit 3")};
  auto h = make(o);
  const Outcome out = run(*h, "x");
  EXPECT_EQ(out.result.failure, FailureClass::kRetryable);
  EXPECT_THAT(out.result.output, HasSubstr("exited with status 3"));
  EXPECT_THAT(out.result.output, HasSubstr("disk on fire"));
}

TEST_F(ExecHandlerTest, ConfiguredExitCodeIsPermanent) {
  ExecHandlerOptions o;
  o.argv = {script("bad_input.sh", "exit 65")};
  o.non_retryable_exit_codes = {65};
  auto h = make(o);
  const Outcome out = run(*h, "x");
  EXPECT_EQ(out.result.failure, FailureClass::kPermanent);
  EXPECT_THAT(out.result.output, HasSubstr("exited with status 65"));
}

TEST_F(ExecHandlerTest, DeathBySignalIsACrashAndNamesTheSignal) {
  ExecHandlerOptions o;
  o.argv = {script("crash.sh", "kill -SEGV $$")};
  auto h = make(o);
  const Outcome out = run(*h, "");
  EXPECT_EQ(out.result.failure, FailureClass::kCrash);
  EXPECT_THAT(out.result.output, HasSubstr("killed by SIGSEGV"));
}

TEST_F(ExecHandlerTest, SpawnFailureIsPermanentWithAClearMessage) {
  ExecHandlerOptions o;
  o.argv = {"troupe-no-such-program-4f2a"};
  auto h = make(o);
  Outcome out = run(*h, "");
  EXPECT_EQ(out.result.failure, FailureClass::kPermanent);
  EXPECT_THAT(out.result.output, HasSubstr("'troupe-no-such-program-4f2a' not found in PATH"));

  o.argv = {dir_ + "/missing"};
  auto h2 = make(o);
  out = run(*h2, "");
  EXPECT_EQ(out.result.failure, FailureClass::kPermanent);
  EXPECT_THAT(out.result.output, HasSubstr("cannot start"));
  EXPECT_THAT(out.result.output, HasSubstr("No such file or directory"));

  o.argv = {"cat"};
  o.working_dir = dir_ + "/no-such-dir";
  auto h3 = make(o);
  out = run(*h3, "");
  EXPECT_EQ(out.result.failure, FailureClass::kPermanent);
  EXPECT_THAT(out.result.output, HasSubstr("no-such-dir"));
}

TEST_F(ExecHandlerTest, OneMebibyteStdinRoundTrips) {
  std::string payload(1 << 20, '\0');
  std::mt19937 rng(42);
  for (auto& c : payload) c = static_cast<char>(rng());
  ExecHandlerOptions o;
  o.argv = {"cat"};
  auto h = make(o);
  const Outcome out = run(*h, payload);
  ASSERT_EQ(out.result.failure, FailureClass::kNone) << out.result.output.substr(0, 200);
  EXPECT_EQ(out.result.output.size(), payload.size());
  EXPECT_TRUE(out.result.output == payload);
}

TEST_F(ExecHandlerTest, ChildThatIgnoresStdinStillSucceeds) {
  // The payload write fails with EPIPE (must not kill the test process with
  // SIGPIPE); the exit status decides.
  ExecHandlerOptions o;
  o.argv = {script("ignore.sh", "exec 0<&-; echo done")};
  auto h = make(o);
  const Outcome out = run(*h, std::string(4 << 20, 'x'));
  EXPECT_EQ(out.result.failure, FailureClass::kNone) << out.result.output;
  EXPECT_EQ(out.result.output, "done\n");
}

TEST_F(ExecHandlerTest, OutputOverMaxOutputIsPermanentAndKillsTheChild) {
  ExecHandlerOptions o;
  o.argv = {"yes"};  // never stops by itself
  o.max_output = 64 * 1024;
  o.kill_grace = 200ms;
  auto h = make(o);
  const Outcome out = run(*h, "");
  EXPECT_EQ(out.result.failure, FailureClass::kPermanent);
  EXPECT_THAT(out.result.output, HasSubstr("exceeded max_output (65536 bytes)"));
  EXPECT_EQ(zombie_children(), 0u);
}

TEST_F(ExecHandlerTest, OutputExactlyAtMaxOutputSucceeds) {
  ExecHandlerOptions o;
  o.argv = {"head", "-c", "4096", "/dev/zero"};
  o.max_output = 4096;
  auto h = make(o);
  const Outcome out = run(*h, "");
  EXPECT_EQ(out.result.failure, FailureClass::kNone) << out.result.output;
  EXPECT_EQ(out.result.output.size(), 4096u);
}

TEST_F(ExecHandlerTest, StderrIsBoundedKeepingTheTail) {
  ExecHandlerOptions o;
  o.argv = {
      script("noisy.sh", "head -c 200000 /dev/zero | tr '\\0' 'n' >&2; echo THE-END >&2; exit 1")};
  o.max_stderr = 1000;
  auto h = make(o);
  const Outcome out = run(*h, "");
  EXPECT_EQ(out.result.failure, FailureClass::kRetryable);
  EXPECT_THAT(out.result.output, HasSubstr("THE-END"));
  EXPECT_THAT(out.result.output, HasSubstr("dropped"));
  EXPECT_LT(out.result.output.size(), 1300u);
}

// The tail kept starts at a character: 2-byte characters clipped at an odd
// limit must not leave half of one at the front.
TEST_F(ExecHandlerTest, StderrTailIsCutBetweenCharacters) {
  ExecHandlerOptions o;
  o.argv = {script("accents.sh",
                   "i=0; while [ $i -lt 1000 ]; do printf '\\303\\251'; i=$((i+1)); "
                   "done >&2; exit 1")};
  o.max_stderr = 1001;
  auto h = make(o);
  const Outcome out = run(*h, "");
  ASSERT_EQ(out.result.failure, FailureClass::kRetryable) << out.result.output;
  const auto colon = out.result.output.rfind(": ");
  ASSERT_NE(colon, std::string::npos) << out.result.output;
  const std::string tail = out.result.output.substr(colon + 2);
  EXPECT_EQ(tail.size(), 1000u);
  std::string expected;
  for (int i = 0; i < 500; ++i) expected += "\xC3\xA9";
  EXPECT_EQ(tail, expected);
  EXPECT_THAT(out.result.output, HasSubstr("1000 dropped"));
}

TEST_F(ExecHandlerTest, EnvironmentIsAllowListPlusFixedPlusMetadata) {
  ::setenv("TROUPE_TEST_ALLOWED", "allowed-value", 1);
  ::setenv("TROUPE_TEST_SECRET", "must-not-leak", 1);
  ExecHandlerOptions o;
  o.argv = {"env"};
  o.env_allow = {"TROUPE_TEST_ALLOWED", "TROUPE_TEST_UNSET"};
  o.env = {{"FIXED", "fixed-value"}};
  auto h = make(o);
  const Metadata metadata = {{"trace-id", "abc"}, {"User.Name", "bob"}};
  const Outcome out = run(*h, "", metadata);
  ASSERT_EQ(out.result.failure, FailureClass::kNone) << out.result.output;
  std::set<std::string> lines;
  std::istringstream in(out.result.output);
  for (std::string line; std::getline(in, line);) lines.insert(line);
  EXPECT_TRUE(lines.count("TROUPE_TEST_ALLOWED=allowed-value"));
  EXPECT_TRUE(lines.count("FIXED=fixed-value"));
  EXPECT_TRUE(lines.count("TROUPE_META_TRACE_ID=abc"));
  EXPECT_TRUE(lines.count("TROUPE_META_USER_NAME=bob"));
  EXPECT_TRUE(lines.count("TROUPE_JOB_ID=0000000000001234"));
  EXPECT_TRUE(lines.count("TROUPE_ATTEMPT=2"));
  EXPECT_TRUE(lines.count(std::string("PATH=") + std::getenv("PATH")));
  EXPECT_THAT(out.result.output, Not(HasSubstr("must-not-leak")));
  EXPECT_THAT(out.result.output, Not(HasSubstr("TROUPE_TEST_UNSET")));
  // PATH, the allowed one, FIXED, two metadata, job id and attempt: nothing else.
  EXPECT_EQ(lines.size(), 7u) << out.result.output;
  ::unsetenv("TROUPE_TEST_ALLOWED");
  ::unsetenv("TROUPE_TEST_SECRET");
}

TEST_F(ExecHandlerTest, ASingletonsFencingTermIsInTheEnvironment) {
  ExecHandlerOptions o;
  o.argv = {"env"};
  auto h = make(o);
  fence_term_ = 7;
  const Outcome out = run(*h, "");
  ASSERT_EQ(out.result.failure, FailureClass::kNone) << out.result.output;
  EXPECT_THAT(out.result.output, HasSubstr("TROUPE_FENCE_TERM=7\n"));
}

TEST_F(ExecHandlerTest, WorkingDirIsApplied) {
  ExecHandlerOptions o;
  o.argv = {"pwd"};
  o.working_dir = dir_;
  auto h = make(o);
  const Outcome out = run(*h, "");
  EXPECT_EQ(out.result.failure, FailureClass::kNone);
  EXPECT_EQ(out.result.output, fs::canonical(dir_).string() + "\n");
}

/// Opens a FIFO the script writes "ready" to once it is set up; waits for it
/// with a bound (no sleep).
class ReadyFifo {
 public:
  explicit ReadyFifo(const std::string& path) : path_(path) {
    EXPECT_EQ(::mkfifo(path.c_str(), 0600), 0);
    fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    EXPECT_GE(fd_, 0);
  }
  ~ReadyFifo() { ::close(fd_); }
  bool wait(std::chrono::milliseconds bound) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(bound.count())) != 1) return false;
    char buf[16];
    return ::read(fd_, buf, sizeof buf) > 0;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

TEST_F(ExecHandlerTest, CancelKillsAProcessThatIgnoresSigtermAfterKillGrace) {
  const std::string fifo = dir_ + "/ready";
  ReadyFifo ready(fifo);
  ExecHandlerOptions o;
  o.argv = {script("stubborn.sh", "trap '' TERM; echo ready > " + fifo + "; sleep 30; sleep 30")};
  o.kill_grace = 300ms;
  auto h = make(o);
  const Outcome out = run(*h, "", {}, [&] {
    ASSERT_TRUE(ready.wait(10s));
    signal_.emit(boost::asio::cancellation_type::terminal);
  });
  EXPECT_EQ(out.result.failure, FailureClass::kCancelled);
  EXPECT_THAT(out.result.output, HasSubstr("killed by SIGKILL"));
  EXPECT_GE(out.elapsed, 300ms);
  EXPECT_LT(out.elapsed, 10s);
  EXPECT_EQ(zombie_children(), 0u);
}

TEST_F(ExecHandlerTest, CancelTerminatesACooperativeProcessWithoutWaitingForGrace) {
  const std::string fifo = dir_ + "/ready";
  ReadyFifo ready(fifo);
  ExecHandlerOptions o;
  o.argv = {script("sleepy.sh", "echo ready > " + fifo + "; exec sleep 30")};
  o.kill_grace = 30s;
  auto h = make(o);
  const Outcome out = run(*h, "", {}, [&] {
    ASSERT_TRUE(ready.wait(10s));
    signal_.emit(boost::asio::cancellation_type::terminal);
  });
  EXPECT_EQ(out.result.failure, FailureClass::kCancelled);
  EXPECT_THAT(out.result.output, HasSubstr("killed by SIGTERM"));
  EXPECT_LT(out.elapsed, 10s);
}

TEST_F(ExecHandlerTest, CancelWhileThePayloadWriteIsStillPending) {
  // 4 MiB to a child that never reads: the write stays pending (pipe full)
  // until cancellation.
  const std::string fifo = dir_ + "/ready";
  ReadyFifo ready(fifo);
  ExecHandlerOptions o;
  o.argv = {script("deaf.sh", "echo ready > " + fifo + "; exec sleep 30")};
  o.kill_grace = 5s;
  auto h = make(o);
  const Outcome out = run(*h, std::string(4 << 20, 'p'), {}, [&] {
    ASSERT_TRUE(ready.wait(10s));
    signal_.emit(boost::asio::cancellation_type::terminal);
  });
  EXPECT_EQ(out.result.failure, FailureClass::kCancelled);
  EXPECT_THAT(out.result.output, HasSubstr("killed by SIGTERM"));
  EXPECT_LT(out.elapsed, 5s);
  EXPECT_EQ(zombie_children(), 0u);
}

TEST_F(ExecHandlerTest, OutputHeldByAnEscapedDescendantIsDrainedForKillGraceOnly) {
  // setsid takes the sleeper out of the job's process group (so the group
  // kill misses it) while it keeps stdout open: completion waits kill_grace,
  // not the sleeper's 5s.
  ExecHandlerOptions o;
  // The script waits until the sleeper has left the group before exiting.
  o.argv = {script("escape.sh", "mkfifo " + dir_ + "/esc; setsid sh -c 'echo > " + dir_ +
                                    "/esc; exec sleep 5' & read x < " + dir_ + "/esc; echo out")};
  o.kill_grace = 300ms;
  auto h = make(o);
  const Outcome out = run(*h, "");
  EXPECT_EQ(out.result.failure, FailureClass::kNone) << out.result.output;
  EXPECT_EQ(out.result.output, "out\n");
  EXPECT_GE(out.elapsed, 300ms);
  EXPECT_LT(out.elapsed, 4s);
}

TEST_F(ExecHandlerTest, GrandchildrenInTheGroupAreKilledWithTheJob) {
  // The script backgrounds a sleeper that keeps stdout open, then exits: the
  // handler must not wait 30s for its EOF.
  ExecHandlerOptions o;
  o.argv = {script("bg.sh", "sleep 30 & echo started")};
  o.kill_grace = 5s;
  auto h = make(o);
  const Outcome out = run(*h, "");
  EXPECT_EQ(out.result.failure, FailureClass::kNone);
  EXPECT_EQ(out.result.output, "started\n");
  EXPECT_LT(out.elapsed, 5s);
}

TEST_F(ExecHandlerTest, ConcurrentActorsOnAMultiThreadedIoContext) {
  // cat: output checked per job. true: exits at once, so its exit often
  // races the registration of its pidfd with the other io thread.
  for (const char* program : {"cat", "true"}) {
    ExecHandlerOptions o;
    o.argv = {program};
    const bool echo = std::string(program) == "cat";
    std::vector<boost::asio::any_io_executor> strands;
    std::vector<std::unique_ptr<Handler>> handlers;
    for (int i = 0; i < 4; ++i) {
      strands.push_back(boost::asio::make_strand(io_));
      handlers.push_back(make_exec_handler(o, strands.back(), clock_));
    }
    std::atomic<int> ok{0};
    std::atomic<int> bad{0};
    ASSERT_TRUE(testing::run_actors_concurrently(
        io_, strands, handlers, 50,
        [&](int actor, int job, const AttemptResult& r) {
          const std::string expected =
              echo ? "actor-" + std::to_string(actor) + "-job-" + std::to_string(job) : "";
          if (r.failure == FailureClass::kNone && r.output == expected) {
            ++ok;
          } else {
            ++bad;
            ADD_FAILURE() << program << " actor " << actor << " job " << job << ": class "
                          << static_cast<int>(r.failure) << ", output '" << r.output << "'";
          }
        },
        300s))
        << program;
    EXPECT_EQ(ok, 200) << program;
    EXPECT_EQ(bad, 0) << program;
    EXPECT_EQ(zombie_children(), 0u);
  }
}

TEST_F(ExecHandlerTest, TenThousandJobsLeakNoFdsAndNoZombies) {
  ExecHandlerOptions o;
  o.argv = {"true"};
  auto h = make(o);
  constexpr int kJobs = 10'000;
  const std::string payload;
  const Metadata metadata;
  // Warm-up: lazily created descriptors (epoll, eventfd) exist before counting.
  (void)run(*h, "");
  const std::size_t fds_before = open_fd_count();

  int completed = 0;
  int failures = 0;
  std::function<void()> next = [&] {
    AttemptContext ctx{
        JobId{static_cast<std::uint64_t>(completed + 1)}, "t", 1, payload, metadata, 10s, {}};
    h->start(ctx, [&](AttemptResult r) {
      if (r.failure != FailureClass::kNone) ++failures;
      if (++completed < kJobs) boost::asio::post(strand_, next);
    });
  };
  const auto t0 = std::chrono::steady_clock::now();
  boost::asio::post(strand_, next);
  ASSERT_TRUE(testing::run_until(
      io_, [&] { return completed == kJobs; }, 600s))
      << completed << " jobs done";
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  testing::drain(io_, 200ms);
  std::cout << kJobs << " exec jobs in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms\n";
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(open_fd_count(), fds_before);
  EXPECT_EQ(zombie_children(), 0u);
  int status = 0;
  EXPECT_EQ(::waitpid(-1, &status, WNOHANG), -1) << "an unreaped child is left";
  EXPECT_EQ(errno, ECHILD);
}

// ------------------------------------------------------------ user/group

/// nobody:nogroup (65534 on Debian), as the config reader resolves them.
ExecHandlerOptions::RunAs nobody() {
  return {"nobody", "", 65534, 65534, {65534}};
}

TEST_F(ExecHandlerTest, RunsAsTheConfiguredUserAndGroupsWithOnlyStdioOpen) {
  if (::geteuid() != 0) GTEST_SKIP() << "switching users needs root";
  ExecHandlerOptions o;
  o.argv = {"sh", "-c", "id -u; id -g; id -G; ls /proc/self/fd | wc -l; cat"};
  o.run_as = nobody();
  auto h = make(o);
  const Outcome out = run(*h, "payload");
  ASSERT_EQ(out.result.failure, FailureClass::kNone) << out.result.output;
  // ls's own directory handle is the 4th entry besides 0, 1 and 2.
  EXPECT_EQ(out.result.output, "65534\n65534\n65534\n4\npayload");
}

TEST_F(ExecHandlerTest, RunAsStartsANewProcessGroupWithDefaultSignals) {
  if (::geteuid() != 0) GTEST_SKIP() << "switching users needs root";
  ExecHandlerOptions o;
  // The process group leader is the shell itself; nothing blocked, and no
  // standard signal (1-31) ignored. grep reads its own status after the shell
  // exec'd it (the same process): the shell's own status is not stable (dash
  // blocks every signal around each vfork of a child). Signals 32 and 33 are
  // glibc's own (thread cancellation, setxid): glibc will not change them, and
  // a process started by posix_spawn (ctest's way) has them ignored.
  o.argv = {"sh", "-c",
            "read -r _ _ _ _ pgrp _ < /proc/$$/stat; test \"$pgrp\" = \"$$\" && echo leader; "
            "exec grep -E '^Sig(Blk|Ign)' /proc/self/status"};
  o.run_as = nobody();
  auto h = make(o);
  ::signal(SIGUSR2, SIG_IGN);  // ignored here: the job must get the default back
  const Outcome out = run(*h, "");
  ::signal(SIGUSR2, SIG_DFL);
  ASSERT_EQ(out.result.failure, FailureClass::kNone) << out.result.output;
  std::istringstream lines(out.result.output);
  std::string leader, blocked_key, blocked, ignored_key, ignored;
  lines >> leader >> blocked_key >> blocked >> ignored_key >> ignored;
  EXPECT_EQ(leader, "leader") << out.result.output;
  EXPECT_EQ(blocked_key + blocked, "SigBlk:0000000000000000") << out.result.output;
  ASSERT_EQ(ignored_key, "SigIgn:") << out.result.output;
  EXPECT_EQ(std::stoull(ignored, nullptr, 16) & 0x7fffffffu, 0u) << out.result.output;  // 1-31
}

TEST_F(ExecHandlerTest, RunAsEntersWorkingDirAsTheJobsUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "switching users needs root";
  const std::string closed = (fs::path(dir_) / "root-only").string();
  fs::create_directory(closed);
  fs::permissions(closed, fs::perms::owner_all);  // 0700, owned by root
  ExecHandlerOptions o;
  o.argv = {"pwd"};
  o.working_dir = closed;
  auto as_root = make(o);
  EXPECT_EQ(run(*as_root, "").result.output, closed + "\n");
  o.run_as = nobody();
  auto as_nobody = make(o);
  const Outcome out = run(*as_nobody, "");
  EXPECT_EQ(out.result.failure, FailureClass::kPermanent);
  EXPECT_THAT(out.result.output,
              ::testing::HasSubstr("in working_dir '" + closed + "': Permission denied"));
}

}  // namespace
}  // namespace troupe::core
