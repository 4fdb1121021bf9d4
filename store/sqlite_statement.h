#pragma once

/// Thin RAII over the SQLite C API for the journal: an error type that keeps
/// SQLite's extended result code, and a reusable prepared statement.

#include <sqlite3.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace troupe::store::detail {

/// A failed SQLite call: the extended result code and SQLite's message.
class SqliteError : public std::runtime_error {
 public:
  /// `what` says which call failed, `sqlite_message` is SQLite's words.
  SqliteError(int code, const std::string& what, std::string sqlite_message)
      : std::runtime_error(what + ": " + sqlite_message),
        code_(code),
        sqlite_message_(std::move(sqlite_message)) {}
  /// The extended result code (SQLITE_IOERR_FSYNC, SQLITE_FULL, ...).
  int code() const { return code_; }
  /// The primary result code (code() & 0xff).
  int primary() const { return code_ & 0xff; }
  /// SQLite's message alone ("database or disk is full").
  const std::string& sqlite_message() const { return sqlite_message_; }

 private:
  int code_;
  std::string sqlite_message_;
};

/// Throws SqliteError for `rc` unless it is SQLITE_OK, SQLITE_ROW or
/// SQLITE_DONE; `what` says which call failed.
void check(sqlite3* db, int rc, std::string_view what);

/// What an operator reads for an error: "disk full (database or disk is
/// full)", "fsync failed (disk I/O error)", else SQLite's own message.
std::string describe(const SqliteError& error);

/// Runs `sql` (one or more statements without results). Throws SqliteError.
void exec(sqlite3* db, const char* sql);

/// One prepared statement, prepared once and reused: bind, step, reset.
/// Owned by one connection; not thread-safe (its connection's user
/// serializes access). Binds text and blobs without copying: the bound
/// views must live until the statement is reset.
class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  void bind(int index, std::int64_t value);
  void bind_text(int index, std::string_view value);
  void bind_blob(int index, std::string_view value);
  void bind_null(int index);

  /// True for a row, false when done. Throws SqliteError.
  bool step();
  /// Calls `row(*this)` for each row, then resets (also when a step or
  /// `row` throws).
  template <typename Row>
  void each_row(Row&& row) {
    struct ResetOnExit {
      Statement& statement;
      ~ResetOnExit() { statement.reset(); }
    } reset{*this};
    while (step()) row(*this);
  }
  /// Steps to the end (a statement without rows) and resets.
  void run() {
    each_row([](Statement&) {});
  }
  /// Resets for the next use; bindings are kept until rebound.
  void reset();

  std::int64_t column_int(int index) const;
  std::string column_blob(int index) const;
  bool column_null(int index) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace troupe::store::detail
