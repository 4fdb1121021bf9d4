#pragma once

#include <grpcpp/support/server_callback.h>
#include <grpcpp/support/status.h>

#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <variant>

namespace troupe::daemon {

/// reply_to()'s answer when the reply comes later, through the Later it took
/// from defer().
struct Deferred {};

/// A bidi stream on gRPC's callback API that answers each request with one
/// reply, in order: trouped's SubmitStream (one ack per job) and the bare
/// baseline's EchoStream (tests/bench/echo_server) are both this, so the
/// baseline pays exactly trouped's stream mechanics.
///
/// A reply may come later (SubmitStream acks a job once its accept is
/// durable): reply_to() takes a place in the reply order with defer() and
/// returns Deferred; whoever completes the Later fills that place, and
/// replies are still written in request order (a ready reply waits behind
/// one that is not).
///
/// Only one Write is ever outstanding; replies wait in a bounded queue and
/// reading pauses while it is full, so a client that does not read its
/// replies is slowed by gRPC flow control instead of growing our memory.
/// OnReadDone and OnWriteDone (and Later completions, on any thread) may
/// run concurrently: `mutex_` guards the queue and the flags. reply_to()
/// runs on the reading thread, one request at a time. Deletes itself when
/// gRPC is done with it and no Later is outstanding.
template <class Request, class Reply>
class OrderedReplyStream : public grpc::ServerBidiReactor<Request, Reply> {
  struct Slot {
    Reply reply;
    bool ready = false;
  };

 public:
  /// A place in the reply order, to be filled exactly once (from any thread).
  class Later {
   public:
    void operator()(Reply reply) { stream_->fill(slot_, std::move(reply)); }

   private:
    friend class OrderedReplyStream;
    Later(OrderedReplyStream* stream, std::shared_ptr<Slot> slot)
        : stream_(stream), slot_(std::move(slot)) {}
    OrderedReplyStream* stream_;
    std::shared_ptr<Slot> slot_;
  };

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
    if (auto* reply = std::get_if<Reply>(&outcome)) {
      replies_.push_back(std::make_shared<Slot>(Slot{std::move(*reply), true}));
      if (!writing_) write_front_locked();
    }
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
    write_front_locked();
    if (read_paused_ && replies_.size() < kMaxQueuedReplies / 2) {
      read_paused_ = false;
      this->StartRead(&request_);
    }
    maybe_finish_locked();
  }

  void OnDone() override {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
      if (outstanding_ != 0) return;  // the last Later deletes it
    }
    delete this;
  }

 protected:
  static constexpr std::size_t kMaxQueuedReplies = 64;

  OrderedReplyStream() = default;
  ~OrderedReplyStream() override = default;

  /// Starts reading; the derived constructor's last statement (a read may
  /// complete, and call reply_to, on another thread at once).
  void start() { this->StartRead(&request_); }

  /// The reply to one request (which it may move from); Deferred after
  /// taking a Later from defer(); or a status, which stops reading and ends
  /// the stream with it after the replies before.
  virtual std::variant<Reply, grpc::Status, Deferred> reply_to(Request& request) = 0;

  /// Reserves the next place in the reply order (only from reply_to()).
  Later defer() {
    auto slot = std::make_shared<Slot>();
    std::lock_guard lock(mutex_);
    replies_.push_back(slot);
    ++outstanding_;
    return Later(this, std::move(slot));
  }

 private:
  void fill(const std::shared_ptr<Slot>& slot, Reply reply) {
    {
      std::lock_guard lock(mutex_);
      slot->reply = std::move(reply);
      slot->ready = true;
      --outstanding_;
      if (!done_) {
        write_front_locked();
        maybe_finish_locked();
        return;
      }
      if (outstanding_ != 0) return;
    }
    delete this;  // gRPC is done with it and this was the last Later
  }

  /// Writes the front reply when it is ready and no write is outstanding.
  void write_front_locked() {
    if (writing_ || finished_ || replies_.empty() || !replies_.front()->ready) return;
    writing_ = true;
    this->StartWrite(&replies_.front()->reply);  // the slot stays put until OnWriteDone
  }

  void maybe_finish_locked() {
    if (reads_done_ && replies_.empty() && !writing_ && !finished_) {
      finished_ = true;
      this->Finish(end_status_);
    }
  }

  Request request_;   // touched only between a read's completion and the next
  std::mutex mutex_;  // guards everything below
  std::deque<std::shared_ptr<Slot>> replies_;
  std::size_t outstanding_ = 0;  // Laters not filled yet
  bool writing_ = false;
  bool read_paused_ = false;
  bool reads_done_ = false;
  bool finished_ = false;
  bool done_ = false;        // OnDone ran
  grpc::Status end_status_;  // OK unless reply_to() ended the stream
};

}  // namespace troupe::daemon
