#include "daemon/journal_factory.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <climits>
#include <string>

namespace troupe::daemon {
namespace {

TEST(RedactDsn, HidesTheKeywordPassword) {
  EXPECT_EQ(redact_dsn("host=db dbname=troupe user=troupe password=hunter2"),
            "host=db dbname=troupe user=troupe password=***");
  // Spaces around '=', a quoted value with an escaped quote and spaces, a
  // value with a backslash: each password goes, the rest stays as written.
  EXPECT_EQ(redact_dsn("password = 'hunt \\' er2'  host=db"), "password = ***  host=db");
  EXPECT_EQ(redact_dsn("password=a\\ b host=db sslmode=require"),
            "password=*** host=db sslmode=require");
  EXPECT_EQ(redact_dsn("host=db"), "host=db");
  EXPECT_EQ(redact_dsn(""), "");
}

TEST(RedactDsn, ShowsNothingOfAStringThatDoesNotParse) {
  for (const char* dsn : {"host=db password='hunter2", "host=db hunter2", "password"}) {
    const std::string shown = redact_dsn(dsn);
    EXPECT_EQ(shown.find("hunter2"), std::string::npos) << dsn << " -> " << shown;
    EXPECT_NE(shown.find("does not parse"), std::string::npos) << dsn << " -> " << shown;
  }
}

TEST(RedactDsn, HidesTheUriPasswords) {
  EXPECT_EQ(redact_dsn("postgresql://troupe:hunter2@db.internal:5432/troupe?sslmode=require"),
            "postgresql://troupe:***@db.internal:5432/troupe?sslmode=require");
  EXPECT_EQ(redact_dsn("postgres://troupe@db/troupe?sslmode=require&password=hunter2&x=1"),
            "postgres://troupe@db/troupe?sslmode=require&password=***&x=1");
  EXPECT_EQ(redact_dsn("postgresql://a:b@h1,h2/troupe?password=c"),
            "postgresql://a:***@h1,h2/troupe?password=***");
  EXPECT_EQ(redact_dsn("postgresql://db.internal:5432/troupe"),
            "postgresql://db.internal:5432/troupe");
  EXPECT_EQ(redact_dsn("postgresql://"), "postgresql://");
}

TEST(ReplicaName, IsTheConfiguredNameElseTheEnvironmentElseTheHostName) {
  config::StoreOptions store;
  store.kind = config::StoreOptions::Kind::kPostgres;
  std::array<char, HOST_NAME_MAX + 1> host{};
  ASSERT_EQ(::gethostname(host.data(), host.size() - 1), 0);
  EXPECT_EQ(replica_name(store, nullptr), std::string(host.data()));
  EXPECT_EQ(replica_name(store, ""), std::string(host.data()));
  EXPECT_EQ(replica_name(store, "trouped-0"), "trouped-0");
  store.postgres.replica = "worker-7";
  EXPECT_EQ(replica_name(store, "trouped-0"), "worker-7");
}

TEST(DescribeStore, SaysWhatAPostgresStoreIsWithoutItsPassword) {
  config::StoreOptions store;
  store.kind = config::StoreOptions::Kind::kPostgres;
  store.postgres.dsn = "host=db user=troupe password=hunter2";
  store.postgres.replica = "worker-7";
  EXPECT_EQ(describe_store(store),
            "store: postgres host=db user=troupe password=***, replica worker-7, lease 15s, "
            "heartbeat 5s, poll 1s, claim batch 100; shared with other replicas "
            "(docs/cluster.md)");
  store.postgres.dsn.clear();
  EXPECT_TRUE(describe_store(store).starts_with(
      "store: postgres (libpq defaults and PG* environment variables), replica worker-7"))
      << describe_store(store);
}

}  // namespace
}  // namespace troupe::daemon
