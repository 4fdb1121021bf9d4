#pragma once

#include <grpcpp/support/status.h>

#include <cstddef>
#include <deque>
#include <optional>
#include <utility>

namespace troupe::daemon {

/// The bookkeeping of a server stream that writes queued messages one at a
/// time and ends after a last one (WatchJob's reactor), without gRPC, so that
/// every order of its events can be driven by a test.
///
/// Each event returns the Step the reactor must take next. The message being
/// written stays in the queue, at a stable address, until write_done(): gRPC
/// promises no order between OnCancel and the OnWriteDone of a write in
/// flight, and cancel() must neither free that message nor make write_done()
/// pop a message that is not there.
///
/// Not thread-safe: the owner calls it under its own lock, and takes the
/// returned Step (StartWrite, Finish) under that lock too.
template <class Message>
class WriteQueue {
 public:
  struct Step {
    const Message* write = nullptr;      // StartWrite this message
    std::optional<grpc::Status> finish;  // Finish the call with this status
  };

  /// Queues `message`; `last` marks the message after which the stream ends
  /// OK. Ignored once the last message is queued or the stream is finishing.
  Step push(Message message, bool last) {
    if (finished_ || last_queued_) return {};
    queue_.push_back(std::move(message));
    last_queued_ = last;
    return writing_ ? Step{} : next();
  }

  /// The write in flight completed; `ok` false means the stream broke.
  Step write_done(bool ok) {
    if (writing_) {
      writing_ = false;
      queue_.pop_front();
    }
    if (!ok) {
      queue_.clear();
      return finish({grpc::StatusCode::CANCELLED, "the stream broke while writing"});
    }
    return next();
  }

  /// The client went away: drop what waits, but not the message in flight
  /// (gRPC may still be reading it; write_done() releases it).
  Step cancel(grpc::Status status) {
    queue_.erase(writing_ ? queue_.begin() + 1 : queue_.begin(), queue_.end());
    return finish(std::move(status));
  }

  /// Finishes the stream (once) with `status`, e.g. when it cannot start.
  Step finish(grpc::Status status) {
    if (finished_) return {};
    finished_ = true;
    return {.finish = std::move(status)};
  }

  /// Messages held: waiting, plus the one in flight.
  std::size_t size() const { return queue_.size(); }
  bool writing() const { return writing_; }
  bool finished() const { return finished_; }

 private:
  Step next() {
    if (finished_) return {};
    if (queue_.empty()) return last_queued_ ? finish(grpc::Status::OK) : Step{};
    writing_ = true;
    return {.write = &queue_.front(), .finish = std::nullopt};  // a deque keeps its address
  }

  std::deque<Message> queue_;
  bool writing_ = false;
  bool last_queued_ = false;
  bool finished_ = false;
};

}  // namespace troupe::daemon
