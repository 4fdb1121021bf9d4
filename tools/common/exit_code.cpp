#include "tools/common/exit_code.h"

namespace troupe::tools {
namespace {

// What gRPC's C++ client reports for a unary reply it could not parse
// (grpcpp/impl/client_unary_call.h): UNIMPLEMENTED, though the server does
// serve the method.
constexpr std::string_view kUnparsedReply = "No message returned for unary request";

}  // namespace

ExitCode exit_code_for(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return ExitCode::kOk;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return ExitCode::kUsage;
    case grpc::StatusCode::NOT_FOUND:
      return ExitCode::kNotFound;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return ExitCode::kUnavailable;
    default:
      return ExitCode::kRpcError;
  }
}

std::string status_code_name(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "CODE_" + std::to_string(static_cast<int>(code));
  }
}

std::string describe_rpc_error(const grpc::Status& status, std::string_view address) {
  const std::string& message = status.error_message();
  std::string out = status_code_name(status.error_code());
  if (!status.error_message().empty()) out += ": " + status.error_message();
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      out += " (is trouped running and reachable at " + std::string(address) +
             "? Start it, or point --address / TROUPE_ADDRESS at it; if it is draining or the "
             "breaker is open, retry later)";
      break;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      out +=
          " (the troupe is full or rate limited: retry after a short wait, or raise its "
          "mailbox / max actors)";
      break;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      out +=
          " (no answer in time: raise --deadline; a submitted job keeps running, check it "
          "with `troupectl get ID`)";
      break;
    case grpc::StatusCode::NOT_FOUND:
      // trouped names what it did not find first (status_mapping.cpp).
      if (message.rfind("troupe ", 0) == 0) {
        out += " (list the troupes with `troupectl troupes` and check the name)";
      } else if (message.rfind("job ", 0) == 0) {
        out += " (check the id; finished jobs expire after the server's result_ttl)";
      }
      break;
    case grpc::StatusCode::UNAUTHENTICATED:
      out +=
          " (give a token with --token-file or TROUPE_TOKEN, or a client certificate with "
          "--cert/--cert-key)";
      break;
    case grpc::StatusCode::UNIMPLEMENTED:
      if (message == kUnparsedReply) {
        out += " (the server at " + std::string(address) +
               " answered with a reply troupectl cannot parse: a server bug, or troupectl "
               "and trouped from different versions; report it with the command you ran)";
      } else {
        out += " (the server at " + std::string(address) +
               " does not serve this API: is it trouped, and of a matching version?)";
      }
      break;
    default:
      break;
  }
  return out;
}

}  // namespace troupe::tools
