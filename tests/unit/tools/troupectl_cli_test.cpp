// Drives the real troupectl binary against an in-process fake JobService /
// AdminService, checking what scripts rely on: stdout, stderr, exit codes.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/unit/tools/fake_troupe_server.h"

namespace troupe::troupectl {
namespace {

struct CliRun {
  int rc = -1;
  std::string out;
  std::string err;
};

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

class TroupectlCli : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/troupectl_cli_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  CliRun run(const std::vector<std::string>& args, const std::string& stdin_text = "") {
    std::ofstream(dir_ / "in") << stdin_text;
    // Built with append(): GCC 12 -O3 reports a false -Wrestrict on
    // `" " + std::string` chains.
    std::string cmd = "TROUPE_ADDRESS=";
    cmd.append(server_.address()).append(" ").append(TROUPECTL_PATH);
    for (const auto& a : args) cmd.append(" ").append(shell_quote(a));
    cmd.append(" <").append((dir_ / "in").string());
    cmd.append(" >").append((dir_ / "out").string());
    cmd.append(" 2>").append((dir_ / "err").string());
    const int status = std::system(cmd.c_str());
    CliRun r;
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(dir_ / "out");
    r.err = slurp(dir_ / "err");
    return r;
  }

  static google::protobuf::Struct json(const std::string& text) {
    google::protobuf::Struct s;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(text, &s).ok()) << text;
    return s;
  }

  tools::testing::FakeTroupeServer server_;
  std::filesystem::path dir_;
};

TEST_F(TroupectlCli, SubmitPrintsTheJobIdAndGetShowsIt) {
  const auto submit = run({"submit", "echo", "--payload", "hello"});
  ASSERT_EQ(submit.rc, 0) << submit.err;
  EXPECT_EQ(submit.out, "job-1\n");
  const auto get = run({"get", "job-1"});
  EXPECT_EQ(get.rc, 0);
  EXPECT_NE(get.out.find("SUCCEEDED"), std::string::npos) << get.out;
  EXPECT_NE(get.out.find("result:      hello"), std::string::npos) << get.out;
  const auto get_json = run({"get", "job-1", "--output", "json"});
  const auto j = json(get_json.out);
  EXPECT_EQ(j.fields().at("id").string_value(), "job-1");
  EXPECT_EQ(j.fields().at("state").string_value(), "JOB_STATE_SUCCEEDED");
}

TEST_F(TroupectlCli, PayloadFileIsSentWhole) {
  std::ofstream(dir_ / "payload") << "from a file";
  ASSERT_EQ(run({"submit", "echo", "--payload-file", (dir_ / "payload").string()}).rc, 0);
  EXPECT_NE(run({"get", "job-1"}).out.find("from a file"), std::string::npos);
  const auto missing = run({"submit", "echo", "--payload-file", (dir_ / "nope").string()});
  EXPECT_EQ(missing.rc, 2);
  EXPECT_NE(missing.err.find("cannot read"), std::string::npos);
}

TEST_F(TroupectlCli, WaitExitsOneWhenTheJobFails) {
  const auto ok = run({"submit", "echo", "--payload", "x", "--wait"});
  EXPECT_EQ(ok.rc, 0) << ok.err;
  const auto failed = run({"submit", "echo", "--payload", "fail", "--wait", "--output", "json"});
  EXPECT_EQ(failed.rc, 1);
  const auto j = json(failed.out);
  EXPECT_EQ(j.fields().at("job").struct_value().fields().at("state").string_value(),
            "JOB_STATE_FAILED");
}

TEST_F(TroupectlCli, ExitCodesForNotFoundRejectedAndUnreachable) {
  const auto nf = run({"submit", "nope", "--payload", "x"});
  EXPECT_EQ(nf.rc, 3);
  EXPECT_NE(nf.err.find("NOT_FOUND"), std::string::npos);
  EXPECT_EQ(run({"get", "job-404"}).rc, 3);
  const auto full = run({"submit", "echo", "--payload", "reject"});
  EXPECT_EQ(full.rc, 4);
  EXPECT_NE(full.err.find("retry"), std::string::npos);
  const auto down = run({"--address", "127.0.0.1:1", "--deadline", "5s", "troupes"});
  EXPECT_EQ(down.rc, 4);
  EXPECT_NE(down.err.find("is trouped running"), std::string::npos);
  EXPECT_EQ(run({"bogus"}).rc, 2);
}

TEST_F(TroupectlCli, BulkStdinSubmitsOneJobPerLine) {
  std::string lines;
  for (int i = 0; i < 200; ++i) lines += "line" + std::to_string(i) + "\n";
  const auto bulk = run({"submit", "echo", "-", "--window", "7"}, lines);
  ASSERT_EQ(bulk.rc, 0) << bulk.err;
  EXPECT_EQ(server_.stream_requests(), 200u);
  EXPECT_EQ(std::count(bulk.out.begin(), bulk.out.end(), '\n'), 200);
  EXPECT_NE(bulk.err.find("200 accepted, 0 rejected"), std::string::npos) << bulk.err;
  // stderr is a file here, not a terminal: no progress bar.
  EXPECT_EQ(bulk.err.find('['), std::string::npos) << bulk.err;
}

TEST_F(TroupectlCli, BulkDrawsAProgressBarOnlyOnATerminal) {
  // script(1) gives troupectl a pseudo-terminal for stderr (stdin stays a file).
  std::string lines;
  for (int i = 0; i < 50; ++i) lines += "p" + std::to_string(i) + "\n";
  std::ofstream(dir_ / "lines") << lines;
  std::string inner = "TROUPE_ADDRESS=";
  inner.append(server_.address()).append(" " TROUPECTL_PATH " submit echo - <");
  inner.append((dir_ / "lines").string()).append(" >/dev/null");
  std::string cmd = "script -qec ";
  cmd.append(shell_quote(inner)).append(" /dev/null >").append((dir_ / "tty").string());
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  const std::string tty = slurp(dir_ / "tty");
  EXPECT_NE(tty.find("[##############################] 50/50 accepted 50 rejected 0"),
            std::string::npos)
      << tty;
  EXPECT_NE(tty.find("submitted 50 lines: 50 accepted, 0 rejected"), std::string::npos) << tty;
  // Same input, --no-progress: no bar even on a terminal.
  cmd = "script -qec ";
  cmd.append(shell_quote(inner + " --no-progress"))
      .append(" /dev/null >")
      .append((dir_ / "tty2").string());
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_EQ(slurp(dir_ / "tty2").find("[#"), std::string::npos);
}

TEST_F(TroupectlCli, BulkJsonSummarisesRejectionsByCode) {
  const auto bulk =
      run({"submit", "echo", "-", "--output", "json"}, "a\nreject\nb\nreject\nreject\n");
  EXPECT_EQ(bulk.rc, 4);
  const auto j = json(bulk.out);
  const auto& f = j.fields();
  EXPECT_EQ(f.at("lines").number_value(), 5);
  EXPECT_EQ(f.at("accepted").number_value(), 2);
  EXPECT_EQ(f.at("rejected").number_value(), 3);
  EXPECT_EQ(
      f.at("rejected_by_code").struct_value().fields().at("RESOURCE_EXHAUSTED").number_value(), 3);
  const auto& jobs = f.at("jobs").list_value().values();
  ASSERT_EQ(jobs.size(), 5);
  EXPECT_EQ(jobs[0].struct_value().fields().at("line").number_value(), 1);
  EXPECT_TRUE(jobs[0].struct_value().fields().contains("job_id"));
  EXPECT_EQ(jobs[1].struct_value().fields().at("code").string_value(), "RESOURCE_EXHAUSTED");
}

TEST_F(TroupectlCli, WatchCancelTroupesTroupeDead) {
  ASSERT_EQ(run({"submit", "echo", "--payload", "w"}).rc, 0);
  const auto watch = run({"watch", "job-1"});
  EXPECT_EQ(watch.rc, 0);
  EXPECT_NE(watch.out.find("job-1 QUEUED"), std::string::npos) << watch.out;
  EXPECT_NE(watch.out.find("job-1 SUCCEEDED"), std::string::npos) << watch.out;
  const auto cancel = run({"cancel", "job-1"});
  EXPECT_EQ(cancel.rc, 0);
  EXPECT_NE(cancel.out.find("nothing to cancel"), std::string::npos);
  const auto troupes = run({"troupes"});
  EXPECT_EQ(troupes.rc, 0);
  EXPECT_NE(troupes.out.find("echo"), std::string::npos);
  const auto troupes_json = json(run({"troupes", "--output", "json"}).out);
  EXPECT_EQ(troupes_json.fields().at("troupes").list_value().values_size(), 1);
  EXPECT_NE(run({"troupe", "echo"}).out.find("circuit:      CLOSED"), std::string::npos);
  EXPECT_EQ(run({"troupe", "nope"}).rc, 3);
  EXPECT_EQ(run({"dead", "echo", "--limit", "3"}).rc, 0);
}

TEST_F(TroupectlCli, HealthExitsZeroOnlyWhenServing) {
  const auto up = run({"health"});
  EXPECT_EQ(up.rc, 0);
  EXPECT_EQ(up.out, "SERVING\n");
  EXPECT_EQ(run({"health", "echo"}).rc, 0);
  EXPECT_EQ(run({"health", "unknown"}).rc, 3);
  server_.set_serving(false);
  const auto down = run({"health", "--output", "json"});
  EXPECT_EQ(down.rc, 1);
  EXPECT_EQ(json(down.out).fields().at("status").string_value(), "NOT_SERVING");
}

}  // namespace
}  // namespace troupe::troupectl
