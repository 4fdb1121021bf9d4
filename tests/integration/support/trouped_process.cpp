#include "support/trouped_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <system_error>

#include "tests/support/run_process.h"

namespace troupe::test {
namespace {

std::filesystem::path make_temp_dir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "trouped-test-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) {
    throw std::system_error(errno, std::generic_category(), "mkdtemp");
  }
  return pattern;
}

const std::regex& serving_line() {
  static const std::regex re(R"(serving grpc=([^\s",]+) metrics=([^\s",)]+))");
  return re;
}

}  // namespace

v1::SubmitRequest submit_request(const std::string& troupe, bool wait, const std::string& payload) {
  v1::SubmitRequest r;
  r.set_troupe(troupe);
  r.set_payload(payload);
  r.set_wait(wait);
  return r;
}

std::optional<v1::Troupe> get_troupe(TroupedProcess& p, const std::string& name) {
  auto stub = v1::AdminService::NewStub(p.channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::GetTroupeRequest r;
  r.set_name(name);
  v1::Troupe t;
  if (!stub->GetTroupe(&ctx, r, &t).ok()) return std::nullopt;
  return t;
}

grpc::health::v1::HealthCheckResponse::ServingStatus health(TroupedProcess& p,
                                                            const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(p.channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::health::v1::HealthCheckRequest r;
  r.set_service(service);
  grpc::health::v1::HealthCheckResponse out;
  if (!stub->Check(&ctx, r, &out).ok()) return grpc::health::v1::HealthCheckResponse::UNKNOWN;
  return out.status();
}

std::string trouped_binary() {
  if (const char* env = std::getenv("TROUPED_BINARY"); env != nullptr && *env != '\0') return env;
  return TROUPED_PATH;
}

TroupedProcess::TroupedProcess(TroupedOptions options) {
  dir_ = make_temp_dir();
  config_path_ = dir_ / "trouped.yaml";
  write_config(options.config_yaml);

  const std::string binary = options.binary.empty() ? trouped_binary() : options.binary;
  std::vector<std::string> args = {binary, "--config", config_path_.string()};
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  spawn(args, options.env, options.inherited_fd);
}

TroupedProcess::TroupedProcess(CommandOptions command) {
  dir_ = make_temp_dir();
  spawn(command.argv, command.env);
}

void TroupedProcess::spawn(const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& extra_env, int inherited_fd) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    throw std::system_error(errno, std::generic_category(), "pipe2");
  }
  // Its own process group: the destructor can kill it with every child it
  // started (exec handlers). stdout and stderr both go to the log.
  std::string error;
  pid_ = spawn_in_own_group(args, extra_env, -1, pipe_fds[1], pipe_fds[1], error, inherited_fd);
  ::close(pipe_fds[1]);
  if (pid_ <= 0) {
    ::close(pipe_fds[0]);
    pid_ = -1;
    throw std::runtime_error(error);
  }
  reader_ = std::thread([this, fd = pipe_fds[0]] { read_log(fd); });
  waiter_ = std::thread([this] { reap(); });
}

TroupedProcess::~TroupedProcess() {
  if (pid_ > 0 && !exited()) {
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
  }
  if (waiter_.joinable()) waiter_.join();
  // Children of trouped that outlived it may still hold the pipe open.
  if (pid_ > 0) ::kill(-pid_, SIGKILL);
  if (reader_.joinable()) reader_.join();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void TroupedProcess::read_log(int fd) {
  const bool echo = std::getenv("TROUPE_TEST_VERBOSE") != nullptr;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (echo) std::fwrite(buf, 1, static_cast<std::size_t>(n), stderr);
    std::lock_guard lock(mutex_);
    log_.append(buf, static_cast<std::size_t>(n));
    changed_.notify_all();
  }
  ::close(fd);
  std::lock_guard lock(mutex_);
  log_closed_ = true;
  changed_.notify_all();
}

void TroupedProcess::reap() {
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) return;
  }
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::lock_guard lock(mutex_);
  exit_code_ = code;
  changed_.notify_all();
}

bool TroupedProcess::wait_serving(std::chrono::milliseconds bound) {
  std::unique_lock lock(mutex_);
  std::smatch match;
  const bool found = changed_.wait_for(lock, bound, [&] {
    return std::regex_search(log_, match, serving_line()) || exit_code_.has_value();
  });
  if (!found || !std::regex_search(log_, match, serving_line())) return false;
  grpc_address_ = match[1].str();
  metrics_address_ = match[2].str();
  return true;
}

std::shared_ptr<grpc::Channel> TroupedProcess::channel() const {
  grpc::ChannelArguments args;
  // One channel per call site: tests that need separate connections make
  // several channels, which must not be shared by gRPC's subchannel pool.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  return grpc::CreateCustomChannel(grpc_address_, grpc::InsecureChannelCredentials(), args);
}

void TroupedProcess::write_config(const std::string& yaml) const {
  // Write-then-rename: a SIGHUP never sees a half-written file.
  const auto tmp = dir_ / "trouped.yaml.tmp";
  {
    std::ofstream out(tmp);
    out << yaml;
  }
  std::filesystem::rename(tmp, config_path_);
}

void TroupedProcess::send_signal(int signo) const {
  if (pid_ > 0) ::kill(pid_, signo);
}

std::optional<int> TroupedProcess::wait_exit(std::chrono::milliseconds bound) {
  std::unique_lock lock(mutex_);
  const auto until = std::chrono::steady_clock::now() + bound;
  changed_.wait_until(lock, until, [&] { return exit_code_.has_value(); });
  // The reader may not have drained the pipe yet when the process is reaped:
  // callers read log() next, so let it reach the end (a descendant holding
  // the pipe open keeps it open; the bound still holds).
  changed_.wait_until(lock, until, [&] { return log_closed_ || !exit_code_.has_value(); });
  return exit_code_;
}

bool TroupedProcess::exited() const {
  std::lock_guard lock(mutex_);
  return exit_code_.has_value();
}

bool TroupedProcess::wait_for_log(const std::regex& pattern, std::chrono::milliseconds bound) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, bound, [&] {
    return std::regex_search(log_, pattern) || (log_closed_ && exit_code_.has_value());
  }) && std::regex_search(log_, pattern);
}

std::string TroupedProcess::log() const {
  std::lock_guard lock(mutex_);
  return log_;
}

std::unique_ptr<TroupedProcess> start_trouped(TroupedOptions options) {
  auto process = std::make_unique<TroupedProcess>(std::move(options));
  if (!process->wait_serving()) {
    ADD_FAILURE() << "trouped did not start serving; exit code "
                  << (process->exited() ? std::to_string(*process->wait_exit(0ms)) : "none")
                  << "; log:\n"
                  << process->log();
    return nullptr;
  }
  return process;
}

HttpResponse http_get(const std::string& host_port, const std::string& path) {
  HttpResponse response;
  const auto colon = host_port.rfind(':');
  const std::string host = host_port.substr(0, colon);
  const int port = std::stoi(host_port.substr(colon + 1));
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return response;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, host == "0.0.0.0" ? "127.0.0.1" : host.c_str(), &addr.sin_addr);
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return response;
  }
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: " + host_port + "\r\n\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return response;
  }
  std::string raw;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    raw.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  const auto header_end = raw.find("\r\n\r\n");
  if (header_end == std::string::npos || raw.compare(0, 5, "HTTP/") != 0) return response;
  response.status = std::stoi(raw.substr(raw.find(' ') + 1, 3));
  response.body = raw.substr(header_end + 4);
  return response;
}

std::optional<double> metric_value(const std::string& exposition, const std::string& series) {
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return std::nullopt;
}

PromtoolResult promtool_check_metrics(const std::string& exposition) {
  PromtoolResult result;
  const auto dir = make_temp_dir();
  const auto file = dir / "metrics.txt";
  std::ofstream(file) << exposition;
  const std::string command = "promtool check metrics < " + file.string() + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe != nullptr) {
    char buf[512];
    while (std::fgets(buf, sizeof buf, pipe) != nullptr) result.output += buf;
    const int status = ::pclose(pipe);
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  return result;
}

int listen_on_free_port(int& port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, 1) != 0) {
    throw std::system_error(errno, std::generic_category(), "listen on 127.0.0.1:0");
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port = ntohs(addr.sin_port);
  return fd;
}

}  // namespace troupe::test
