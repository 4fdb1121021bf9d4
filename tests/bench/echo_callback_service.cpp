#include "tests/bench/echo_callback_service.h"

#include <deque>
#include <mutex>

namespace troupe::bench {
namespace {

/// One reply per request, in order. Mirrors trouped's SubmitStreamReactor
/// (daemon/job_service.cpp) so the baseline pays the same stream mechanics:
/// only one Write outstanding, replies wait in a bounded queue, reading pauses
/// while it is full. OnReadDone and OnWriteDone may run concurrently on gRPC
/// threads: `mutex_` guards the queue and the flags.
class EchoStreamReactor final : public grpc::ServerBidiReactor<v1::EchoRequest, v1::EchoReply> {
 public:
  EchoStreamReactor() { StartRead(&request_); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      std::lock_guard lock(mutex_);
      reads_done_ = true;
      maybe_finish_locked();
      return;
    }
    v1::EchoReply reply;
    reply.set_correlation_id(request_.correlation_id());
    *reply.mutable_payload() = std::move(*request_.mutable_payload());
    std::lock_guard lock(mutex_);
    if (finished_) return;
    replies_.push_back(std::move(reply));
    if (!writing_) write_front_locked();
    if (replies_.size() < kMaxQueuedReplies) {
      StartRead(&request_);
    } else {
      read_paused_ = true;
    }
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mutex_);
    writing_ = false;
    replies_.pop_front();
    if (!ok) {
      // The client went away; an outstanding read completes with ok=false.
      replies_.clear();
      if (!finished_) {
        finished_ = true;
        Finish({grpc::StatusCode::CANCELLED, "the stream broke while writing replies"});
      }
      return;
    }
    if (!replies_.empty()) write_front_locked();
    if (read_paused_ && replies_.size() < kMaxQueuedReplies / 2) {
      read_paused_ = false;
      StartRead(&request_);
    }
    maybe_finish_locked();
  }

  void OnDone() override { delete this; }

 private:
  // The same bound as trouped's kMaxQueuedAcks.
  static constexpr std::size_t kMaxQueuedReplies = 64;

  void write_front_locked() {
    writing_ = true;
    StartWrite(&replies_.front());  // deque keeps the front's address stable
  }

  void maybe_finish_locked() {
    if (reads_done_ && replies_.empty() && !writing_ && !finished_) {
      finished_ = true;
      Finish(grpc::Status::OK);
    }
  }

  v1::EchoRequest request_;  // touched only between a read's completion and the next
  std::mutex mutex_;         // guards everything below
  std::deque<v1::EchoReply> replies_;
  bool writing_ = false;
  bool read_paused_ = false;
  bool reads_done_ = false;
  bool finished_ = false;
};

}  // namespace

grpc::ServerUnaryReactor* EchoCallbackService::Echo(grpc::CallbackServerContext* context,
                                                    const v1::EchoRequest* request,
                                                    v1::EchoReply* reply) {
  reply->set_payload(request->payload());
  reply->set_correlation_id(request->correlation_id());
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerBidiReactor<v1::EchoRequest, v1::EchoReply>* EchoCallbackService::EchoStream(
    grpc::CallbackServerContext* /*context*/) {
  return new EchoStreamReactor();
}

}  // namespace troupe::bench
