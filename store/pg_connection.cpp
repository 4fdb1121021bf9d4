#include "store/pg_connection.h"

#include <endian.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace troupe::store::detail {
namespace {

// pg_type OIDs of the parameter types sent.
constexpr Oid kBoolOid = 16;
constexpr Oid kByteaOid = 17;
constexpr Oid kInt8Oid = 20;
constexpr Oid kTextOid = 25;

constexpr std::chrono::milliseconds kMaxBackoff{5000};

std::string first_line(const char* message) {
  std::string text = message != nullptr ? message : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

/// Notices (e.g. "relation already exists, skipping") are not for an
/// operator's log; errors arrive as results.
void ignore_notice(void*, const char*) {}

/// An error that ends the session rather than the statement: class 08
/// (connection exception) and 57P (operator intervention: shutdown, crash
/// of another backend, cannot connect now).
bool connection_error(const PGresult* result) {
  if (PQresultStatus(result) != PGRES_FATAL_ERROR) return false;
  const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  if (state == nullptr) return true;  // made up by libpq: the connection broke
  std::string_view code(state);
  return code.starts_with("08") || code.starts_with("57P");
}

}  // namespace

// ---- PgArray ----

namespace {
void put_be32(std::string& out, std::int32_t value) {
  std::uint32_t be = htobe32(static_cast<std::uint32_t>(value));
  out.append(reinterpret_cast<const char*>(&be), sizeof be);
}
// pg_type OIDs of the arrays and their elements.
constexpr Oid kInt8ArrayOid = 1016;
constexpr Oid kTextArrayOid = 1009;
constexpr Oid kByteaArrayOid = 1001;
}  // namespace

PgArray& PgArray::i64(std::int64_t value) {
  put_be32(elements_, 8);
  std::uint64_t be = htobe64(static_cast<std::uint64_t>(value));
  elements_.append(reinterpret_cast<const char*>(&be), sizeof be);
  ++count_;
  return *this;
}

PgArray& PgArray::bytes(std::string_view value) {
  put_be32(elements_, static_cast<std::int32_t>(value.size()));
  elements_.append(value);
  ++count_;
  return *this;
}

PgArray& PgArray::null() {
  put_be32(elements_, -1);
  has_null_ = true;
  ++count_;
  return *this;
}

Oid PgArray::type() const {
  switch (of_) {
    case Of::kInt8:
      return kInt8ArrayOid;
    case Of::kText:
      return kTextArrayOid;
    case Of::kBytea:
      return kByteaArrayOid;
  }
  return 0;
}

std::string PgArray::encode() const {
  Oid element = of_ == Of::kInt8 ? kInt8Oid : of_ == Of::kText ? kTextOid : kByteaOid;
  std::string out;
  out.reserve(20 + elements_.size());
  put_be32(out, 1);  // dimensions
  put_be32(out, has_null_ ? 1 : 0);
  put_be32(out, static_cast<std::int32_t>(element));
  put_be32(out, static_cast<std::int32_t>(count_));
  put_be32(out, 1);  // lower bound
  out += elements_;
  return out;
}

// ---- PgParams ----

PgParams& PgParams::array(const PgArray& value) {
  add(value.type(), value.encode());
  return *this;
}

void PgParams::add(Oid type, std::string_view value, bool is_null) {
  values_.emplace_back(value);
  nulls_.push_back(is_null);
  types_.push_back(type);
  lengths_.push_back(static_cast<int>(value.size()));
  formats_.push_back(1);
}

PgParams& PgParams::i64(std::int64_t value) {
  std::uint64_t be = htobe64(static_cast<std::uint64_t>(value));
  add(kInt8Oid, std::string_view(reinterpret_cast<const char*>(&be), sizeof be));
  return *this;
}
PgParams& PgParams::text(std::string_view value) {
  add(kTextOid, value);
  return *this;
}
PgParams& PgParams::bytes(std::string_view value) {
  add(kByteaOid, value);
  return *this;
}
PgParams& PgParams::boolean(bool value) {
  add(kBoolOid, value ? std::string_view("\1", 1) : std::string_view("\0", 1));
  return *this;
}
PgParams& PgParams::null() {
  add(0, {}, true);
  return *this;
}

std::vector<const char*> PgParams::values() const {
  std::vector<const char*> pointers(values_.size());
  for (std::size_t i = 0; i < values_.size(); ++i) {
    pointers[i] = nulls_[i] ? nullptr : values_[i].data();
  }
  return pointers;
}

// ---- results ----

std::int64_t pg_int(const PGresult* result, int row, int column) {
  if (PQgetisnull(result, row, column)) return 0;
  const char* v = PQgetvalue(result, row, column);
  switch (PQgetlength(result, row, column)) {
    case 1:
      return static_cast<std::int64_t>(static_cast<unsigned char>(v[0]));
    case 2: {
      std::uint16_t x;
      std::memcpy(&x, v, 2);
      return static_cast<std::int16_t>(be16toh(x));
    }
    case 4: {
      std::uint32_t x;
      std::memcpy(&x, v, 4);
      return static_cast<std::int32_t>(be32toh(x));
    }
    case 8: {
      std::uint64_t x;
      std::memcpy(&x, v, 8);
      return static_cast<std::int64_t>(be64toh(x));
    }
    default:
      return 0;
  }
}

std::string pg_bytes(const PGresult* result, int row, int column) {
  if (PQgetisnull(result, row, column)) return {};
  return std::string(PQgetvalue(result, row, column),
                     static_cast<std::size_t>(PQgetlength(result, row, column)));
}

std::int64_t pg_affected(const PGresult* result) {
  const char* n = PQcmdTuples(const_cast<PGresult*>(result));
  return n != nullptr && *n != '\0' ? std::strtoll(n, nullptr, 10) : 0;
}

// ---- connecting ----

PgConnectParams::PgConnectParams(const std::string& dsn, int connect_timeout_s)
    : dsn_(dsn), timeout_(std::to_string(std::max(connect_timeout_s, 1))) {
  // expand_dbname: the dsn's own settings apply; those after it override.
  keywords = {"dbname", "application_name"};
  values = {dsn_.c_str(), "trouped"};
  if (connect_timeout_s > 0) {
    keywords.push_back("connect_timeout");
    values.push_back(timeout_.c_str());
  }
  keywords.push_back(nullptr);
  values.push_back(nullptr);
}

std::unique_ptr<PGconn, void (*)(PGconn*)> pg_connect_blocking(const std::string& dsn,
                                                               int connect_timeout_s,
                                                               std::string& error) {
  PgConnectParams params(dsn, connect_timeout_s);
  std::unique_ptr<PGconn, void (*)(PGconn*)> conn(
      PQconnectdbParams(params.keywords.data(), params.values.data(), 1), &PQfinish);
  if (!conn) {
    error = "out of memory";
    return {nullptr, &PQfinish};
  }
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    error = first_line(PQerrorMessage(conn.get()));
    return {nullptr, &PQfinish};
  }
  PQsetNoticeProcessor(conn.get(), &ignore_notice, nullptr);
  return conn;
}

// ---- PgConnection ----

PgConnection::PgConnection(boost::asio::io_context& io, std::string dsn,
                           std::chrono::milliseconds connect_timeout,
                           std::vector<std::string> setup, Handlers handlers)
    : io_(io),
      dsn_(std::move(dsn)),
      connect_timeout_(connect_timeout),
      setup_(std::move(setup)),
      handlers_(std::move(handlers)),
      timer_(io) {}

PgConnection::~PgConnection() {
  stop();
}

void PgConnection::start() {
  connect();
}

void PgConnection::stop() {
  if (state_ == State::kStopped) return;
  state_ = State::kStopped;
  timer_.cancel();
  close_socket();
  waiting_.clear();
  in_flight_.clear();
}

void PgConnection::close_socket() {
  ++generation_;
  if (descriptor_) {
    descriptor_->cancel();
    descriptor_->release();  // libpq owns the socket
    descriptor_.reset();
  }
  reading_ = writing_ = false;
  if (conn_ != nullptr) PQfinish(conn_);
  conn_ = nullptr;
  socket_ = -1;
}

void PgConnection::connect() {
  if (state_ == State::kStopped) return;
  state_ = State::kConnecting;
  PgConnectParams params(dsn_, 0);
  conn_ = PQconnectStartParams(params.keywords.data(), params.values.data(), 1);
  if (conn_ == nullptr || PQstatus(conn_) == CONNECTION_BAD) {
    fail(conn_ != nullptr ? first_line(PQerrorMessage(conn_)) : "out of memory");
    return;
  }
  PQsetNoticeProcessor(conn_, &ignore_notice, nullptr);
  std::uint64_t generation = ++generation_;
  timer_.expires_after(connect_timeout_);
  timer_.async_wait([this, generation](const boost::system::error_code& ec) {
    if (ec || generation != generation_ || state_ != State::kConnecting) return;
    fail("no answer within " + std::to_string(connect_timeout_.count()) + " ms");
  });
  poll_connect(PGRES_POLLING_WRITING);
}

void PgConnection::watch_socket() {
  int socket = PQsocket(conn_);
  if (socket == socket_ && descriptor_) return;
  if (descriptor_) {
    descriptor_->cancel();
    descriptor_->release();
  }
  ++generation_;  // waits on the old socket are stale
  reading_ = writing_ = false;
  socket_ = socket;
  descriptor_ = std::make_unique<boost::asio::posix::stream_descriptor>(io_, socket);
}

void PgConnection::poll_connect(PostgresPollingStatusType status) {
  if (status == PGRES_POLLING_FAILED) {
    fail(first_line(PQerrorMessage(conn_)));
    return;
  }
  if (status == PGRES_POLLING_OK) {
    on_connected();
    return;
  }
  watch_socket();
  std::uint64_t generation = generation_;
  auto type = status == PGRES_POLLING_READING ? boost::asio::posix::stream_descriptor::wait_read
                                              : boost::asio::posix::stream_descriptor::wait_write;
  descriptor_->async_wait(type, [this, generation](const boost::system::error_code& ec) {
    if (ec || generation != generation_ || state_ != State::kConnecting) return;
    poll_connect(PQconnectPoll(conn_));
  });
}

void PgConnection::on_connected() {
  timer_.cancel();
  if (PQsetnonblocking(conn_, 1) != 0 || PQenterPipelineMode(conn_) != 1) {
    fail("cannot enter pipeline mode: " + first_line(PQerrorMessage(conn_)));
    return;
  }
  watch_socket();
  state_ = State::kReady;
  backoff_ = std::chrono::milliseconds(100);
  // Setup first (LISTEN), then what waited.
  for (auto it = setup_.rbegin(); it != setup_.rend(); ++it) {
    PgRound round;
    round.queries.push_back(PgQuery{it->c_str(), {}});
    round.done = [](std::vector<PgResult>&, bool) {};
    waiting_.push_front(std::move(round));
  }
  reported_down_ = false;
  wait_read();
  send_pending();
  if (handlers_.on_up) handlers_.on_up();
}

void PgConnection::fail(const std::string& why) {
  if (state_ == State::kStopped) return;
  close_socket();
  state_ = State::kDown;
  // What was sent and not answered goes again (when it may), before what
  // waited, in order.
  std::deque<PgRound> again;
  std::vector<PgRound> dropped;
  for (auto& sent : in_flight_) {
    if (sent.round.resend) {
      again.push_back(std::move(sent.round));
    } else {
      dropped.push_back(std::move(sent.round));
    }
  }
  in_flight_.clear();
  for (auto& round : waiting_) {
    if (round.resend) {
      again.push_back(std::move(round));
    } else {
      dropped.push_back(std::move(round));
    }
  }
  waiting_ = std::move(again);
  if (!reported_down_) {
    reported_down_ = true;
    if (handlers_.on_down) handlers_.on_down(why);
  }
  for (auto& round : dropped) {
    std::vector<PgResult> none;
    if (round.done) round.done(none, true);
  }
  if (state_ == State::kStopped) return;
  timer_.expires_after(backoff_);
  backoff_ = std::min(backoff_ * 2, kMaxBackoff);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || state_ != State::kDown) return;
    connect();
  });
}

void PgConnection::submit(PgRound round) {
  if (state_ == State::kStopped) return;
  // While a connect is under way everything waits for it; while down (the
  // last attempt failed) only what is to be resent.
  if (state_ == State::kDown && !round.resend) {
    std::vector<PgResult> none;
    if (round.done) round.done(none, true);
    return;
  }
  waiting_.push_back(std::move(round));
  if (state_ == State::kReady) send_pending();
}

void PgConnection::send_pending() {
  while (state_ == State::kReady && !waiting_.empty()) {
    PgRound& round = waiting_.front();
    for (const PgQuery& query : round.queries) {
      std::vector<const char*> values = query.params.values();
      if (PQsendQueryParams(conn_, query.sql, query.params.size(), query.params.types(),
                            values.data(), query.params.lengths(), query.params.formats(),
                            1) != 1) {
        fail(first_line(PQerrorMessage(conn_)));
        return;
      }
    }
    if (PQpipelineSync(conn_) != 1) {
      fail(first_line(PQerrorMessage(conn_)));
      return;
    }
    in_flight_.push_back(InFlight{std::move(round), {}});
    waiting_.pop_front();
  }
  flush();
}

void PgConnection::flush() {
  if (state_ != State::kReady) return;
  int rc = PQflush(conn_);
  if (rc < 0) {
    fail(first_line(PQerrorMessage(conn_)));
  } else if (rc == 1) {
    wait_write();
  }
}

void PgConnection::wait_write() {
  if (writing_) return;
  writing_ = true;
  std::uint64_t generation = generation_;
  descriptor_->async_wait(boost::asio::posix::stream_descriptor::wait_write,
                          [this, generation](const boost::system::error_code& ec) {
                            if (ec || generation != generation_) return;
                            writing_ = false;
                            flush();
                          });
}

void PgConnection::wait_read() {
  if (reading_ || state_ != State::kReady) return;
  reading_ = true;
  std::uint64_t generation = generation_;
  descriptor_->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                          [this, generation](const boost::system::error_code& ec) {
                            if (ec || generation != generation_) return;
                            reading_ = false;
                            on_readable();
                          });
}

void PgConnection::on_readable() {
  if (PQconsumeInput(conn_) != 1) {
    fail(first_line(PQerrorMessage(conn_)));
    return;
  }
  read_results();
  if (state_ != State::kReady) return;
  while (PGnotify* notify = PQnotifies(conn_)) {
    std::string channel = notify->relname;
    std::string payload = notify->extra != nullptr ? notify->extra : "";
    PQfreemem(notify);
    if (handlers_.on_notify) handlers_.on_notify(channel, payload);
    if (state_ != State::kReady) return;
  }
  // Writing may have been held back by a full socket buffer on either side.
  flush();
  wait_read();
}

void PgConnection::read_results() {
  std::uint64_t generation = generation_;
  int nulls = 0;
  while (state_ == State::kReady && generation == generation_ && !in_flight_.empty()) {
    if (PQisBusy(conn_)) return;
    PGresult* raw = PQgetResult(conn_);
    if (raw == nullptr) {
      // The end of one statement's results; the next statement's (or the
      // sync) may not have arrived yet.
      if (++nulls > 1) return;
      continue;
    }
    nulls = 0;
    PgResult result(raw);
    InFlight& front = in_flight_.front();
    if (PQresultStatus(raw) == PGRES_PIPELINE_SYNC) {
      InFlight done = std::move(front);
      in_flight_.pop_front();
      if (done.round.done) done.round.done(done.results, false);
      continue;
    }
    if (PQstatus(conn_) == CONNECTION_BAD || connection_error(raw)) {
      // The server is going away (a shutdown, a dropped connection): the
      // round is not answered, and goes again once reconnected.
      fail(first_line(PQresultErrorMessage(raw)));
      return;
    }
    front.results.push_back(std::move(result));
  }
}

}  // namespace troupe::store::detail
