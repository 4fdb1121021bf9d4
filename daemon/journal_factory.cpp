#include "daemon/journal_factory.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <climits>
#include <cstdlib>
#include <string>

#include "config/value_parsers.h"
#include "store/pg_journal.h"
#include "store/sqlite_journal.h"

namespace troupe::daemon {

namespace {
// SQLite's default page size (the store does not change it): max_size in pages.
constexpr std::size_t kPageBytes = 4096;
constexpr std::string_view kHidden = "***";

/// Dead letters a durable store keeps per troupe: the largest capacity, so
/// that no troupe's dead letters are cut by the store before its own bound.
std::size_t dead_letters_per_troupe(const config::Config& config) {
  std::size_t dead_letters = 0;
  for (const auto& t : config.troupes)
    dead_letters = std::max(dead_letters, t.dead_letter_capacity);
  return dead_letters;
}

std::unique_ptr<core::Journal> open_postgres(const config::Config& config,
                                             core::JournalObserver* observer) {
  const config::PostgresStoreOptions& pg = config.store.postgres;
  store::PgJournalOptions options;
  options.dsn = pg.dsn;
  options.replica = replica_name(config.store, std::getenv("TROUPE_REPLICA"));
  options.lease = pg.lease;
  options.heartbeat = pg.heartbeat;
  options.poll = pg.poll;
  options.claim_batch = pg.claim_batch;
  options.result_ttl = config.runtime.job_store.result_ttl;
  options.idempotency_ttl = config.runtime.job_store.idempotency_ttl;
  options.dead_letters_per_troupe = dead_letters_per_troupe(config);
  options.observer = observer;
  return store::open_pg_journal(options);  // StoreError is a std::runtime_error
}

bool is_space(char c) {
  return std::isspace(static_cast<unsigned char>(c)) != 0;
}

/// A libpq key/value connection string with every password value hidden;
/// nullopt when it does not parse as libpq would read it.
std::optional<std::string> redact_keywords(std::string_view dsn) {
  std::string out;
  std::size_t i = 0;
  const auto skip_space = [&] {
    while (i < dsn.size() && is_space(dsn[i])) out += dsn[i++];
  };
  while (true) {
    skip_space();
    if (i == dsn.size()) return out;
    const std::size_t key_start = i;
    while (i < dsn.size() && dsn[i] != '=' && !is_space(dsn[i])) ++i;
    const std::string_view key = dsn.substr(key_start, i - key_start);
    out += key;
    skip_space();
    if (i == dsn.size() || dsn[i] != '=') return std::nullopt;
    out += dsn[i++];
    skip_space();
    const std::size_t value_start = i;
    if (i < dsn.size() && dsn[i] == '\'') {
      ++i;
      while (i < dsn.size() && dsn[i] != '\'') i += dsn[i] == '\\' ? 2 : 1;
      if (i >= dsn.size()) return std::nullopt;  // unterminated quote
      ++i;
    } else {
      while (i < dsn.size() && !is_space(dsn[i])) i += dsn[i] == '\\' ? 2 : 1;
      i = std::min(i, dsn.size());
    }
    out += key == "password" ? kHidden : dsn.substr(value_start, i - value_start);
  }
}

/// A postgresql:// URI with the password of its user info and its
/// `password` parameter hidden.
std::string redact_uri(std::string_view uri) {
  std::string out(uri);
  const std::size_t authority = out.find("://") + 3;
  const std::size_t authority_end = std::min(out.find_first_of("/?", authority), out.size());
  const std::size_t at = out.rfind('@', authority_end);
  if (at != std::string::npos && at >= authority) {
    const std::size_t colon = out.find(':', authority);
    if (colon < at) out.replace(colon + 1, at - colon - 1, kHidden);
  }
  const std::size_t query = out.find('?');
  if (query == std::string::npos) return out;
  std::size_t param = query + 1;
  while (param < out.size()) {
    const std::size_t end = std::min(out.find('&', param), out.size());
    if (out.compare(param, 9, "password=") == 0) {
      out.replace(param + 9, end - param - 9, kHidden);
      param += 9 + kHidden.size() + 1;
    } else {
      param = end + 1;
    }
  }
  return out;
}

}  // namespace

std::unique_ptr<core::Journal> open_journal(const config::Config& config,
                                            core::JournalObserver* observer) {
  switch (config.store.kind) {
    case config::StoreOptions::Kind::kMemory:
      return core::make_memory_journal();
    case config::StoreOptions::Kind::kPostgres:
      return open_postgres(config, observer);
    case config::StoreOptions::Kind::kSqlite:
      break;
  }
  store::SqliteJournalOptions options;
  options.path = config.store.path;
  options.sync_full = config.store.sync_full;
  options.result_ttl = config.runtime.job_store.result_ttl;
  options.idempotency_ttl = config.runtime.job_store.idempotency_ttl;
  options.dead_letters_per_troupe = dead_letters_per_troupe(config);
  if (config.store.max_size != 0) {
    options.max_page_count = std::max<std::uint64_t>(config.store.max_size / kPageBytes, 1);
  }
  options.observer = observer;
  return store::open_sqlite_journal(options);  // StoreError is a std::runtime_error
}

std::string replica_name(const config::StoreOptions& store, const char* env_replica) {
  if (!store.postgres.replica.empty()) return store.postgres.replica;
  if (env_replica != nullptr && *env_replica != '\0') return env_replica;
  std::array<char, HOST_NAME_MAX + 1> host{};
  if (::gethostname(host.data(), host.size() - 1) != 0) return "trouped";
  return host.data();
}

std::string redact_dsn(std::string_view dsn) {
  if (dsn.starts_with("postgresql://") || dsn.starts_with("postgres://")) return redact_uri(dsn);
  return redact_keywords(dsn).value_or("(a connection string that does not parse; not shown)");
}

std::string describe_store(const config::StoreOptions& store) {
  switch (store.kind) {
    case config::StoreOptions::Kind::kMemory:
      return "store: memory; jobs do not survive a restart (docs/durability.md)";
    case config::StoreOptions::Kind::kPostgres: {
      const config::PostgresStoreOptions& pg = store.postgres;
      return "store: postgres " +
             (pg.dsn.empty() ? std::string("(libpq defaults and PG* environment variables)")
                             : redact_dsn(pg.dsn)) +
             ", replica " + replica_name(store, std::getenv("TROUPE_REPLICA")) + ", lease " +
             config::format_duration(pg.lease) + ", heartbeat " +
             config::format_duration(pg.heartbeat) + ", poll " + config::format_duration(pg.poll) +
             ", claim batch " + std::to_string(pg.claim_batch) +
             "; shared with other replicas (docs/cluster.md)";
    }
    case config::StoreOptions::Kind::kSqlite:
      break;
  }
  return "store: sqlite " + store.path + ", sync " + (store.sync_full ? "full" : "normal");
}

}  // namespace troupe::daemon
