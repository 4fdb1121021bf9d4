#pragma once

/// Test harness: runs the real trouped binary with a temporary config on
/// 127.0.0.1 port 0, learns the bound addresses from its log, and stops it.
/// Used by the daemon's, troupectl's and the bench's integration tests.

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"
#include "troupe/v1/troupe.grpc.pb.h"

namespace troupe::test {

using namespace std::chrono_literals;

struct TroupedOptions {
  std::string config_yaml = {};                 // written to <temp dir>/trouped.yaml
  std::vector<std::string> extra_args = {};     // after `--config FILE`
  std::map<std::string, std::string> env = {};  // added to the inherited environment
  std::string binary = {};                      // empty = the trouped built with the tests
  /// When >= 0: trouped inherits this descriptor as its fd 3 (as from a
  /// parent that leaks one); it inherits no other beyond stdio.
  int inherited_fd = -1;
};

/// Another command run under the same harness (e.g. tests/bench/echo_server,
/// see echo_server_process.h): argv[0] is the binary.
struct CommandOptions {
  std::vector<std::string> argv;
  std::map<std::string, std::string> env = {};  // added to the inherited environment
};

/// One trouped process (or, built from CommandOptions, any other command). The log (stdout and
/// stderr, merged) is collected by a reader thread; a waiter thread reaps the process; both are
/// joined by the destructor, which SIGKILLs the process group if it still runs. Methods are
/// thread-safe.
class TroupedProcess {
 public:
  /// Starts trouped; does not wait. Check started() / wait_serving().
  explicit TroupedProcess(TroupedOptions options);
  /// Starts `command` the same way (its own process group, log collected,
  /// killed by the destructor); wait_for_log() tells when it is ready.
  explicit TroupedProcess(CommandOptions command);
  ~TroupedProcess();
  TroupedProcess(const TroupedProcess&) = delete;
  TroupedProcess& operator=(const TroupedProcess&) = delete;

  /// Waits for the "serving grpc=... metrics=..." line; false if the process
  /// exits (or the bound passes) first. Fills grpc_address/metrics_address.
  bool wait_serving(std::chrono::milliseconds bound = 30s);

  const std::string& grpc_address() const { return grpc_address_; }
  const std::string& metrics_address() const { return metrics_address_; }
  std::shared_ptr<grpc::Channel> channel() const;

  /// The config file trouped was started with; rewrite it, then SIGHUP.
  const std::filesystem::path& config_path() const { return config_path_; }
  void write_config(const std::string& yaml) const;
  /// The temporary directory (removed by the destructor).
  const std::filesystem::path& dir() const { return dir_; }

  pid_t pid() const { return pid_; }
  void send_signal(int signo) const;
  /// The exit code (128 + signal when killed by one), or nullopt if the
  /// process still runs after `bound`. Once it has exited, also waits
  /// (within `bound`) until its whole log has been read.
  std::optional<int> wait_exit(std::chrono::milliseconds bound = 30s);
  bool exited() const;

  /// Waits until the log matches `pattern` (searched over the whole log);
  /// false when the bound passes or the log ends without a match.
  bool wait_for_log(const std::regex& pattern, std::chrono::milliseconds bound = 30s);
  std::string log() const;

 private:
  void spawn(const std::vector<std::string>& args,
             const std::map<std::string, std::string>& extra_env, int inherited_fd = -1);
  void read_log(int fd);
  void reap();

  std::filesystem::path dir_;
  std::filesystem::path config_path_;
  pid_t pid_ = -1;
  std::string grpc_address_;
  std::string metrics_address_;

  mutable std::mutex mutex_;  // guards log_, log_closed_, exit_code_
  std::condition_variable changed_;
  std::string log_;
  bool log_closed_ = false;
  std::optional<int> exit_code_;
  std::thread reader_;
  std::thread waiter_;
};

/// Starts trouped and waits until it serves; fails the current test (and
/// returns nullptr) when it does not.
std::unique_ptr<TroupedProcess> start_trouped(TroupedOptions options);

/// The trouped binary built alongside the tests.
std::string trouped_binary();

/// A SubmitRequest of `payload` to `troupe`; `wait` asks for the outcome.
v1::SubmitRequest submit_request(const std::string& troupe, bool wait,
                                 const std::string& payload = {});

/// AdminService.GetTroupe on `p` (10 s deadline); nullopt when it fails.
std::optional<v1::Troupe> get_troupe(TroupedProcess& p, const std::string& name);

/// grpc.health.v1 Check of `service` ("" = the whole daemon) on `p` (10 s
/// deadline); UNKNOWN when the call fails.
grpc::health::v1::HealthCheckResponse::ServingStatus health(TroupedProcess& p,
                                                            const std::string& service = "");

struct HttpResponse {
  int status = 0;
  std::string body;
};
/// A plain HTTP/1.0 GET (for /metrics); status 0 when the connection fails.
HttpResponse http_get(const std::string& host_port, const std::string& path);

/// The value of the sample `series` (name{labels} exactly as exposed) in a
/// Prometheus text exposition; nullopt when absent.
std::optional<double> metric_value(const std::string& exposition, const std::string& series);

/// Runs `promtool check metrics` on `exposition`; returns its output and
/// exit status.
struct PromtoolResult {
  int status = -1;
  std::string output;
};
PromtoolResult promtool_check_metrics(const std::string& exposition);

/// A free TCP port on 127.0.0.1 held by the returned listening socket (for
/// "port taken" tests); close with ::close().
int listen_on_free_port(int& port);

}  // namespace troupe::test
