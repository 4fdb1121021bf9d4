#pragma once

/// A unix datagram socket standing in for systemd's NOTIFY_SOCKET.

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

namespace troupe::test {

/// Binds a datagram socket at `path`; receive() waits (poll with a bound)
/// for the next sd_notify message. Not thread-safe; one reader.
class NotifySocket {
 public:
  explicit NotifySocket(std::filesystem::path path);
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  const std::filesystem::path& path() const { return path_; }
  /// The next datagram, or nullopt when none arrives within `bound`.
  std::optional<std::string> receive(std::chrono::milliseconds bound);
  /// Receives until a message contains `needle`; false when the bound passes.
  bool wait_for(const std::string& needle, std::chrono::milliseconds bound);

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

}  // namespace troupe::test
