// Drives the real troupectl binary against an in-process fake JobService /
// AdminService, checking what scripts rely on: stdout, stderr, exit codes.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "tests/support/run_process.h"
#include "tests/unit/tools/fake_troupe_server.h"

namespace troupe::troupectl {
namespace {

using namespace std::chrono_literals;

class TroupectlCli : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/troupectl_cli_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  test::ProcessResult run(const std::vector<std::string>& args,
                          const std::string& stdin_text = "") {
    std::vector<std::string> argv = {TROUPECTL_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    return test::run_process({.argv = std::move(argv),
                              .env = {{"TROUPE_ADDRESS", server_.address()}},
                              .stdin_text = stdin_text,
                              .time_limit = 60s});
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
  ASSERT_EQ(submit.exit_code, 0) << submit;
  EXPECT_EQ(submit.out, "job-1\n");
  const auto get = run({"get", "job-1"});
  EXPECT_EQ(get.exit_code, 0);
  EXPECT_NE(get.out.find("SUCCEEDED"), std::string::npos) << get.out;
  EXPECT_NE(get.out.find("result:      hello"), std::string::npos) << get.out;
  const auto get_json = run({"get", "job-1", "--output", "json"});
  const auto j = json(get_json.out);
  EXPECT_EQ(j.fields().at("id").string_value(), "job-1");
  EXPECT_EQ(j.fields().at("state").string_value(), "JOB_STATE_SUCCEEDED");
}

TEST_F(TroupectlCli, PayloadFileIsSentWhole) {
  std::ofstream(dir_ / "payload") << "from a file";
  ASSERT_EQ(run({"submit", "echo", "--payload-file", (dir_ / "payload").string()}).exit_code, 0);
  EXPECT_NE(run({"get", "job-1"}).out.find("from a file"), std::string::npos);
  const auto missing = run({"submit", "echo", "--payload-file", (dir_ / "nope").string()});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("cannot read"), std::string::npos);
}

TEST_F(TroupectlCli, WaitExitsOneWhenTheJobFails) {
  const auto ok = run({"submit", "echo", "--payload", "x", "--wait"});
  EXPECT_EQ(ok.exit_code, 0) << ok;
  const auto failed = run({"submit", "echo", "--payload", "fail", "--wait", "--output", "json"});
  EXPECT_EQ(failed.exit_code, 1);
  const auto j = json(failed.out);
  EXPECT_EQ(j.fields().at("job").struct_value().fields().at("state").string_value(),
            "JOB_STATE_FAILED");
}

TEST_F(TroupectlCli, ExitCodesForNotFoundRejectedAndUnreachable) {
  const auto nf = run({"submit", "nope", "--payload", "x"});
  EXPECT_EQ(nf.exit_code, 3);
  EXPECT_NE(nf.err.find("NOT_FOUND"), std::string::npos);
  EXPECT_EQ(run({"get", "job-404"}).exit_code, 3);
  const auto full = run({"submit", "echo", "--payload", "reject"});
  EXPECT_EQ(full.exit_code, 4);
  EXPECT_NE(full.err.find("retry"), std::string::npos);
  const auto down = run({"--address", "127.0.0.1:1", "--deadline", "5s", "troupes"});
  EXPECT_EQ(down.exit_code, 4);
  EXPECT_NE(down.err.find("is trouped running"), std::string::npos);
  EXPECT_EQ(run({"bogus"}).exit_code, 2);
}

TEST_F(TroupectlCli, BulkStdinSubmitsOneJobPerLine) {
  std::string lines;
  for (int i = 0; i < 200; ++i) lines += "line" + std::to_string(i) + "\n";
  const auto bulk = run({"submit", "echo", "-", "--window", "7"}, lines);
  ASSERT_EQ(bulk.exit_code, 0) << bulk;
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
  // script runs `inner` with sh; its own stdin is /dev/null, troupectl's is
  // the file.
  const std::string inner =
      std::string(TROUPECTL_PATH " submit echo - <") + (dir_ / "lines").string() + " >/dev/null";
  const auto on_tty = [&](const std::string& command) {
    return test::run_process({.argv = {"script", "-qec", command, "/dev/null"},
                              .env = {{"TROUPE_ADDRESS", server_.address()}},
                              .time_limit = 60s});
  };
  const auto bar = on_tty(inner);
  ASSERT_EQ(bar.exit_code, 0) << bar;
  EXPECT_NE(bar.out.find("[##############################] 50/50 accepted 50 rejected 0"),
            std::string::npos)
      << bar.out;
  EXPECT_NE(bar.out.find("submitted 50 lines: 50 accepted, 0 rejected"), std::string::npos)
      << bar.out;
  // Same input, --no-progress: no bar even on a terminal.
  const auto quiet = on_tty(inner + " --no-progress");
  ASSERT_EQ(quiet.exit_code, 0) << quiet;
  EXPECT_EQ(quiet.out.find("[#"), std::string::npos) << quiet.out;
}

TEST_F(TroupectlCli, BulkJsonSummarisesRejectionsByCode) {
  const auto bulk =
      run({"submit", "echo", "-", "--output", "json"}, "a\nreject\nb\nreject\nreject\n");
  EXPECT_EQ(bulk.exit_code, 4);
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
  ASSERT_EQ(run({"submit", "echo", "--payload", "w"}).exit_code, 0);
  const auto watch = run({"watch", "job-1"});
  EXPECT_EQ(watch.exit_code, 0);
  EXPECT_NE(watch.out.find("job-1 QUEUED"), std::string::npos) << watch.out;
  EXPECT_NE(watch.out.find("job-1 SUCCEEDED"), std::string::npos) << watch.out;
  const auto cancel = run({"cancel", "job-1"});
  EXPECT_EQ(cancel.exit_code, 0);
  EXPECT_NE(cancel.out.find("nothing to cancel"), std::string::npos);
  const auto troupes = run({"troupes"});
  EXPECT_EQ(troupes.exit_code, 0);
  EXPECT_NE(troupes.out.find("echo"), std::string::npos);
  const auto troupes_json = json(run({"troupes", "--output", "json"}).out);
  EXPECT_EQ(troupes_json.fields().at("troupes").list_value().values_size(), 1);
  EXPECT_NE(run({"troupe", "echo"}).out.find("circuit:      CLOSED"), std::string::npos);
  EXPECT_EQ(run({"troupe", "nope"}).exit_code, 3);
  EXPECT_EQ(run({"dead", "echo", "--limit", "3"}).exit_code, 0);
}

// The HOLDER column: a singleton's lease holder (incarnation, term, time
// left), a lease nobody holds, and the max_concurrency permits per replica.
TEST_F(TroupectlCli, ClusterShowsLeaseHoldersAndPermits) {
  const auto cluster = run({"cluster"});
  ASSERT_EQ(cluster.exit_code, 0) << cluster;
  std::map<std::string, std::string> rows;  // first word -> the line
  std::istringstream lines(cluster.out);
  for (std::string line; std::getline(lines, line);) {
    rows[line.substr(0, line.find(' '))] = line;
  }
  auto holder = [&](const std::string& troupe) {
    const std::string& line = rows[troupe];
    // TROUPE QUEUED RUNNING OLDEST, then HOLDER to the end of the line.
    std::istringstream words(line);
    std::string skip;
    for (int i = 0; i < 4; ++i) words >> skip;
    std::string rest;
    std::getline(words, rest);
    return rest.empty() ? rest : rest.substr(rest.find_first_not_of(' '));
  };
  EXPECT_NE(cluster.out.find("HOLDER"), std::string::npos) << cluster.out;
  EXPECT_EQ(holder("ledger"), "r1 (incarnation 11, term 4, lease 2.0s left)") << cluster.out;
  EXPECT_EQ(holder("stale"), "none (term 2, incarnation 9 gone)") << cluster.out;
  EXPECT_EQ(holder("capped"), "permits 5/5: r1 3, r2 2") << cluster.out;
  EXPECT_EQ(holder("echo"), "-") << cluster.out;

  const auto j = json(run({"cluster", "--output", "json"}).out);
  const auto& troupes = j.fields().at("troupes").list_value().values();
  ASSERT_EQ(troupes.size(), 4);
  const auto& ledger = troupes[2].struct_value().fields();
  EXPECT_EQ(ledger.at("holder").string_value(), "r1");
  EXPECT_EQ(ledger.at("lease").struct_value().fields().at("term").string_value(), "4");
  const auto& capped = troupes[0].struct_value().fields();
  EXPECT_EQ(capped.at("permits").list_value().values_size(), 2);
}

TEST_F(TroupectlCli, HealthExitsZeroOnlyWhenServing) {
  const auto up = run({"health"});
  EXPECT_EQ(up.exit_code, 0);
  EXPECT_EQ(up.out, "SERVING\n");
  EXPECT_EQ(run({"health", "echo"}).exit_code, 0);
  EXPECT_EQ(run({"health", "unknown"}).exit_code, 3);
  server_.set_serving(false);
  const auto down = run({"health", "--output", "json"});
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_EQ(json(down.out).fields().at("status").string_value(), "NOT_SERVING");
}

}  // namespace
}  // namespace troupe::troupectl
