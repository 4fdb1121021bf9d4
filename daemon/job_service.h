#pragma once

/// troupe.v1.JobService over a core::Runtime, on the gRPC callback API, with
/// raw methods (daemon/raw_messages.h says why).

#include <grpcpp/grpcpp.h>

#include "config/config.h"
#include "core/runtime.h"
#include "daemon/authorizer.h"
#include "troupe/v1/troupe.grpc.pb.h"

namespace troupe::daemon {

/// Every JobService method, raw: requests and replies are the serialized
/// messages of troupe.proto, parsed and built by JobServiceImpl.
using RawJobService =
    v1::JobService::WithRawCallbackMethod_Submit<v1::JobService::WithRawCallbackMethod_SubmitStream<
        v1::JobService::WithRawCallbackMethod_GetJob<v1::JobService::WithRawCallbackMethod_WatchJob<
            v1::JobService::WithRawCallbackMethod_CancelJob<v1::JobService::Service>>>>>;

/// Serves JobService. Every method runs on a gRPC thread and returns without
/// waiting on a job: Submit with wait=true and WatchJob are completed from the
/// runtime's callbacks (core threads); GetJob and CancelJob of a job another
/// replica holds (a shared store, docs/cluster.md) from the journal's thread
/// (Runtime::find, cancel_anywhere). A submit is acknowledged (Submit's
/// reply, a stream's ack) only once the runtime reports its accept durable
/// (Runtime::after_durable; the journal's writer thread), and wait=true once
/// its terminal state is (the runtime tells the end only then); a failed
/// barrier or journal answers UNAVAILABLE naming the store's failure. A
/// request that does not parse is INVALID_ARGUMENT. Thread-safe; `runtime`
/// must outlive the gRPC server this service is registered with. Every call
/// is checked by `authorizer` (submit on the troupe; read/cancel on the
/// job's troupe).
class JobServiceImpl final : public RawJobService {
 public:
  /// `max_watchers`: the runtime's max_listeners_per_job, named in the
  /// refusal of one watch too many.
  JobServiceImpl(core::Runtime& runtime, const config::LimitsOptions& limits,
                 std::size_t max_watchers, const Authorizer& authorizer);

  grpc::ServerUnaryReactor* Submit(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* SubmitStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchJob(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;

 private:
  core::Runtime& runtime_;
  const config::LimitsOptions limits_;
  const std::size_t max_watchers_;
  const Authorizer& authorizer_;
};

}  // namespace troupe::daemon
