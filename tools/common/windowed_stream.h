#pragma once

#include <grpcpp/client_context.h>
#include <grpcpp/support/client_callback.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>

namespace troupe::tools {

/// Drives one client bidi stream with at most `window` requests awaiting
/// their response (one response per request, in order, as SubmitStream and
/// EchoStream promise). Requests come from a producer; the stream half-closes
/// when the producer runs dry and every response has arrived.
///
/// Threading: gRPC runs the reactor callbacks on its own threads. `next` and
/// `on_response` are called with `mu_` held, so they never run concurrently
/// with each other for one stream and need no locking of their own for state
/// private to this stream. `wait()` blocks the calling (non-gRPC) thread.
template <class Request, class Response>
class WindowedStream final : public grpc::ClientBidiReactor<Request, Response> {
 public:
  /// Fills the next request; false when there is none left to send.
  using Next = std::function<bool(Request&)>;
  using OnResponse = std::function<void(const Response&)>;
  /// Binds this reactor to a call, e.g. stub->async()->SubmitStream(ctx, r).
  using Bind =
      std::function<void(grpc::ClientContext*, grpc::ClientBidiReactor<Request, Response>*)>;

  WindowedStream(std::uint32_t window, Next next, OnResponse on_response)
      : window_(window == 0 ? 1 : window),
        next_(std::move(next)),
        on_response_(std::move(on_response)) {}

  grpc::ClientContext& context() { return ctx_; }

  /// Starts the call. Call once.
  void start(const Bind& bind) {
    bind(&ctx_, this);
    std::lock_guard lock(mu_);
    this->AddHold();  // released when the producer runs dry (see maybe_finish_locked)
    holding_ = true;
    fill_locked();
    this->StartRead(&response_);
    this->StartCall();
  }

  /// Blocks until the stream has ended; returns its final status.
  grpc::Status wait() {
    std::unique_lock lock(mu_);
    done_cv_.wait(lock, [&] { return done_; });
    return status_;
  }

  std::uint64_t sent() const {
    std::lock_guard lock(mu_);
    return sent_;
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    if (!ok) {
      // The stream broke; OnDone will report why. Stop producing.
      exhausted_ = true;
      pending_.clear();
      release_hold_locked();
      return;
    }
    write_next_locked();
    // The last ack can arrive before the last write's completion: then it is
    // this callback that may half-close.
    maybe_finish_locked();
  }

  void OnReadDone(bool ok) override {
    std::lock_guard lock(mu_);
    if (!ok) {
      // Server closed its side (or the stream broke): nothing more will come.
      exhausted_ = true;
      pending_.clear();
      release_hold_locked();
      return;
    }
    ++received_;
    on_response_(response_);
    fill_locked();
    maybe_finish_locked();
    this->StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    std::lock_guard lock(mu_);
    status_ = status;
    done_ = true;
    done_cv_.notify_all();
  }

 private:
  // Produces requests while the window allows, and writes the first if idle.
  void fill_locked() {
    while (!exhausted_ && sent_ - received_ < window_) {
      Request req;
      if (!next_(req)) {
        exhausted_ = true;
        break;
      }
      pending_.push_back(std::move(req));
      ++sent_;
    }
    write_next_locked();
    maybe_finish_locked();
  }

  // Only one write may be outstanding on a gRPC stream.
  void write_next_locked() {
    if (writing_ || pending_.empty()) return;
    writing_ = true;
    in_write_ = std::move(pending_.front());
    pending_.pop_front();
    this->StartWrite(&in_write_);
  }

  void maybe_finish_locked() {
    if (exhausted_ && pending_.empty() && !writing_ && !half_closed_ && received_ == sent_) {
      half_closed_ = true;
      this->StartWritesDone();
      release_hold_locked();
    }
  }

  void release_hold_locked() {
    if (holding_) {
      holding_ = false;
      this->RemoveHold();
    }
  }

  const std::uint64_t window_;
  Next next_;
  OnResponse on_response_;
  grpc::ClientContext ctx_;
  Response response_;
  Request in_write_;

  mutable std::mutex mu_;  // guards everything below and serialises next_/on_response_
  std::condition_variable done_cv_;
  std::deque<Request> pending_;
  std::uint64_t sent_ = 0;
  std::uint64_t received_ = 0;
  bool writing_ = false;
  bool exhausted_ = false;
  bool half_closed_ = false;
  bool holding_ = false;
  bool done_ = false;
  grpc::Status status_;
};

}  // namespace troupe::tools
