#include "daemon/admin_service.h"

#include <algorithm>
#include <optional>
#include <string>

#include "daemon/raw_messages.h"
#include "daemon/status_mapping.h"
#include "daemon/translation.h"

namespace troupe::daemon {

using config::Permission;

AdminServiceImpl::AdminServiceImpl(core::Runtime& runtime, const Authorizer& authorizer)
    : runtime_(runtime), authorizer_(authorizer) {}

grpc::ServerUnaryReactor* AdminServiceImpl::ListTroupes(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* in,
                                                        grpc::ByteBuffer* out) {
  return answer_now<v1::ListTroupesRequest, v1::ListTroupesResponse>(
      *context, *in, *out,
      [this, context](const v1::ListTroupesRequest& /*request*/,
                      v1::ListTroupesResponse& response) -> std::optional<RpcError> {
        auto caller = authorizer_.authenticate(*context, "ListTroupes");
        if (auto* error = std::get_if<RpcError>(&caller)) return *error;
        const auto& who = std::get<Authorizer::Caller>(caller);
        const auto troupes = runtime_.troupes();
        for (const auto& status : troupes) {
          if (who.may(Permission::kAdmin, status.name)) to_proto(status, *response.add_troupes());
        }
        if (response.troupes_size() == 0 && !troupes.empty()) {
          return authorizer_.deny_everywhere(*context, who, Permission::kAdmin, "ListTroupes");
        }
        return std::nullopt;
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetTroupe(grpc::CallbackServerContext* context,
                                                      const grpc::ByteBuffer* in,
                                                      grpc::ByteBuffer* out) {
  return answer_now<v1::GetTroupeRequest, v1::Troupe>(
      *context, *in, *out,
      [this, context](const v1::GetTroupeRequest& request,
                      v1::Troupe& response) -> std::optional<RpcError> {
        // The order of checks every call follows (docs/api.md): who calls,
        // then what the call names, then the permission on it.
        auto caller = authorizer_.authenticate(*context, "GetTroupe");
        if (auto* error = std::get_if<RpcError>(&caller)) return *error;
        if (request.name().empty()) {
          return invalid_argument("name", "is empty; name a troupe (see ListTroupes)");
        }
        if (auto denied = authorizer_.authorize(*context, std::get<Authorizer::Caller>(caller),
                                                Permission::kAdmin, request.name(), "GetTroupe")) {
          return denied;
        }
        auto status = runtime_.troupe(request.name());
        if (!status) return troupe_not_found(request.name());
        to_proto(*status, response);
        return std::nullopt;
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListDeadJobs(grpc::CallbackServerContext* context,
                                                         const grpc::ByteBuffer* in,
                                                         grpc::ByteBuffer* out) {
  using Reply = UnaryReply<v1::ListDeadJobsResponse>;
  return answer_later<v1::ListDeadJobsRequest, v1::ListDeadJobsResponse>(
      *context, *in, *out, [this](const v1::ListDeadJobsRequest& request, Reply reply) {
        auto caller = authorizer_.authenticate(reply.context(), "ListDeadJobs");
        if (auto* error = std::get_if<RpcError>(&caller)) return reply.fail(*error);
        if (request.troupe().empty()) {
          return reply.fail(
              invalid_argument("troupe", "is empty; name a troupe (see ListTroupes)"));
        }
        if (auto denied =
                authorizer_.authorize(reply.context(), std::get<Authorizer::Caller>(caller),
                                      Permission::kRead, request.troupe(), "ListDeadJobs")) {
          return reply.fail(*denied);
        }
        if (request.limit() > kMaxDeadJobs) {
          return reply.fail(invalid_argument(
              "limit", "is over the maximum of " + std::to_string(kMaxDeadJobs) +
                           "; ask for fewer (0 means " + std::to_string(kDefaultDeadJobs) + ")"));
        }
        const std::uint32_t limit = request.limit() == 0 ? kDefaultDeadJobs : request.limit();
        // Every replica's dead letters (docs/cluster.md); inline with one process.
        runtime_.dead_jobs_anywhere(
            request.troupe(), limit,
            [reply, troupe = request.troupe()](
                core::StoreAnswer<std::optional<std::vector<core::JobRecord>>> answer) {
              if (const auto* down = std::get_if<core::StoreUnavailable>(&answer)) {
                return reply.fail(dead_jobs_unavailable(troupe, down->why));
              }
              const auto& jobs = std::get<std::optional<std::vector<core::JobRecord>>>(answer);
              if (!jobs) return reply.fail(troupe_not_found(troupe));
              v1::ListDeadJobsResponse response;
              for (const auto& record : *jobs) to_proto(record, *response.add_jobs());
              reply.ok(response);
            });
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetCluster(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* in,
                                                       grpc::ByteBuffer* out) {
  using Reply = UnaryReply<v1::GetClusterResponse>;
  return answer_later<v1::GetClusterRequest, v1::GetClusterResponse>(
      *context, *in, *out, [this](const v1::GetClusterRequest& /*request*/, Reply reply) {
        auto caller = authorizer_.authenticate(reply.context(), "GetCluster");
        if (auto* error = std::get_if<RpcError>(&caller)) return reply.fail(*error);
        const auto& who = std::get<Authorizer::Caller>(caller);
        // As ListTroupes: a caller who administers no troupe here sees nothing.
        const auto troupes = runtime_.troupes();
        if (!troupes.empty() && std::none_of(troupes.begin(), troupes.end(), [&](const auto& t) {
              return who.may(Permission::kAdmin, t.name);
            })) {
          return reply.fail(
              authorizer_.deny_everywhere(reply.context(), who, Permission::kAdmin, "GetCluster"));
        }
        runtime_.cluster([reply, who](core::ClusterLookup answer) {
          switch (answer.status) {
            case core::ClusterLookup::Status::kNotShared:
              return reply.fail(not_a_cluster_store());
            case core::ClusterLookup::Status::kUnavailable:
              return reply.fail(cluster_store_unreachable(answer.error));
            case core::ClusterLookup::Status::kOk:
              break;
          }
          v1::GetClusterResponse response;
          to_proto(
              answer.view,
              [&who](std::string_view troupe) { return who.may(Permission::kAdmin, troupe); },
              response);
          reply.ok(response);
        });
      });
}

}  // namespace troupe::daemon
