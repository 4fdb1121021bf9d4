#pragma once

#include <grpcpp/support/status.h>

#include <string>
#include <string_view>

namespace troupe::tools {

/// Process exit codes troupectl and troupe-bench promise to scripts.
enum class ExitCode : int {
  kOk = 0,               // the command did what was asked
  kJobUnsuccessful = 1,  // submit --wait / watch: the job ended but not SUCCEEDED
  kUsage = 2,            // bad command line, or the server said INVALID_ARGUMENT
  kNotFound = 3,         // unknown troupe, job id, or health service
  kUnavailable = 4,      // daemon unreachable, draining, breaker open, troupe full
  kRpcError = 5,         // any other RPC failure (deadline, internal, ...)
};

/// The exit code for a failed (or OK) RPC status code.
ExitCode exit_code_for(grpc::StatusCode code);

/// "NOT_FOUND", "UNAVAILABLE", ... ("CODE_<n>" for an unknown value).
std::string status_code_name(grpc::StatusCode code);

/// A one-line error for a failed RPC that says what to do next, e.g. for
/// UNAVAILABLE: "is trouped running at localhost:50051? Start it, or point
/// --address / TROUPE_ADDRESS at it".
std::string describe_rpc_error(const grpc::Status& status, std::string_view address);

}  // namespace troupe::tools
