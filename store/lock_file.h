#pragma once

/// The lock that keeps a second trouped off a store file.

#include <string>

namespace troupe::store::detail {

/// An exclusive flock() on a lock file, held from acquire() until
/// destruction, with the holder's pid written in it for the error a second
/// process reads. flock() locks belong to the open file description, so a
/// second acquire() in the same process is refused as well. Not
/// thread-safe; owned by the journal.
class LockFile {
 public:
  /// Creates `path` when missing and locks it. Throws StoreError naming
  /// `store` (the file the lock guards) and the holder's pid when another
  /// process holds it, or why the lock file cannot be created.
  LockFile(const std::string& path, const std::string& store);
  ~LockFile();
  LockFile(const LockFile&) = delete;
  LockFile& operator=(const LockFile&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace troupe::store::detail
