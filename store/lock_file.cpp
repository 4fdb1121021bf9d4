#include "store/lock_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "store/sqlite_journal.h"

namespace troupe::store::detail {

namespace {

std::string read_holder(int fd) {
  char buffer[32] = {};
  ssize_t n = pread(fd, buffer, sizeof buffer - 1, 0);
  std::string text(buffer, n > 0 ? static_cast<std::size_t>(n) : 0);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace

LockFile::LockFile(const std::string& path, const std::string& store) {
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    throw StoreError("cannot create the lock file " + path + " of the store " + store + ": " +
                     std::strerror(errno));
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    int error = errno;
    std::string holder = read_holder(fd_);
    ::close(fd_);
    fd_ = -1;
    if (error == EWOULDBLOCK) {
      throw StoreError("the store " + store + " is in use by another trouped (pid " +
                       (holder.empty() ? std::string("unknown") : holder) + ", lock file " + path +
                       "): stop it first, or give this one its own store path");
    }
    throw StoreError("cannot lock " + path + " of the store " + store + ": " +
                     std::strerror(error));
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  // Best effort: the pid only improves a second process's error message.
  if (::ftruncate(fd_, 0) == 0) {
    [[maybe_unused]] ssize_t written = ::pwrite(fd_, pid.data(), pid.size(), 0);
  }
}

LockFile::~LockFile() {
  // Closing the descriptor releases the lock. The file stays: unlinking a
  // lock file races with a process that has just opened it.
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace troupe::store::detail
