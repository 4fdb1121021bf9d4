#include "tests/bench/echo_cq_server.h"

#include <deque>
#include <mutex>

namespace troupe::bench {

struct EchoCqServer::Queue {
  std::unique_ptr<grpc::ServerCompletionQueue> cq;
  // Guards `stopping`. The polling thread holds it while a call reacts, so no
  // call starts an operation on the queue after shutdown() has shut it down
  // (gRPC asserts on that).
  std::mutex mutex;
  bool stopping = false;
};

namespace {

using Service = v1::EchoService::AsyncService;

// Calls requested ahead on each queue, so a burst of calls finds one waiting.
constexpr int kEchoRequestsPerQueue = 32;
constexpr int kStreamRequestsPerQueue = 8;

class Call;

enum class Op { kRequest, kRead, kWrite, kFinish };

/// The completion-queue tag of one operation of one call.
struct Tag {
  Call* call;
  Op op;
};

/// A call's state machine. Counts its outstanding operations and frees
/// itself when none is left: every reaction that wants the call to go on
/// starts another operation. Touched only by its queue's thread.
class Call {
 public:
  virtual ~Call() = default;

  /// An operation completed. While the queue stops, no reaction runs (it
  /// could start an operation on a shut-down queue): the call only waits for
  /// its other operations to be flushed.
  static void complete(const Tag& tag, bool ok, bool stopping) {
    Call* call = tag.call;
    --call->pending_;
    if (!stopping) call->react(tag.op, ok);
    if (call->pending_ == 0) delete call;
  }

 protected:
  Call(Service& service, grpc::ServerCompletionQueue& cq) : service_(service), cq_(cq) {}
  virtual void react(Op op, bool ok) = 0;
  /// The tag for the next `op`; counts it as outstanding.
  void* begin(Op op) {
    ++pending_;
    switch (op) {
      case Op::kRequest:
        return &request_tag_;
      case Op::kRead:
        return &read_tag_;
      case Op::kWrite:
        return &write_tag_;
      case Op::kFinish:
        break;
    }
    return &finish_tag_;
  }

  Service& service_;
  grpc::ServerCompletionQueue& cq_;
  grpc::ServerContext ctx_;

 private:
  int pending_ = 0;
  Tag request_tag_{this, Op::kRequest};
  Tag read_tag_{this, Op::kRead};
  Tag write_tag_{this, Op::kWrite};
  Tag finish_tag_{this, Op::kFinish};
};

/// Unary Echo: requested -> answered -> freed.
class EchoCall final : public Call {
 public:
  static void request(Service& service, grpc::ServerCompletionQueue& cq) {
    auto* call = new EchoCall(service, cq);
    service.RequestEcho(&call->ctx_, &call->request_, &call->responder_, &cq, &cq,
                        call->begin(Op::kRequest));
  }

 private:
  EchoCall(Service& service, grpc::ServerCompletionQueue& cq)
      : Call(service, cq), responder_(&ctx_) {}

  void react(Op op, bool ok) override {
    if (op != Op::kRequest || !ok) return;  // finished, or the server shut down
    request(service_, cq_);                 // keep as many requested as before
    reply_.set_payload(request_.payload());
    reply_.set_correlation_id(request_.correlation_id());
    responder_.Finish(reply_, grpc::Status::OK, begin(Op::kFinish));
  }

  v1::EchoRequest request_;
  v1::EchoReply reply_;
  grpc::ServerAsyncResponseWriter<v1::EchoReply> responder_;
};

/// EchoStream, the same protocol as the callback style's reactor: one read
/// and one write outstanding at most, replies queued in order, reading
/// paused while the queue is full.
class EchoStreamCall final : public Call {
 public:
  static void request(Service& service, grpc::ServerCompletionQueue& cq) {
    auto* call = new EchoStreamCall(service, cq);
    service.RequestEchoStream(&call->ctx_, &call->stream_, &cq, &cq, call->begin(Op::kRequest));
  }

 private:
  static constexpr std::size_t kMaxQueuedReplies = 64;

  EchoStreamCall(Service& service, grpc::ServerCompletionQueue& cq)
      : Call(service, cq), stream_(&ctx_) {}

  void react(Op op, bool ok) override {
    switch (op) {
      case Op::kRequest:
        if (!ok) return;
        request(service_, cq_);
        stream_.Read(&request_, begin(Op::kRead));
        return;
      case Op::kRead:
        on_read(ok);
        return;
      case Op::kWrite:
        on_write(ok);
        return;
      case Op::kFinish:
        return;
    }
  }

  void on_read(bool ok) {
    if (!ok) {
      reads_done_ = true;
      maybe_finish();
      return;
    }
    if (finished_) return;
    v1::EchoReply reply;
    reply.set_correlation_id(request_.correlation_id());
    *reply.mutable_payload() = std::move(*request_.mutable_payload());
    replies_.push_back(std::move(reply));
    if (!writing_) write_front();
    if (replies_.size() < kMaxQueuedReplies) {
      stream_.Read(&request_, begin(Op::kRead));
    } else {
      read_paused_ = true;
    }
  }

  void on_write(bool ok) {
    writing_ = false;
    replies_.pop_front();
    if (!ok) {
      // The client went away; an outstanding read completes with ok=false.
      replies_.clear();
      if (!finished_) {
        finished_ = true;
        stream_.Finish({grpc::StatusCode::CANCELLED, "the stream broke while writing replies"},
                       begin(Op::kFinish));
      }
      return;
    }
    if (!replies_.empty()) write_front();
    if (read_paused_ && replies_.size() < kMaxQueuedReplies / 2) {
      read_paused_ = false;
      stream_.Read(&request_, begin(Op::kRead));
    }
    maybe_finish();
  }

  void write_front() {
    writing_ = true;
    stream_.Write(replies_.front(), begin(Op::kWrite));
  }

  void maybe_finish() {
    if (reads_done_ && replies_.empty() && !writing_ && !finished_) {
      finished_ = true;
      stream_.Finish(grpc::Status::OK, begin(Op::kFinish));
    }
  }

  grpc::ServerAsyncReaderWriter<v1::EchoReply, v1::EchoRequest> stream_;
  v1::EchoRequest request_;
  std::deque<v1::EchoReply> replies_;
  bool writing_ = false;
  bool read_paused_ = false;
  bool reads_done_ = false;
  bool finished_ = false;
};

void poll(EchoCqServer::Queue& queue) {
  void* tag = nullptr;
  bool ok = false;
  // Next returns false once the queue is shut down and drained.
  while (queue.cq->Next(&tag, &ok)) {
    std::lock_guard lock(queue.mutex);
    Call::complete(*static_cast<Tag*>(tag), ok, queue.stopping);
  }
}

}  // namespace

EchoCqServer::EchoCqServer(grpc::ServerBuilder& builder, std::uint32_t threads) {
  builder.RegisterService(&service_);
  for (std::uint32_t i = 0; i < threads; ++i) {
    auto queue = std::make_unique<Queue>();
    queue->cq = builder.AddCompletionQueue();
    queues_.push_back(std::move(queue));
  }
}

EchoCqServer::~EchoCqServer() {
  shutdown();
}

void EchoCqServer::start() {
  for (auto& queue : queues_) {
    for (int i = 0; i < kEchoRequestsPerQueue; ++i) EchoCall::request(service_, *queue->cq);
    for (int i = 0; i < kStreamRequestsPerQueue; ++i) {
      EchoStreamCall::request(service_, *queue->cq);
    }
  }
  for (auto& queue : queues_) threads_.emplace_back([&q = *queue] { poll(q); });
}

void EchoCqServer::shutdown() {
  for (auto& queue : queues_) {
    std::lock_guard lock(queue->mutex);
    if (queue->stopping) continue;
    queue->stopping = true;
    queue->cq->Shutdown();
  }
  if (threads_.empty()) {
    // Never started (or already stopped): drain here; gRPC wants every
    // queue drained before it is destroyed.
    for (auto& queue : queues_) poll(*queue);
  }
  for (auto& thread : threads_) thread.join();
  threads_.clear();
}

}  // namespace troupe::bench
