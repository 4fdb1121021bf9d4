#include "tools/bench/targets.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include "troupe/bench/v1/echo.grpc.pb.h"
#include "troupe/v1/troupe.grpc.pb.h"

namespace troupe::bench {
namespace {

namespace pb = ::troupe::v1;
namespace echo = ::troupe::bench::v1;

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
  explicit SubmitTarget(const BenchOptions& o) : mode_(o.mode) {
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

/// Unary Echo of echo_server: the bare gRPC cost of one call.
class EchoCall final : public UnaryCall {
 public:
  EchoCall(const std::shared_ptr<grpc::Channel>& channel, echo::EchoRequest request)
      : stub_(channel), request_(std::move(request)) {}
  void start(grpc::ClientContext& ctx, std::function<void(const grpc::Status&)> done) override {
    reply_.Clear();
    stub_.async()->Echo(&ctx, &request_, &reply_,
                        [done = std::move(done)](grpc::Status s) { done(s); });
  }

 private:
  echo::EchoService::Stub stub_;
  const echo::EchoRequest request_;
  echo::EchoReply reply_;
};

/// EchoStream of echo_server. Replies must come in request order: one whose
/// correlation id is not the next expected counts as DATA_LOSS.
class EchoStreamCall final : public WindowedStreamCall<echo::EchoRequest, echo::EchoReply> {
 public:
  EchoStreamCall(const std::shared_ptr<grpc::Channel>& channel, std::string payload)
      : stub_(channel), payload_(std::move(payload)) {}

 protected:
  void bind(grpc::ClientContext* ctx,
            grpc::ClientBidiReactor<echo::EchoRequest, echo::EchoReply>* r) override {
    stub_.async()->EchoStream(ctx, r);
  }
  void fill(echo::EchoRequest& req, std::uint64_t seq) override {
    req.set_correlation_id(seq);
    req.set_payload(payload_);
  }
  grpc::StatusCode code_of(const echo::EchoReply& reply) override {
    return reply.correlation_id() == next_expected_++ ? grpc::StatusCode::OK
                                                      : grpc::StatusCode::DATA_LOSS;
  }

 private:
  echo::EchoService::Stub stub_;
  const std::string payload_;
  std::uint64_t next_expected_ = 0;  // serialised by WindowedStream's lock
};

class EchoTarget final : public Target {
 public:
  explicit EchoTarget(const BenchOptions& o)
      : mode_(o.mode), payload_(std::string(o.payload_size, 'x')) {
    request_.set_payload(payload_);
  }
  bool streaming() const override { return mode_ == Mode::kEchoStream; }
  std::unique_ptr<UnaryCall> unary_call(const std::shared_ptr<grpc::Channel>& ch) override {
    return std::make_unique<EchoCall>(ch, request_);
  }
  std::unique_ptr<StreamCall> stream_call(const std::shared_ptr<grpc::Channel>& ch) override {
    return std::make_unique<EchoStreamCall>(ch, payload_);
  }

 private:
  Mode mode_;
  std::string payload_;
  echo::EchoRequest request_;
};

}  // namespace

std::unique_ptr<Target> make_target(const BenchOptions& options) {
  switch (options.mode) {
    case Mode::kSubmit:
    case Mode::kSubmitWait:
    case Mode::kSubmitStream:
      return std::make_unique<SubmitTarget>(options);
    case Mode::kEcho:
    case Mode::kEchoStream:
      return std::make_unique<EchoTarget>(options);
  }
  return nullptr;
}

std::vector<std::shared_ptr<grpc::Channel>> make_channels(const std::string& address,
                                                          const tools::Connection& connection,
                                                          std::uint32_t count) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (std::uint32_t i = 0; i < count; ++i) {
    grpc::ChannelArguments args;
    // A distinct argument per channel keeps gRPC from sharing one connection.
    args.SetInt("troupe.bench.channel", static_cast<int>(i));
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channels.push_back(tools::make_channel(address, connection, args));
  }
  return channels;
}

}  // namespace troupe::bench
