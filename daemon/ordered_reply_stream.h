#pragma once

#include <grpcpp/support/server_callback.h>
#include <grpcpp/support/status.h>

#include <cstddef>
#include <deque>
#include <mutex>
#include <variant>

namespace troupe::daemon {

/// A bidi stream on gRPC's callback API that answers each request with one
/// reply, in order: trouped's SubmitStream (one ack per job) and the bare
/// baseline's EchoStream (tests/bench/echo_server) are both this, so the
/// baseline pays exactly trouped's stream mechanics.
///
/// Only one Write is ever outstanding; replies wait in a bounded queue and
/// reading pauses while it is full, so a client that does not read its
/// replies is slowed by gRPC flow control instead of growing our memory.
/// OnReadDone and OnWriteDone may run concurrently on gRPC threads: `mutex_`
/// guards the queue and the flags. reply_to() runs on the reading thread,
/// one request at a time. Deletes itself when gRPC is done with it.
template <class Request, class Reply>
class OrderedReplyStream : public grpc::ServerBidiReactor<Request, Reply> {
 public:
  void OnReadDone(bool ok) override {
    if (!ok) {
      std::lock_guard lock(mutex_);
      reads_done_ = true;
      maybe_finish_locked();
      return;
    }
    auto outcome = reply_to(request_);
    std::lock_guard lock(mutex_);
    if (finished_) return;
    if (auto* status = std::get_if<grpc::Status>(&outcome)) {
      // Read no more; end with `status` once the replies queued are written.
      reads_done_ = true;
      end_status_ = std::move(*status);
      maybe_finish_locked();
      return;
    }
    replies_.push_back(std::move(std::get<Reply>(outcome)));
    if (!writing_) write_front_locked();
    if (replies_.size() < kMaxQueuedReplies) {
      this->StartRead(&request_);
    } else {
      read_paused_ = true;
    }
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mutex_);
    writing_ = false;
    replies_.pop_front();
    if (!ok) {
      // The client went away; nothing more can be written. An outstanding
      // read completes with ok=false by itself.
      replies_.clear();
      if (!finished_) {
        finished_ = true;
        this->Finish({grpc::StatusCode::CANCELLED, "the stream broke while writing replies"});
      }
      return;
    }
    if (!replies_.empty()) write_front_locked();
    if (read_paused_ && replies_.size() < kMaxQueuedReplies / 2) {
      read_paused_ = false;
      this->StartRead(&request_);
    }
    maybe_finish_locked();
  }

  void OnDone() override { delete this; }

 protected:
  static constexpr std::size_t kMaxQueuedReplies = 64;

  OrderedReplyStream() = default;
  ~OrderedReplyStream() override = default;

  /// Starts reading; the derived constructor's last statement (a read may
  /// complete, and call reply_to, on another thread at once).
  void start() { this->StartRead(&request_); }

  /// The reply to one request (which it may move from); or a status, which
  /// stops reading and ends the stream with it after the replies before.
  virtual std::variant<Reply, grpc::Status> reply_to(Request& request) = 0;

 private:
  void write_front_locked() {
    writing_ = true;
    this->StartWrite(&replies_.front());  // deque keeps the front's address stable
  }

  void maybe_finish_locked() {
    if (reads_done_ && replies_.empty() && !writing_ && !finished_) {
      finished_ = true;
      this->Finish(end_status_);
    }
  }

  Request request_;   // touched only between a read's completion and the next
  std::mutex mutex_;  // guards everything below
  std::deque<Reply> replies_;
  bool writing_ = false;
  bool read_paused_ = false;
  bool reads_done_ = false;
  bool finished_ = false;
  grpc::Status end_status_;  // OK unless reply_to() ended the stream
};

}  // namespace troupe::daemon
