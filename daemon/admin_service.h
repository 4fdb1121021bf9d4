#pragma once

/// troupe.v1.AdminService over a core::Runtime, on the gRPC callback API, with
/// raw methods (daemon/raw_messages.h says why).

#include <grpcpp/grpcpp.h>

#include "core/runtime.h"
#include "daemon/authorizer.h"
#include "troupe/v1/troupe.grpc.pb.h"

namespace troupe::daemon {

/// Every AdminService method, raw (see RawJobService).
using RawAdminService = v1::AdminService::WithRawCallbackMethod_ListTroupes<
    v1::AdminService::WithRawCallbackMethod_GetTroupe<
        v1::AdminService::WithRawCallbackMethod_ListDeadJobs<
            v1::AdminService::WithRawCallbackMethod_GetCluster<v1::AdminService::Service>>>>;

/// Serves AdminService: read-only views built from core::TroupeStatus.
/// Every method answers inline on its gRPC thread (runtime reads are
/// non-blocking snapshots), except ListDeadJobs with a shared store
/// (docs/cluster.md): every replica's dead letters come from the journal's
/// thread (Runtime::dead_jobs_anywhere), and GetCluster, answered there
/// from the store (Runtime::cluster). A request that does not parse is
/// INVALID_ARGUMENT. Thread-safe; `runtime` must outlive the server.
/// `authorizer` checks admin on the troupe (ListTroupes and GetCluster list
/// only the troupes the caller administers; GetCluster is denied to a caller
/// who administers none here) and read for ListDeadJobs.
class AdminServiceImpl final : public RawAdminService {
 public:
  /// ListDeadJobs' default and maximum page size.
  static constexpr std::uint32_t kDefaultDeadJobs = 100;
  static constexpr std::uint32_t kMaxDeadJobs = 10'000;

  AdminServiceImpl(core::Runtime& runtime, const Authorizer& authorizer);

  grpc::ServerUnaryReactor* ListTroupes(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetTroupe(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListDeadJobs(grpc::CallbackServerContext* context,
                                         const grpc::ByteBuffer* request,
                                         grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetCluster(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;

 private:
  core::Runtime& runtime_;
  const Authorizer& authorizer_;
};

}  // namespace troupe::daemon
