#pragma once

/// The journal `store:` asks for (docs/durability.md): composition, kept
/// out of daemon.cpp so that the choice is in one place.

#include <memory>

#include "config/config.h"
#include "core/journal.h"

namespace troupe::daemon {

/// Opens the journal of `config.store`: the memory journal, or the SQLite
/// journal at config.store.path (its result and idempotency TTLs from
/// server.job_store, dead letters kept per troupe from the largest
/// dead_letter_capacity, store.max_size as a page limit). `observer` gets
/// the store's metrics (may be null; must outlive the journal). Throws
/// std::runtime_error with an operator-facing message when the store
/// cannot be opened (in use by another trouped, corrupt, not writable, ...).
std::unique_ptr<core::Journal> open_journal(const config::Config& config,
                                            core::JournalObserver* observer);

/// One line for the log at start: what the store is and what it promises.
std::string describe_store(const config::StoreOptions& store);

}  // namespace troupe::daemon
