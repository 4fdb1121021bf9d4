#pragma once

/// troupe.v1.AdminService over a core::Runtime, on the gRPC callback API.

#include <grpcpp/grpcpp.h>

#include "core/runtime.h"
#include "daemon/authorizer.h"
#include "troupe/v1/troupe.grpc.pb.h"

namespace troupe::daemon {

/// Serves AdminService: read-only views built from core::TroupeStatus.
/// Every method answers inline on its gRPC thread (runtime reads are
/// non-blocking snapshots). Thread-safe; `runtime` must outlive the server.
/// `authorizer` checks admin on the troupe (ListTroupes lists only the
/// troupes the caller administers) and read for ListDeadJobs.
class AdminServiceImpl final : public v1::AdminService::CallbackService {
 public:
  /// ListDeadJobs' default and maximum page size.
  static constexpr std::uint32_t kDefaultDeadJobs = 100;
  static constexpr std::uint32_t kMaxDeadJobs = 10'000;

  AdminServiceImpl(core::Runtime& runtime, const Authorizer& authorizer);

  grpc::ServerUnaryReactor* ListTroupes(grpc::CallbackServerContext* context,
                                        const v1::ListTroupesRequest* request,
                                        v1::ListTroupesResponse* response) override;
  grpc::ServerUnaryReactor* GetTroupe(grpc::CallbackServerContext* context,
                                      const v1::GetTroupeRequest* request,
                                      v1::Troupe* response) override;
  grpc::ServerUnaryReactor* ListDeadJobs(grpc::CallbackServerContext* context,
                                         const v1::ListDeadJobsRequest* request,
                                         v1::ListDeadJobsResponse* response) override;

 private:
  core::Runtime& runtime_;
  const Authorizer& authorizer_;
};

}  // namespace troupe::daemon
