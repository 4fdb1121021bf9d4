#pragma once

// A real PostgreSQL server for the tests of the shared store (label
// `cluster`): initdb in a temporary directory, a free port on 127.0.0.1, a
// database named `troupe`. Uses the Debian package's binaries
// (/usr/lib/postgresql/15/bin, installed by scripts/install-deps.sh); when
// the test runs as root the server runs as the `postgres` system user.

#include <memory>
#include <string>
#include <vector>

namespace troupe::test {

/// One PostgreSQL server of a test. Single-threaded: its methods block (on
/// the server's tools, each with a time limit) and run on the test's
/// thread. Owns its temporary directory: the destructor stops the server
/// (`pg_ctl stop -m fast`) and removes the directory. Every failure to
/// start (binaries missing, initdb or the server failing) throws
/// std::runtime_error with the tool's output: a test never skips silently.
class PostgresServer {
 public:
  /// initdb, start, `createdb troupe`.
  static std::unique_ptr<PostgresServer> start();
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  /// "host=127.0.0.1 port=N dbname=troupe user=postgres".
  std::string dsn() const;
  /// The same with `dbname=<name>`, for a test that wants a database of
  /// its own (see create_database()).
  std::string dsn(const std::string& database) const;
  int port() const { return port_; }

  /// Creates an empty database `name` (createdb).
  void create_database(const std::string& name);

  /// Stops the server (fast: open connections are closed). Idempotent.
  void stop();
  /// Starts it again on the same port and data (after stop(), or stops it
  /// first): the outage of the tests.
  void restart();

 private:
  PostgresServer() = default;
  void run_tool(const std::string& what, std::vector<std::string> argv);
  void start_server();

  std::string bin_;   // the directory of initdb, pg_ctl, createdb
  std::string root_;  // the temporary directory (data/, the socket, the log)
  int port_ = 0;
  bool running_ = false;
  bool as_postgres_ = false;  // run the tools as the postgres user (we are root)
};

}  // namespace troupe::test
