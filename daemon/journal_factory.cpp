#include "daemon/journal_factory.h"

#include <algorithm>
#include <string>

#include "store/sqlite_journal.h"

namespace troupe::daemon {

namespace {
// SQLite's default page size (the store does not change it): max_size in pages.
constexpr std::size_t kPageBytes = 4096;
}  // namespace

std::unique_ptr<core::Journal> open_journal(const config::Config& config,
                                            core::JournalObserver* observer) {
  if (config.store.kind == config::StoreOptions::Kind::kMemory) return core::make_memory_journal();
  store::SqliteJournalOptions options;
  options.path = config.store.path;
  options.sync_full = config.store.sync_full;
  options.result_ttl = config.runtime.job_store.result_ttl;
  options.idempotency_ttl = config.runtime.job_store.idempotency_ttl;
  std::size_t dead_letters = 0;
  for (const auto& t : config.troupes)
    dead_letters = std::max(dead_letters, t.dead_letter_capacity);
  options.dead_letters_per_troupe = dead_letters;
  if (config.store.max_size != 0) {
    options.max_page_count = std::max<std::uint64_t>(config.store.max_size / kPageBytes, 1);
  }
  options.observer = observer;
  return store::open_sqlite_journal(options);  // StoreError is a std::runtime_error
}

std::string describe_store(const config::StoreOptions& store) {
  if (store.kind == config::StoreOptions::Kind::kMemory) {
    return "store: memory; jobs do not survive a restart (docs/durability.md)";
  }
  return "store: sqlite " + store.path + ", sync " + (store.sync_full ? "full" : "normal");
}

}  // namespace troupe::daemon
