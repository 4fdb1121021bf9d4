#pragma once

/// The durable journal of `store: {kind: sqlite}`: core::Journal on an
/// embedded SQLite database in WAL mode, written by one thread in group
/// commits (docs/durability.md).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/journal.h"
#include "core/options.h"
#include "store/store_error.h"

namespace troupe::store {

struct SqliteJournalOptions {
  /// The database file; its directory is created (0700) when missing. The
  /// journal also owns `<path>-wal`, `<path>-shm` and the lock file
  /// `<path>-lock`.
  std::string path;
  /// FULL: every commit is fsynced before its barriers run. NORMAL: the WAL
  /// is fsynced at checkpoints only (a process crash loses nothing, a power
  /// loss or OS crash may lose the last commits).
  bool sync_full = true;
  /// A terminal row is deleted after finished + result_ttl, or, when the
  /// job has an idempotency key, after submitted + idempotency_ttl if that
  /// is later. DEAD rows do not expire: see dead_letters_per_troupe.
  core::Duration result_ttl{0};
  core::Duration idempotency_ttl{0};
  /// DEAD rows kept per troupe (the most recently finished).
  std::size_t dead_letters_per_troupe = 1000;
  /// SQLite's max_page_count; 0: unlimited. Tests use it to fill the store.
  std::uint64_t max_page_count = 0;
  /// Metrics; called on the writer thread. Not owned; must outlive the
  /// journal.
  core::JournalObserver* observer = nullptr;
};

/// Opens (creating when missing) the journal at `options.path`.
///
/// The journal keeps core::Journal's contract. Executor: one writer thread
/// of its own ("troupe-journal") does every write, in group commits: one
/// transaction (BEGIN IMMEDIATE..COMMIT, fsynced with sync_full) holds
/// every entry appended while the previous one ran, then the barriers it
/// covers run on that thread; when idle it deletes expired rows (at most
/// 1,000 per transaction), trims dead letters and truncates the WAL. A
/// second thread ("troupe-checkpt") on a connection of its own copies the
/// WAL into the database (PASSIVE checkpoints) as it grows, so that no
/// commit waits for a checkpoint; the writer resets the WAL between commits
/// when it passes a cap. A failed checkpoint fails the journal too.
/// Thread-safety: append() and after_durable() may be called from any
/// thread and take one mutex briefly; recover() runs on the caller's thread
/// (before the first append). Any SQLite error on the write path fails the
/// journal for good (failure(), the on_failure handler once on the writer
/// thread, every waiting and later barrier). close(), also called by the
/// destructor, commits what is pending and closes the file; called from a
/// callback it only stops the writer, and the destructor finishes (which
/// must not run on the writer thread).
///
/// Holds an
/// exclusive lock on `<path>-lock` (with this process's pid in it) until
/// the journal is destroyed. Throws StoreError with an operator-facing
/// message when the file or its directory cannot be created or opened, when
/// another process (or another journal in this one) holds the lock, when
/// the file is corrupt or not a database, or when a newer trouped wrote its
/// schema.
///
/// The journal's recover() throws StoreError as well when it finds the
/// file corrupt while reading it back.
std::unique_ptr<core::Journal> open_sqlite_journal(const SqliteJournalOptions& options);

}  // namespace troupe::store
