#include "daemon/admin_service.h"

#include <string>

#include "daemon/status_mapping.h"
#include "daemon/translation.h"

namespace troupe::daemon {

using config::Permission;

AdminServiceImpl::AdminServiceImpl(core::Runtime& runtime, const Authorizer& authorizer)
    : runtime_(runtime), authorizer_(authorizer) {}

grpc::ServerUnaryReactor* AdminServiceImpl::ListTroupes(grpc::CallbackServerContext* context,
                                                        const v1::ListTroupesRequest* /*request*/,
                                                        v1::ListTroupesResponse* response) {
  auto* reactor = context->DefaultReactor();
  auto caller = authorizer_.authenticate(*context, "ListTroupes");
  if (auto* error = std::get_if<RpcError>(&caller)) {
    finish(*context, *reactor, *error);
    return reactor;
  }
  const auto& who = std::get<Authorizer::Caller>(caller);
  const auto troupes = runtime_.troupes();
  for (const auto& status : troupes) {
    if (who.may(Permission::kAdmin, status.name)) to_proto(status, *response->add_troupes());
  }
  if (response->troupes_size() == 0 && !troupes.empty()) {
    finish(*context, *reactor,
           authorizer_.deny_everywhere(*context, who, Permission::kAdmin, "ListTroupes"));
    return reactor;
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetTroupe(grpc::CallbackServerContext* context,
                                                      const v1::GetTroupeRequest* request,
                                                      v1::Troupe* response) {
  auto* reactor = context->DefaultReactor();
  if (request->name().empty()) {
    finish(*context, *reactor,
           invalid_argument("name", "is empty; name a troupe (see ListTroupes)"));
    return reactor;
  }
  if (auto denied = authorizer_.check(*context, Permission::kAdmin, request->name(), "GetTroupe")) {
    finish(*context, *reactor, *denied);
    return reactor;
  }
  auto status = runtime_.troupe(request->name());
  if (!status) {
    finish(*context, *reactor, troupe_not_found(request->name()));
    return reactor;
  }
  to_proto(*status, *response);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListDeadJobs(grpc::CallbackServerContext* context,
                                                         const v1::ListDeadJobsRequest* request,
                                                         v1::ListDeadJobsResponse* response) {
  auto* reactor = context->DefaultReactor();
  if (request->troupe().empty()) {
    finish(*context, *reactor,
           invalid_argument("troupe", "is empty; name a troupe (see ListTroupes)"));
    return reactor;
  }
  if (request->limit() > kMaxDeadJobs) {
    finish(*context, *reactor,
           invalid_argument("limit", "is over the maximum of " + std::to_string(kMaxDeadJobs) +
                                         "; ask for fewer (0 means " +
                                         std::to_string(kDefaultDeadJobs) + ")"));
    return reactor;
  }
  if (auto denied =
          authorizer_.check(*context, Permission::kRead, request->troupe(), "ListDeadJobs")) {
    finish(*context, *reactor, *denied);
    return reactor;
  }
  const std::uint32_t limit = request->limit() == 0 ? kDefaultDeadJobs : request->limit();
  auto jobs = runtime_.dead_jobs(request->troupe(), limit);
  if (!jobs) {
    finish(*context, *reactor, troupe_not_found(request->troupe()));
    return reactor;
  }
  for (const auto& record : *jobs) to_proto(record, *response->add_jobs());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace troupe::daemon
