#pragma once

#include "troupe/bench/v1/echo.grpc.pb.h"

namespace troupe::bench {

/// EchoService on gRPC's callback API, the style trouped serves JobService
/// in: unary Echo answers through the context's DefaultReactor; EchoStream is
/// a ServerBidiReactor shaped like trouped's SubmitStreamReactor, minus the
/// job work. Thread-safe: gRPC runs the reactions on its own threads.
class EchoCallbackService final : public v1::EchoService::CallbackService {
 public:
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const v1::EchoRequest* request, v1::EchoReply* reply) override;
  grpc::ServerBidiReactor<v1::EchoRequest, v1::EchoReply>* EchoStream(
      grpc::CallbackServerContext* context) override;
};

}  // namespace troupe::bench
