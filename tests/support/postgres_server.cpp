#include "tests/support/postgres_server.h"

#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <utility>

#include "tests/support/run_process.h"

namespace troupe::test {
namespace {

/// Where Debian's postgresql-15 puts initdb and pg_ctl (not on PATH).
constexpr const char* kBinDirs[] = {"/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin",
                                    "/usr/lib/postgresql/17/bin"};

std::string find_bin_dir() {
  for (const char* dir : kBinDirs) {
    if (::access((std::string(dir) + "/initdb").c_str(), X_OK) == 0) return dir;
  }
  throw std::runtime_error(
      "PostgreSQL's binaries (initdb, pg_ctl) are not installed under /usr/lib/postgresql/*/bin: "
      "run scripts/install-deps.sh (Debian package postgresql)");
}

/// A port free on 127.0.0.1 now (the kernel's pick for port 0).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  if (port < 0) throw std::runtime_error(std::string("no free port: ") + std::strerror(errno));
  return port;
}

}  // namespace

std::unique_ptr<PostgresServer> PostgresServer::start() {
  std::unique_ptr<PostgresServer> server(new PostgresServer());
  server->bin_ = find_bin_dir();
  std::string tmpl = (std::filesystem::temp_directory_path() / "troupe-pg-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
  }
  server->root_ = tmpl;
  if (::geteuid() == 0) {
    // initdb refuses to run as root: the server and its files belong to the
    // postgres system user.
    const passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) {
      throw std::runtime_error("running as root and there is no `postgres` user to run the server");
    }
    if (::chown(server->root_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      throw std::runtime_error("chown " + server->root_ + ": " + std::strerror(errno));
    }
    server->as_postgres_ = true;
  }
  server->port_ = free_port();
  server->run_tool("initdb", {server->bin_ + "/initdb", "-D", server->root_ + "/data", "-U",
                              "postgres", "--auth=trust", "--encoding=UTF8", "--no-instructions"});
  server->start_server();
  server->create_database("troupe");
  return server;
}

PostgresServer::~PostgresServer() {
  try {
    stop();
  } catch (...) {
    // The directory goes anyway; a server left running dies with its files.
  }
  std::error_code ec;
  if (!root_.empty()) std::filesystem::remove_all(root_, ec);
}

std::string PostgresServer::dsn() const {
  return dsn("troupe");
}

std::string PostgresServer::dsn(const std::string& database) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + database + " user=postgres";
}

void PostgresServer::create_database(const std::string& name) {
  run_tool("createdb", {bin_ + "/createdb", "-h", "127.0.0.1", "-p", std::to_string(port_), "-U",
                        "postgres", name});
}

void PostgresServer::stop() {
  if (!running_) return;
  running_ = false;
  run_tool("pg_ctl stop",
           {bin_ + "/pg_ctl", "stop", "-D", root_ + "/data", "-m", "fast", "-w", "-t", "30"});
}

void PostgresServer::restart() {
  stop();
  start_server();
}

void PostgresServer::start_server() {
  // Small: several servers run at once on a 2-core CI machine. fsync stays
  // on (the store's promises are about real commits).
  const std::string options = "-p " + std::to_string(port_) + " -k " + root_ +
                              " -c listen_addresses=127.0.0.1 -c fsync=on -c shared_buffers=16MB"
                              " -c max_connections=40";
  run_tool("pg_ctl start", {bin_ + "/pg_ctl", "start", "-D", root_ + "/data", "-l",
                            root_ + "/server.log", "-w", "-t", "60", "-o", options});
  running_ = true;
}

void PostgresServer::run_tool(const std::string& what, std::vector<std::string> argv) {
  if (as_postgres_) argv.insert(argv.begin(), {"runuser", "-u", "postgres", "--"});
  ProcessResult result = run_process(
      ProcessOptions{.argv = std::move(argv), .env = {{"LC_ALL", "C.UTF-8"}}, .time_limit = 90s});
  if (result.exit_code != 0) {
    throw std::runtime_error("PostgreSQL test server (" + root_ + "): " + what +
                             " failed: " + result.describe() + "\n" + result.out + result.err);
  }
}

}  // namespace troupe::test
