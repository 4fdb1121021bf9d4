#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/status.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "tools/bench/bench_options.h"
#include "tools/common/latency_stats.h"
#include "tools/common/windowed_stream.h"

namespace troupe::bench {

/// One unary call kind. Owns the request and response of one call at a time:
/// the load loop starts the next call only after `done` has run.
class UnaryCall {
 public:
  virtual ~UnaryCall() = default;
  /// Starts the call on `ctx`; `done` runs on a gRPC callback thread.
  virtual void start(grpc::ClientContext& ctx, std::function<void(const grpc::Status&)> done) = 0;
};

/// Hooks a stream call uses to ask for work and report results. Called with the
/// stream's lock held (see WindowedStream), never concurrently for one stream.
struct StreamHooks {
  std::function<bool()> acquire;                // may another request be sent?
  std::function<void()> sent;                   // a request was queued for writing
  std::function<void(grpc::StatusCode)> acked;  // the oldest outstanding request was answered
};

/// One streaming call kind: a bidi stream, one response per request, in order.
class StreamCall {
 public:
  virtual ~StreamCall() = default;
  virtual void start(std::uint32_t window, StreamHooks hooks) = 0;
  /// Blocks until the stream has ended.
  virtual grpc::Status wait() = 0;
};

/// Implements StreamCall over WindowedStream; a concrete stream target only
/// says how to bind the call, fill a request and read a response's code.
template <class Request, class Response>
class WindowedStreamCall : public StreamCall {
 public:
  void start(std::uint32_t window, StreamHooks hooks) override {
    hooks_ = std::move(hooks);
    stream_ = std::make_unique<tools::WindowedStream<Request, Response>>(
        window,
        [this](Request& req) {
          if (!hooks_.acquire()) return false;
          fill(req, next_seq_++);
          hooks_.sent();
          return true;
        },
        [this](const Response& resp) { hooks_.acked(code_of(resp)); });
    stream_->start([this](grpc::ClientContext* ctx, grpc::ClientBidiReactor<Request, Response>* r) {
      bind(ctx, r);
    });
  }
  grpc::Status wait() override { return stream_->wait(); }

 protected:
  virtual void bind(grpc::ClientContext* ctx, grpc::ClientBidiReactor<Request, Response>* r) = 0;
  virtual void fill(Request& req, std::uint64_t seq) = 0;
  virtual grpc::StatusCode code_of(const Response& resp) = 0;

 private:
  StreamHooks hooks_;
  std::uint64_t next_seq_ = 0;
  std::unique_ptr<tools::WindowedStream<Request, Response>> stream_;
};

/// What the bench drives: a factory of unary calls or of streams, one per
/// load slot, each on a given channel. Thread-compatible: used from the
/// bench's main thread only.
class Target {
 public:
  virtual ~Target() = default;
  virtual bool streaming() const = 0;
  virtual std::unique_ptr<UnaryCall> unary_call(const std::shared_ptr<grpc::Channel>&) {
    return nullptr;
  }
  virtual std::unique_ptr<StreamCall> stream_call(const std::shared_ptr<grpc::Channel>&) {
    return nullptr;
  }
};

/// The measured outcome of a run.
struct BenchReport {
  BenchOptions options;
  std::chrono::nanoseconds elapsed{0};  // first measured start to last measured completion
  std::uint64_t requests = 0;           // measured calls (streams: jobs) that completed
  std::uint64_t ok = 0;
  std::map<int, std::uint64_t> errors;  // by grpc::StatusCode
  std::uint64_t stream_failures = 0;    // streams that ended with a non-OK status
  tools::LatencyStats latency;          // of OK calls
  double throughput() const;            // requests per second
};

/// Runs the closed loop until the budget is used, then returns the report.
/// Blocks the calling thread; all calls run on gRPC's callback threads.
BenchReport run_bench(const BenchOptions& options, Target& target,
                      const std::vector<std::shared_ptr<grpc::Channel>>& channels);

}  // namespace troupe::bench
