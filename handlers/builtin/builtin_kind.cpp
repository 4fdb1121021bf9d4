#include <string>

#include "handlers/builtin/builtin_handler.h"
#include "handlers/builtin/builtin_options.h"
#include "syntax/duration.h"

namespace troupe::core {

std::unique_ptr<Handler> build_handler(const BuiltinHandlerOptions& options,
                                       boost::asio::any_io_executor executor, Clock& clock) {
  return make_builtin_handler(options, std::move(executor), clock);
}

std::string describe_handler(const BuiltinHandlerOptions& options) {
  switch (options.kind) {
    case BuiltinHandlerOptions::Kind::kNoop:
      return "builtin:noop";
    case BuiltinHandlerOptions::Kind::kEcho:
      return "builtin:echo";
    case BuiltinHandlerOptions::Kind::kSleep:
      return "builtin:sleep";
    case BuiltinHandlerOptions::Kind::kFail:
      return "builtin:fail";
  }
  return "builtin";
}

std::string summarize_handler(const BuiltinHandlerOptions& options) {
  switch (options.kind) {
    case BuiltinHandlerOptions::Kind::kNoop:
      return "builtin noop";
    case BuiltinHandlerOptions::Kind::kEcho:
      return "builtin echo";
    case BuiltinHandlerOptions::Kind::kSleep:
      return "builtin sleep " + syntax::format_duration(options.sleep);
    case BuiltinHandlerOptions::Kind::kFail:
      return "builtin fail every " + std::to_string(options.fail_every);
  }
  return "builtin";
}

}  // namespace troupe::core
