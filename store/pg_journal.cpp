#include "store/pg_journal.h"

// A placeholder until the PostgreSQL journal lands: it refuses to open, so
// that `store: {kind: postgres}` fails at start with a clear message rather
// than running on something that is not there.

namespace troupe::store {

std::unique_ptr<core::Journal> open_pg_journal(const PgJournalOptions&) {
  throw StoreError("postgres store: not built into this trouped yet");
}

std::string probe_postgres(const std::string&, core::Duration) {
  return "postgres store: not built into this trouped yet";
}

}  // namespace troupe::store
