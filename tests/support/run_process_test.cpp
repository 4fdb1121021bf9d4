// The test process runner: argv without a shell, env, stdin, separate
// stdout/stderr, exit code or signal, and the time limit.
#include "tests/support/run_process.h"

#include <gtest/gtest.h>
#include <signal.h>

namespace troupe::test {
namespace {

TEST(RunProcess, CapturesStdoutStderrAndExitCode) {
  const auto r = run_process({.argv = {"sh", "-c", "echo out; echo err >&2; exit 3"}});
  EXPECT_EQ(r.exit_code, 3) << r;
  EXPECT_EQ(r.term_signal, 0);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  EXPECT_EQ(r.describe(), "exit 3");
}

TEST(RunProcess, ArgumentsReachTheProgramUnquoted) {
  const auto r = run_process({.argv = {"printf", "%s|", "a b", "'q\"", "$HOME"}});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, "a b|'q\"|$HOME|");
}

TEST(RunProcess, StdinTextAndEnvironmentAdditions) {
  std::string lines;
  // Larger than a pipe buffer: stdin is a file, nothing can block on it.
  for (int i = 0; i < 20000; ++i) lines += "line" + std::to_string(i) + "\n";
  const auto r = run_process({.argv = {"sh", "-c", "wc -l; echo \"$TROUPE_RUN_PROCESS_TEST\""},
                              .env = {{"TROUPE_RUN_PROCESS_TEST", "set by the test"}},
                              .stdin_text = lines});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, "20000\nset by the test\n");
  EXPECT_EQ(run_process({.argv = {"cat"}}).out, "") << "no stdin text: /dev/null";
}

TEST(RunProcess, LargeOutputOnBothStreamsIsReadWhole) {
  const auto r =
      run_process({.argv = {"sh", "-c", "seq 1 100000; seq 1 100000 >&2"}, .time_limit = 30s});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out.size(), r.err.size());
  EXPECT_TRUE(r.out.ends_with("\n100000\n"));
}

TEST(RunProcess, ReportsTheSignalThatEndedTheChild) {
  const auto r = run_process({.argv = {"sh", "-c", "kill -TERM $$"}});
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_EQ(r.term_signal, SIGTERM);
  EXPECT_FALSE(r.timed_out);
}

TEST(RunProcess, TimeLimitKillsTheChildAndWhatItStarted) {
  const auto start = std::chrono::steady_clock::now();
  // The grandchild `sleep` holds stdout open: it must die with the group.
  const auto r =
      run_process({.argv = {"sh", "-c", "echo started; sleep 60 & sleep 60"}, .time_limit = 300ms});
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.term_signal, SIGKILL);
  EXPECT_EQ(r.out, "started\n");
  EXPECT_EQ(r.describe(), "signal 9 (time limit passed)");
  EXPECT_LT(took, 20s);
}

TEST(RunProcess, ChildProcessReadsUntilAConditionThenSignals) {
  ChildProcess child({.argv = {"sh", "-c", "echo ready >&2; exec sleep 60"}, .time_limit = 30s});
  ASSERT_TRUE(child.started()) << child.err();
  ASSERT_TRUE(child.read_until([&] { return child.err() == "ready\n"; }));
  child.send_signal(SIGTERM);
  const auto& r = child.wait();
  EXPECT_EQ(r.term_signal, SIGTERM) << r;
  EXPECT_FALSE(r.timed_out);
}

TEST(RunProcess, MissingProgramIsASpawnError) {
  const auto r = run_process({.argv = {"/nonexistent/troupe-no-such-program"}});
  EXPECT_NE(r.spawn_error.find("No such file"), std::string::npos) << r.spawn_error;
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_EQ(run_process({}).spawn_error, "empty argv");
}

}  // namespace
}  // namespace troupe::test
