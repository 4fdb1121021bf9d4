#include "tools/bench/targets.h"

#include "troupe/v1/troupe.grpc.pb.h"

namespace troupe::bench {
namespace {

namespace pb = ::troupe::v1;

/// Unary Submit (optionally with wait=true) of one fixed request.
class SubmitCall final : public UnaryCall {
 public:
  SubmitCall(const std::shared_ptr<grpc::Channel>& channel, pb::SubmitRequest request)
      : stub_(channel), request_(std::move(request)) {}
  void start(grpc::ClientContext& ctx, std::function<void(const grpc::Status&)> done) override {
    response_.Clear();
    stub_.async()->Submit(&ctx, &request_, &response_,
                          [done = std::move(done)](grpc::Status s) { done(s); });
  }

 private:
  pb::JobService::Stub stub_;
  const pb::SubmitRequest request_;
  pb::SubmitResponse response_;
};

/// SubmitStream: one job per request, the ack's code is the result.
class SubmitStreamCall final
    : public WindowedStreamCall<pb::StreamSubmitRequest, pb::StreamSubmitAck> {
 public:
  SubmitStreamCall(const std::shared_ptr<grpc::Channel>& channel, pb::SubmitRequest request)
      : stub_(channel), request_(std::move(request)) {}

 protected:
  void bind(grpc::ClientContext* ctx,
            grpc::ClientBidiReactor<pb::StreamSubmitRequest, pb::StreamSubmitAck>* r) override {
    stub_.async()->SubmitStream(ctx, r);
  }
  void fill(pb::StreamSubmitRequest& req, std::uint64_t seq) override {
    req.set_correlation_id(seq);
    *req.mutable_request() = request_;
  }
  grpc::StatusCode code_of(const pb::StreamSubmitAck& ack) override {
    return static_cast<grpc::StatusCode>(ack.code());
  }

 private:
  pb::JobService::Stub stub_;
  const pb::SubmitRequest request_;
};

class SubmitTarget final : public Target {
 public:
  SubmitTarget(const BenchOptions& o) : mode_(o.mode) {
    request_.set_troupe(o.troupe);
    request_.set_payload(std::string(o.payload_size, 'x'));
    request_.set_wait(o.mode == Mode::kSubmitWait);
  }
  bool streaming() const override { return mode_ == Mode::kSubmitStream; }
  std::unique_ptr<UnaryCall> unary_call(const std::shared_ptr<grpc::Channel>& ch) override {
    return std::make_unique<SubmitCall>(ch, request_);
  }
  std::unique_ptr<StreamCall> stream_call(const std::shared_ptr<grpc::Channel>& ch) override {
    pb::SubmitRequest req = request_;
    req.set_wait(false);  // not allowed on a stream
    return std::make_unique<SubmitStreamCall>(ch, std::move(req));
  }

 private:
  Mode mode_;
  pb::SubmitRequest request_;
};

}  // namespace

std::unique_ptr<Target> make_target(const BenchOptions& options) {
  switch (options.mode) {
    case Mode::kSubmit:
    case Mode::kSubmitWait:
    case Mode::kSubmitStream:
      return std::make_unique<SubmitTarget>(options);
  }
  return nullptr;
}

}  // namespace troupe::bench
