#include "tests/bench/echo_callback_service.h"

#include "daemon/ordered_reply_stream.h"

namespace troupe::bench {
namespace {

/// One reply per request, in order: the very stream reactor trouped's
/// SubmitStream uses (daemon/ordered_reply_stream.h), minus the job work, so
/// the baseline pays the same stream mechanics.
class EchoStreamReactor final : public daemon::OrderedReplyStream<v1::EchoRequest, v1::EchoReply> {
 public:
  EchoStreamReactor() { start(); }

 private:
  std::variant<v1::EchoReply, grpc::Status, daemon::Deferred> reply_to(
      v1::EchoRequest& request) override {
    v1::EchoReply reply;
    reply.set_correlation_id(request.correlation_id());
    *reply.mutable_payload() = std::move(*request.mutable_payload());
    return reply;
  }
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
