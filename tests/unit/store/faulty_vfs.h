#pragma once

/// A test VFS shim over SQLite's default ("unix") VFS that fails xSync or
/// xWrite on demand: how the store tests make fsync and write errors.

#include <atomic>
#include <chrono>

namespace troupe::store::testing {

/// While installed it is SQLite's default VFS, so every connection opened
/// then goes through it. Install before opening the journal under test and
/// uninstall after closing it. Not reentrant: one at a time per process.
class FaultyVfs {
 public:
  FaultyVfs();
  ~FaultyVfs();
  FaultyVfs(const FaultyVfs&) = delete;
  FaultyVfs& operator=(const FaultyVfs&) = delete;

  /// xSync returns SQLITE_IOERR_FSYNC while set.
  static std::atomic<bool> fail_sync;
  /// xWrite returns SQLITE_IOERR_WRITE while set.
  static std::atomic<bool> fail_write;

  /// While held, xSync waits (before syncing) until release_syncs().
  static void hold_syncs();
  /// Holds only the xSync of database files (a checkpoint's; in WAL mode a
  /// commit syncs the WAL), until release_syncs().
  static void hold_database_syncs();
  static void release_syncs();
  /// True once an xSync waits in a hold, within `bound`.
  static bool wait_for_held_sync(std::chrono::milliseconds bound);
};

}  // namespace troupe::store::testing
