// exec jobs through the real trouped: what a job's process can reach.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

#include "support/trouped_process.h"
#include "tests/unit/handlers/http/test_http_server.h"
#include "troupe/v1/troupe.grpc.pb.h"

namespace troupe::test {
namespace {

v1::Job submit_and_wait(TroupedProcess& p, const std::string& troupe,
                        const std::string& payload = "") {
  auto stub = v1::JobService::NewStub(p.channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::SubmitRequest r;
  r.set_troupe(troupe);
  r.set_payload(payload);
  r.set_wait(true);
  v1::SubmitResponse resp;
  const auto status = stub->Submit(&ctx, r, &resp);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return resp.job();
}

/// The descriptor numbers in `ls -l /proc/PID/fd` output.
std::set<int> listed_fds(const std::string& ls_output) {
  static const std::regex entry(R"( ([0-9]+) -> )");
  std::set<int> fds;
  for (std::sregex_iterator it(ls_output.begin(), ls_output.end(), entry), end; it != end; ++it) {
    fds.insert(std::stoi((*it)[1].str()));
  }
  return fds;
}

/// The open-file flags of `pid`'s descriptor `fd` (from /proc/PID/fdinfo),
/// or nullopt when it is closed by now.
std::optional<int> fd_flags(pid_t pid, const std::string& fd) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/fdinfo/" + fd);
  std::string key;
  while (in >> key) {
    if (key == "flags:") {
      std::string octal;
      in >> octal;
      return std::stoi(octal, nullptr, 8);
    }
  }
  return std::nullopt;
}

/// "v1=" and the hex HMAC-SHA256 of `message`: what a receiving service
/// computes (docs/handlers.md), here with OpenSSL directly.
std::string hmac_sha256_hex(const std::string& key, const std::string& message) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &size);
  std::string out = "v1=";
  char byte[3];
  for (unsigned int i = 0; i < size; ++i) {
    std::snprintf(byte, sizeof byte, "%02x", mac[i]);
    out += byte;
  }
  return out;
}

/// An HTTP upstream on its own io_context thread (tests/unit's server).
class Upstream {
 public:
  using Responder = core::testing::TestHttpServer::Responder;
  explicit Upstream(Responder responder =
                        [](const auto&) { return core::testing::Reply(200, "ok"); })
      : server_(io_, std::move(responder)) {
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Upstream() {
    boost::asio::post(io_, [this] {
      server_.stop();
      work_.reset();
    });
    thread_.join();
  }
  std::string url() const { return server_.url("/hook"); }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      io_.get_executor()};
  core::testing::TestHttpServer server_;
  std::thread thread_;
};

// A job program sees stdin, stdout and stderr only: not trouped's sockets
// (gRPC, metrics, kept-alive upstream connections of http troupes), pipes or
// pidfds of other jobs, nor what trouped inherited from its parent.
TEST(DaemonExec, AJobSeesOnlyItsStdio) {
  Upstream upstream;
  const int leaked = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(leaked, 0);
  const std::string yaml = R"(server:
  grpc_address: "127.0.0.1:0"
  metrics_address: "127.0.0.1:0"
  threads: 2
troupes:
  - name: web
    mode: fixed
    actors: 1
    handler: {kind: http, url: ")" +
                           upstream.url() + R"("}
  - name: fds
    mode: fixed
    actors: 2
    handler: {kind: exec, argv: [sh, -c, 'ls -l /proc/$$/fd']}
)";
  auto trouped = start_trouped({.config_yaml = yaml, .inherited_fd = leaked});
  ::close(leaked);
  ASSERT_NE(trouped, nullptr);
  // The http troupe's actor now keeps its connection to the upstream alive.
  ASSERT_EQ(submit_and_wait(*trouped, "web").state(), v1::JOB_STATE_SUCCEEDED);

  const v1::Job job = submit_and_wait(*trouped, "fds");
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  EXPECT_EQ(listed_fds(job.result()), (std::set<int>{0, 1, 2})) << job.result();

  // And every descriptor trouped opened itself is close-on-exec (fd 3 is the
  // one it inherited), so no other way of starting a process leaks them.
  const std::string fd_dir = "/proc/" + std::to_string(trouped->pid()) + "/fd";
  for (const auto& entry : std::filesystem::directory_iterator(fd_dir)) {
    const std::string fd = entry.path().filename();
    if (std::stoi(fd) <= 3) continue;
    const auto flags = fd_flags(trouped->pid(), fd);
    if (!flags) continue;
    std::error_code ignored;
    EXPECT_NE(*flags & O_CLOEXEC, 0)
        << "trouped's fd " << fd << " -> " << std::filesystem::read_symlink(entry.path(), ignored)
        << " is not close-on-exec";
  }
}

// trouped as root runs a job as the configured user (tests run as root).
TEST(DaemonExec, AJobRunsAsTheConfiguredUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "user/group need trouped to run as root";
  const std::string yaml = R"(server:
  grpc_address: "127.0.0.1:0"
  metrics_address: "127.0.0.1:0"
troupes:
  - name: as-nobody
    handler: {kind: exec, argv: [sh, -c, 'id -u; id -g'], user: nobody}
  - name: as-trouped
    handler: {kind: exec, argv: [id, -u]}
)";
  auto trouped = start_trouped({.config_yaml = yaml});
  ASSERT_NE(trouped, nullptr);
  const v1::Job job = submit_and_wait(*trouped, "as-nobody");
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  EXPECT_EQ(job.result(), "65534\n65534\n");
  EXPECT_EQ(submit_and_wait(*trouped, "as-trouped").result(), "0\n");
}

// A signed http troupe: the upstream recomputes the HMAC of timestamp and
// body with the secret from the file trouped was configured with.
TEST(DaemonHttp, SignedCallsAreVerifiedByTheUpstream) {
  const auto secret_path =
      std::filesystem::temp_directory_path() / ("troupe_signing_" + std::to_string(::getpid()));
  {
    std::ofstream out(secret_path);
    out << "upstream-shared-secret\n";
  }
  std::mutex mu;
  std::vector<std::string> verdicts;
  Upstream upstream([&](const core::testing::TestHttpServer::Request& req) {
    const std::string timestamp(req["X-Troupe-Timestamp"]);
    const std::string expected =
        timestamp.empty() ? ""
                          : hmac_sha256_hex("upstream-shared-secret", timestamp + "." + req.body());
    const bool ok = !expected.empty() && req["X-Troupe-Signature"] == expected;
    std::lock_guard lock(mu);
    verdicts.push_back(ok ? "verified" : "bad signature");
    return core::testing::Reply(ok ? 200 : 401, ok ? "verified " + req.body() : "bad signature");
  });
  const std::string yaml = R"(server:
  grpc_address: "127.0.0.1:0"
  metrics_address: "127.0.0.1:0"
troupes:
  - name: web
    handler: {kind: http, url: ")" +
                           upstream.url() + R"(", signing_secret_file: ")" + secret_path.string() +
                           R"("}
)";
  auto trouped = start_trouped({.config_yaml = yaml});
  ASSERT_NE(trouped, nullptr);
  const v1::Job job = submit_and_wait(*trouped, "web", "order 42");
  std::filesystem::remove(secret_path);
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  EXPECT_EQ(job.result(), "verified order 42");
  std::lock_guard lock(mu);
  EXPECT_EQ(verdicts, std::vector<std::string>{"verified"});
}

// A job process that dies by a signal nobody in trouped sent is a crash: the
// supervisor restarts the actor and the retry policy retries the job. One
// that trouped killed because its attempt timed out is a timeout, not a crash.
TEST(DaemonExec, DeathBySignalIsACrashButAKillForTimeoutIsATimeout) {
  const std::string yaml = R"(server:
  grpc_address: "127.0.0.1:0"
  metrics_address: "127.0.0.1:0"
  threads: 2
troupes:
  - name: crashing
    mode: fixed
    actors: 1
    retry: {max_attempts: 2, initial_backoff: 10ms, max_backoff: 20ms}
    supervisor: {backoff_initial: 10ms, backoff_max: 20ms}
    handler: {kind: exec, argv: [sh, -c, 'kill -KILL $$']}
  - name: hanging
    mode: fixed
    actors: 1
    timeout: 200ms
    retry: {max_attempts: 1}
    handler: {kind: exec, argv: [sleep, '60'], kill_grace: 100ms}
)";
  auto trouped = start_trouped({.config_yaml = yaml});
  ASSERT_NE(trouped, nullptr);

  const v1::Job crashed = submit_and_wait(*trouped, "crashing");
  EXPECT_EQ(crashed.state(), v1::JOB_STATE_DEAD) << v1::JobState_Name(crashed.state());
  EXPECT_EQ(crashed.failure_class(), v1::FAILURE_CLASS_CRASH)
      << v1::FailureClass_Name(crashed.failure_class()) << ": " << crashed.error();
  EXPECT_EQ(crashed.attempts(), 2u);
  EXPECT_NE(crashed.error().find("killed by SIGKILL"), std::string::npos) << crashed.error();
  // One actor: the second attempt ran only after the supervisor restarted it.
  const auto crashing = get_troupe(*trouped, "crashing");
  ASSERT_TRUE(crashing.has_value());
  EXPECT_GE(crashing->counters().actor_restarts(), 1u);

  const v1::Job timed_out = submit_and_wait(*trouped, "hanging");
  EXPECT_EQ(timed_out.failure_class(), v1::FAILURE_CLASS_TIMEOUT)
      << v1::FailureClass_Name(timed_out.failure_class()) << ": " << timed_out.error();
  const auto hanging = get_troupe(*trouped, "hanging");
  ASSERT_TRUE(hanging.has_value());
  EXPECT_EQ(hanging->counters().actor_restarts(), 0u);
}

/// Waits until `fd` is readable; false when `bound` passes first.
bool wait_readable(int fd, std::chrono::milliseconds bound) {
  pollfd p{fd, POLLIN, 0};
  const int n = ::poll(&p, 1, static_cast<int>(bound.count()));
  return n == 1 && (p.revents & (POLLIN | POLLHUP)) != 0;
}

// A second signal stops trouped at once, but not before it killed the process
// groups of the jobs still running: nothing a job started outlives trouped.
TEST(DaemonExec, SecondSignalKillsRunningJobsBeforeExiting) {
  char dir_template[] = "/tmp/trouped-exec-test-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::filesystem::path dir = dir_template;
  const std::string fifo = (dir / "pids").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Opened before the job runs, so the job's write finds a reader.
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(reader, 0);
  // The job leads its process group; it starts a second member and reports
  // both pids through the fifo, then waits.
  const std::string yaml = R"(server:
  grpc_address: "127.0.0.1:0"
  metrics_address: "127.0.0.1:0"
  threads: 2
  shutdown: {drain_timeout: 5m}
troupes:
  - name: lingering
    mode: fixed
    actors: 1
    timeout: 10m
    handler: {kind: exec, argv: [sh, -c, 'sleep 300 & echo "$$ $!" > )" +
                           fifo + R"(; wait']}
)";
  auto trouped = start_trouped({.config_yaml = yaml});
  ASSERT_NE(trouped, nullptr);
  {
    auto stub = v1::JobService::NewStub(trouped->channel());
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::SubmitRequest r;
    r.set_troupe("lingering");
    v1::SubmitResponse resp;
    ASSERT_TRUE(stub->Submit(&ctx, r, &resp).ok());
  }
  ASSERT_TRUE(wait_readable(reader, std::chrono::seconds(30))) << trouped->log();
  char buf[64] = {};
  ASSERT_GT(::read(reader, buf, sizeof buf - 1), 0);
  ::close(reader);
  pid_t leader = 0;
  pid_t member = 0;
  ASSERT_EQ(std::sscanf(buf, "%d %d", &leader, &member), 2) << buf;
  ASSERT_EQ(::getpgid(leader), leader);
  ASSERT_EQ(::getpgid(member), leader);
  // pidfds: readable once the process has exited, whoever reaps it.
  const int leader_fd = static_cast<int>(::syscall(SYS_pidfd_open, leader, 0));
  const int member_fd = static_cast<int>(::syscall(SYS_pidfd_open, member, 0));
  ASSERT_GE(leader_fd, 0);
  ASSERT_GE(member_fd, 0);

  trouped->send_signal(SIGTERM);
  ASSERT_TRUE(trouped->wait_for_log(std::regex("draining")));
  trouped->send_signal(SIGTERM);
  ASSERT_EQ(trouped->wait_exit(std::chrono::seconds(20)), 128 + SIGTERM) << trouped->log();

  const bool leader_gone = wait_readable(leader_fd, std::chrono::seconds(10));
  const bool member_gone = wait_readable(member_fd, std::chrono::seconds(10));
  EXPECT_TRUE(leader_gone && member_gone) << trouped->log();
  // Whatever the outcome, leave nothing running (the group id is still pinned
  // by a member while any pidfd above is not readable).
  if (!leader_gone || !member_gone) ::kill(-leader, SIGKILL);
  ::close(leader_fd);
  ::close(member_fd);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace troupe::test
