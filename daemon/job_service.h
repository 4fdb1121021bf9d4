#pragma once

/// troupe.v1.JobService over a core::Runtime, on the gRPC callback API.

#include <grpcpp/grpcpp.h>

#include "config/config.h"
#include "core/runtime.h"
#include "daemon/authorizer.h"
#include "troupe/v1/troupe.grpc.pb.h"

namespace troupe::daemon {

/// Serves JobService. Every method runs on a gRPC thread and returns without
/// waiting on a job: Submit with wait=true and WatchJob are completed from the
/// runtime's callbacks (core threads). Thread-safe; `runtime` must outlive
/// the gRPC server this service is registered with. Every call is checked by
/// `authorizer` (submit on the troupe; read/cancel on the job's troupe).
class JobServiceImpl final : public v1::JobService::CallbackService {
 public:
  JobServiceImpl(core::Runtime& runtime, const config::LimitsOptions& limits,
                 const Authorizer& authorizer);

  grpc::ServerUnaryReactor* Submit(grpc::CallbackServerContext* context,
                                   const v1::SubmitRequest* request,
                                   v1::SubmitResponse* response) override;
  grpc::ServerBidiReactor<v1::StreamSubmitRequest, v1::StreamSubmitAck>* SubmitStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const v1::GetJobRequest* request, v1::Job* response) override;
  grpc::ServerWriteReactor<v1::Job>* WatchJob(grpc::CallbackServerContext* context,
                                              const v1::WatchJobRequest* request) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const v1::CancelJobRequest* request,
                                      v1::CancelJobResponse* response) override;

 private:
  core::Runtime& runtime_;
  const config::LimitsOptions limits_;
  const Authorizer& authorizer_;
};

}  // namespace troupe::daemon
