// store/pg_connection against a real server: pipelined rounds, binary
// arrays, and a session that stays usable after an error in a transaction.

#include "store/pg_connection.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/postgres_server.h"

namespace troupe::store::detail {
namespace {

using namespace std::chrono_literals;

class PgConnectionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = troupe::test::PostgresServer::start().release(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  /// Sends `rounds` back to back and runs the io_context until each is
  /// answered (bounded); per round, the status of each result.
  std::vector<std::vector<ExecStatusType>> run(std::vector<PgRound> rounds,
                                               std::vector<std::string>* first_values = nullptr) {
    boost::asio::io_context io;
    std::size_t answered = 0;
    std::vector<std::vector<ExecStatusType>> statuses(rounds.size());
    PgConnection connection(io, server_->dsn(), 5000ms, {}, {});
    connection.start();
    for (std::size_t i = 0; i < rounds.size(); ++i) {
      rounds[i].done = [&, i](std::vector<PgResult>& results, bool lost) {
        ++answered;
        EXPECT_FALSE(lost);
        for (auto& result : results) {
          statuses[i].push_back(PQresultStatus(result.get()));
          if (first_values != nullptr && PQresultStatus(result.get()) == PGRES_TUPLES_OK &&
              PQntuples(result.get()) > 0) {
            first_values->push_back(pg_bytes(result.get(), 0, 0));
          }
        }
      };
      connection.submit(std::move(rounds[i]));
    }
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (answered < statuses.size() && std::chrono::steady_clock::now() < deadline) {
      io.run_one_for(100ms);
    }
    EXPECT_EQ(answered, statuses.size());
    connection.stop();
    return statuses;
  }

  static troupe::test::PostgresServer* server_;
};

troupe::test::PostgresServer* PgConnectionTest::server_ = nullptr;

PgRound round_of(std::vector<PgQuery> queries) {
  PgRound round;
  round.queries = std::move(queries);
  return round;
}

TEST_F(PgConnectionTest, ARoundIsOneTransactionAndAFailedOneLeavesTheNextAlone) {
  std::vector<PgRound> rounds;
  rounds.push_back(round_of({{"CREATE TABLE gone (a integer)", {}},
                             {"INSERT INTO gone VALUES (1)", {}},
                             {"SELECT 1/0", {}},
                             {"INSERT INTO gone VALUES (2)", {}}}));
  // Pipelined behind it, before its answer.
  rounds.push_back(
      round_of({{"SELECT count(*)::text FROM pg_tables WHERE tablename = 'gone'", {}}}));
  std::vector<std::string> values;
  auto statuses = run(std::move(rounds), &values);
  ASSERT_EQ(statuses.size(), 2u);
  EXPECT_EQ(statuses[0], (std::vector<ExecStatusType>{PGRES_COMMAND_OK, PGRES_COMMAND_OK,
                                                      PGRES_FATAL_ERROR, PGRES_PIPELINE_ABORTED}));
  EXPECT_EQ(statuses[1], (std::vector<ExecStatusType>{PGRES_TUPLES_OK}));
  EXPECT_EQ(values, std::vector<std::string>{"0"});  // the table was rolled back
}

TEST_F(PgConnectionTest, ArraysTravelInBinary) {
  PgArray ids(PgArray::Of::kInt8), names(PgArray::Of::kText), blobs(PgArray::Of::kBytea);
  ids.i64(-1).i64(1LL << 40).null();
  names.bytes("a").bytes("").bytes("c");
  blobs.bytes(std::string("\0\1", 2)).null().bytes("z");
  std::vector<PgRound> rounds;
  rounds.push_back(
      round_of({{"SELECT string_agg(coalesce(i::text, 'null') || '/' || n || '/' || "
                 "coalesce(encode(b, 'hex'), 'null'), ',') FROM unnest($1::bigint[], "
                 "$2::text[], $3::bytea[]) AS u(i, n, b)",
                 PgParams().array(ids).array(names).array(blobs)}}));
  std::vector<std::string> values;
  run(std::move(rounds), &values);
  EXPECT_EQ(values, std::vector<std::string>{"-1/a/0001,1099511627776//null,null/c/7a"});
}

}  // namespace
}  // namespace troupe::store::detail
