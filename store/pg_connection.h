#pragma once

/// One libpq connection driven from an Asio io_context: non-blocking, in
/// pipeline mode, its socket waited on with a posix::stream_descriptor. The
/// PostgreSQL journal's only way to the server (store/pg_journal.cpp).

#include <libpq-fe.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::store::detail {

struct ClearResult {
  void operator()(PGresult* result) const { PQclear(result); }
};
using PgResult = std::unique_ptr<PGresult, ClearResult>;

/// A one-dimensional array parameter in PostgreSQL's binary format
/// (array_send): int8[], text[] or bytea[], elements possibly NULL. With
/// unnest() one statement writes a whole batch of rows.
class PgArray {
 public:
  enum class Of { kInt8, kText, kBytea };
  explicit PgArray(Of of) : of_(of) {}
  PgArray& i64(std::int64_t value);
  PgArray& bytes(std::string_view value);  // text or bytea
  PgArray& null();
  std::size_t size() const { return count_; }
  /// The type (int8[], text[], bytea[]) and the encoded value.
  Oid type() const;
  std::string encode() const;

 private:
  Of of_;
  std::string elements_;  // each: 4-byte length (-1: NULL), then its bytes
  std::size_t count_ = 0;
  bool has_null_ = false;
};

/// The parameters of one statement, sent in binary: int8, text, bytea,
/// boolean, an array, or NULL.
class PgParams {
 public:
  PgParams& array(const PgArray& value);
  PgParams& i64(std::int64_t value);
  PgParams& text(std::string_view value);
  PgParams& bytes(std::string_view value);
  PgParams& boolean(bool value);
  PgParams& null();

  int size() const { return static_cast<int>(types_.size()); }
  const Oid* types() const { return types_.data(); }
  /// Pointers into values_: valid until the next change.
  std::vector<const char*> values() const;
  const int* lengths() const { return lengths_.data(); }
  const int* formats() const { return formats_.data(); }

 private:
  void add(Oid type, std::string_view value, bool is_null = false);
  std::vector<std::string> values_;
  std::vector<bool> nulls_;
  std::vector<Oid> types_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
};

/// One statement of a round.
struct PgQuery {
  const char* sql = nullptr;  // static text
  PgParams params;
};

/// A round: statements pipelined one after the other, then a sync. Its
/// callback gets one result per statement (binary format; after an error,
/// the rest are PGRES_PIPELINE_ABORTED), or, when the connection dropped
/// before the sync came back, `results` empty and `lost` true (the round
/// is sent again after the reconnect only when `resend` is set).
struct PgRound {
  std::vector<PgQuery> queries;
  std::function<void(std::vector<PgResult>& results, bool lost)> done;
  bool resend = false;
};

/// Row `row`, column `column` of a binary result, as an integer (int2, int4,
/// int8 or boolean: by its length; NULL: 0) or as bytes (text or bytea).
std::int64_t pg_int(const PGresult* result, int row, int column);
std::string pg_bytes(const PGresult* result, int row, int column);
/// The rows an UPDATE, INSERT or DELETE touched (PQcmdTuples).
std::int64_t pg_affected(const PGresult* result);

/// libpq's connection parameters: the operator's `dsn` (a connection
/// string or URI), with the application name and, when positive, a connect
/// timeout (seconds) applied over it.
struct PgConnectParams {
  PgConnectParams(const std::string& dsn, int connect_timeout_s);
  std::vector<const char*> keywords;
  std::vector<const char*> values;

 private:
  std::string dsn_;
  std::string timeout_;
};

/// Blocking connect for setup and probes; nullptr with `error` set.
std::unique_ptr<PGconn, void (*)(PGconn*)> pg_connect_blocking(const std::string& dsn,
                                                               int connect_timeout_s,
                                                               std::string& error);

/// The connection. Executor: the io_context given, which one thread runs;
/// every method must be called on that thread (post() from others).
/// Connects at start(), and again after a drop with backoff (100 ms
/// doubling to 5 s). Rounds submitted while connecting wait for the
/// connection; a failed connect or a drop keeps, in order, those with
/// `resend` set (sent again once connected) and drops the others (called
/// with `lost`); while down only `resend` rounds are taken. Reports each change of reachability
/// once (on_down / on_up) and every NOTIFY received (on_notify). Owned by the journal; stop()
/// before destroying it.
class PgConnection {
 public:
  struct Handlers {
    std::function<void(const std::string& why)> on_down;
    /// Connected (the first time too), in pipeline mode; `setup` rounds
    /// (LISTEN) are sent before anything else.
    std::function<void()> on_up;
    std::function<void(std::string_view channel, std::string_view payload)> on_notify;
  };

  PgConnection(boost::asio::io_context& io, std::string dsn,
               std::chrono::milliseconds connect_timeout, std::vector<std::string> setup,
               Handlers handlers);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  void start();
  /// Queues `round`; sent at once when connected.
  void submit(PgRound round);
  bool up() const { return state_ == State::kReady; }
  /// Closes the connection; rounds not answered are dropped uncalled.
  void stop();

 private:
  enum class State { kDown, kConnecting, kReady, kStopped };

  void connect();
  void poll_connect(PostgresPollingStatusType status);
  void on_connected();
  void fail(const std::string& why);
  void watch_socket();
  void wait_read();
  void wait_write();
  void on_readable();
  void send_pending();
  void flush();
  void read_results();
  void close_socket();

  boost::asio::io_context& io_;
  const std::string dsn_;
  const std::chrono::milliseconds connect_timeout_;
  const std::vector<std::string> setup_;
  Handlers handlers_;
  State state_ = State::kDown;
  bool reported_down_ = false;
  PGconn* conn_ = nullptr;
  int socket_ = -1;
  std::unique_ptr<boost::asio::posix::stream_descriptor> descriptor_;
  bool reading_ = false;             // a read wait is outstanding
  bool writing_ = false;             // a write wait is outstanding
  boost::asio::steady_timer timer_;  // the connect timeout, the reconnect backoff
  std::chrono::milliseconds backoff_{100};
  std::uint64_t generation_ = 0;  // bumped per connection: stale waits ignore themselves
  std::deque<PgRound> waiting_;   // not sent yet
  struct InFlight {
    PgRound round;
    std::vector<PgResult> results;
  };
  std::deque<InFlight> in_flight_;  // sent, in order
};

}  // namespace troupe::store::detail
