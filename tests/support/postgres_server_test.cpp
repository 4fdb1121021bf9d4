// The fixture itself: a real server starts, answers, stops and starts again.

#include "tests/support/postgres_server.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <string>

namespace troupe::test {
namespace {

/// `SELECT 1` on a fresh connection to `dsn`; the error text otherwise.
std::string select_one(const std::string& dsn) {
  PGconn* conn = PQconnectdb(dsn.c_str());
  std::string answer;
  if (PQstatus(conn) != CONNECTION_OK) {
    answer = std::string("connect: ") + PQerrorMessage(conn);
  } else {
    PGresult* result = PQexec(conn, "SELECT 1");
    answer = PQresultStatus(result) == PGRES_TUPLES_OK ? PQgetvalue(result, 0, 0)
                                                       : PQresultErrorMessage(result);
    PQclear(result);
  }
  PQfinish(conn);
  return answer;
}

TEST(PostgresServerTest, StartsAnswersStopsAndRestarts) {
  auto server = PostgresServer::start();
  ASSERT_NE(server->port(), 0);
  EXPECT_EQ(select_one(server->dsn()), "1");
  server->stop();
  EXPECT_NE(select_one(server->dsn()), "1");  // refused while stopped
  server->restart();
  EXPECT_EQ(select_one(server->dsn()), "1");
}

}  // namespace
}  // namespace troupe::test
