#pragma once

/// The journal `store:` asks for (docs/durability.md, docs/cluster.md):
/// composition, kept out of daemon.cpp so that the choice is in one place.

#include <memory>
#include <string>
#include <string_view>

#include "config/config.h"
#include "core/journal.h"

namespace troupe::daemon {

/// Opens the journal of `config.store`: the memory journal; the SQLite
/// journal at config.store.path (store.max_size as a page limit); or the
/// PostgreSQL journal at store.dsn, shared with other replicas, as replica
/// replica_name(). The durable ones take their result and idempotency TTLs
/// from server.job_store and keep dead letters per troupe up to the largest
/// dead_letter_capacity. `observer` gets the store's metrics (may be null;
/// must outlive the journal). Throws std::runtime_error with an
/// operator-facing message when the store cannot be opened (in use by
/// another trouped, corrupt, not writable, the database unreachable, ...).
std::unique_ptr<core::Journal> open_journal(const config::Config& config,
                                            core::JournalObserver* observer);

/// The name this replica registers under with kind postgres: store.replica
/// when given, else `env_replica` ($TROUPE_REPLICA) when set and not empty,
/// else the host name (a pod's name on Kubernetes).
std::string replica_name(const config::StoreOptions& store, const char* env_replica);

/// `dsn` with its password replaced by "***" (`password=...` of a key/value
/// string, the password of a URI's user info or its `password` parameter),
/// for logs and summaries. A key/value string that does not parse is not
/// shown at all.
std::string redact_dsn(std::string_view dsn);

/// One line for the log at start: what the store is and what it promises.
/// Never shows a password.
std::string describe_store(const config::StoreOptions& store);

}  // namespace troupe::daemon
