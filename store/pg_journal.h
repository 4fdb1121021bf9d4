#pragma once

/// The shared journal of `store: {kind: postgres}`: core::Journal on a
/// PostgreSQL database that several trouped replicas share, with leases on
/// the jobs each replica runs (docs/cluster.md).

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "core/journal.h"
#include "core/options.h"
#include "store/store_error.h"

namespace troupe::store {

struct PgJournalOptions {
  /// A libpq connection string or URI ("host=... dbname=... user=...",
  /// "postgresql://..."); a password is better given by PGPASSFILE or
  /// PGPASSWORD than written here.
  std::string dsn;
  /// This replica's name as other replicas and the admin API show it (the
  /// pod or host name). Several processes may share a name; each start
  /// registers a new incarnation with a lease of its own.
  std::string replica;
  /// A replica's jobs are taken over by others once its lease has not been
  /// renewed for this long.
  core::Duration lease{std::chrono::seconds(15)};
  /// How often a replica renews its lease (at most lease / 3).
  core::Duration heartbeat{std::chrono::seconds(5)};
  /// How often a replica looks for unowned jobs when no notification
  /// arrived (a backstop: LISTEN/NOTIFY wakes it first).
  core::Duration poll{std::chrono::seconds(1)};
  /// Jobs claimed per query, at most (and never more than the troupe has
  /// room for).
  std::size_t claim_batch = 100;
  /// How long opening waits for the server.
  core::Duration connect_timeout{std::chrono::seconds(5)};
  /// As SqliteJournalOptions: terminal rows expire after finished +
  /// result_ttl (or submitted + idempotency_ttl when later); DEAD rows kept
  /// per troupe, the newest.
  core::Duration result_ttl{0};
  core::Duration idempotency_ttl{0};
  std::size_t dead_letters_per_troupe = 1000;
  /// Metrics; called on the journal's thread. Not owned; must outlive the
  /// journal.
  core::JournalObserver* observer = nullptr;
};

/// Connects to `options.dsn`, creates or migrates the schema (under an
/// advisory lock, so replicas starting together do not race) and registers
/// this replica's incarnation (docs/store.md, "The PostgreSQL journal").
///
/// The journal keeps core::Journal's contract and is shared() (ClusterHooks,
/// find, request_cancel, dead_jobs). Executor: one thread of its own
/// ("troupe-pg") runs an io_context that drives one libpq connection in
/// non-blocking pipeline mode through its socket (no thread per query):
/// group commits, heartbeats, claims, LISTEN/NOTIFY and lookups.
/// Thread-safety: append(), after_durable() and the lookups may be called
/// from any thread; hooks and callbacks run on the journal's thread.
/// recover() returns no job: a new incarnation owns nothing, and jobs left
/// by others (or by this replica's earlier incarnations) arrive through
/// ClusterHooks::claimed, which starts at recover() (set the hooks before).
/// A lost connection is transient (ClusterHooks::availability; reconnect
/// with backoff; what is pending is written once it is back); a lost lease
/// reports its jobs lost() and registers anew. failure() is set only when
/// the server refuses a commit's statements. close(), also called by the
/// destructor, commits what is pending, releases the jobs this incarnation
/// still owns to the other replicas and removes its incarnation, waiting at
/// most max(lease, 5 s) for the server; called on the journal's thread (from
/// a hook or a barrier) it only starts that, and the destructor (which must
/// not run on that thread) finishes. Owner: the caller of open_pg_journal.
///
/// Throws StoreError with an operator-facing message when the server
/// cannot be reached or refuses the login, or when a newer trouped wrote
/// the schema.
std::unique_ptr<core::Journal> open_pg_journal(const PgJournalOptions& options);

/// For `trouped --check-config`: connects to `dsn` and disconnects. Empty
/// when the server answered, else what went wrong, for an operator.
std::string probe_postgres(const std::string& dsn, core::Duration timeout);

}  // namespace troupe::store
