#include "store/sqlite_statement.h"

#include <string>

namespace troupe::store::detail {

void check(sqlite3* db, int rc, std::string_view what) {
  if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE) return;
  // The connection's extended code is more precise than a primary `rc`
  // (SQLITE_IOERR_FSYNC rather than SQLITE_IOERR) when it is the same error.
  int code = rc;
  if (db != nullptr && (sqlite3_extended_errcode(db) & 0xff) == (rc & 0xff)) {
    code = sqlite3_extended_errcode(db);
  }
  throw SqliteError(code, std::string(what),
                    db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

std::string describe(const SqliteError& error) {
  std::string problem;
  switch (error.code()) {
    case SQLITE_IOERR_FSYNC:
    case SQLITE_IOERR_DIR_FSYNC:
      problem = "fsync failed";
      break;
    case SQLITE_IOERR_WRITE:
      problem = "write failed";
      break;
    default:
      if (error.primary() == SQLITE_FULL) problem = "disk full";
      break;
  }
  if (problem.empty()) return error.sqlite_message();
  return problem + " (" + error.sqlite_message() + ")";
}

void exec(sqlite3* db, const char* sql) {
  check(db, sqlite3_exec(db, sql, nullptr, nullptr, nullptr), sql);
}

Statement::Statement(sqlite3* db, std::string_view sql) : db_(db) {
  check(db_,
        sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                           &stmt_, nullptr),
        sql);
}

Statement::~Statement() {
  sqlite3_finalize(stmt_);
}

void Statement::bind(int index, std::int64_t value) {
  check(db_, sqlite3_bind_int64(stmt_, index, value), "bind");
}

void Statement::bind_text(int index, std::string_view value) {
  check(db_,
        sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_STATIC, SQLITE_UTF8),
        "bind");
}

void Statement::bind_blob(int index, std::string_view value) {
  // A zero-length blob, not NULL: an empty payload reads back as "".
  check(db_,
        value.empty()
            ? sqlite3_bind_zeroblob(stmt_, index, 0)
            : sqlite3_bind_blob64(stmt_, index, value.data(), value.size(), SQLITE_STATIC),
        "bind");
}

void Statement::bind_null(int index) {
  check(db_, sqlite3_bind_null(stmt_, index), "bind");
}

bool Statement::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  check(db_, rc, "statement");
  return false;
}

void Statement::reset() {
  sqlite3_reset(stmt_);
}

std::int64_t Statement::column_int(int index) const {
  return sqlite3_column_int64(stmt_, index);
}

std::string Statement::column_blob(int index) const {
  const void* data = sqlite3_column_blob(stmt_, index);
  auto size = static_cast<std::size_t>(sqlite3_column_bytes(stmt_, index));
  return data == nullptr ? std::string() : std::string(static_cast<const char*>(data), size);
}

bool Statement::column_null(int index) const {
  return sqlite3_column_type(stmt_, index) == SQLITE_NULL;
}

}  // namespace troupe::store::detail
