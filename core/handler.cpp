#include "core/handler.h"

#include <string>
#include <type_traits>

#include "handlers/builtin/builtin_handler.h"
#include "handlers/exec/exec_handler.h"
#include "handlers/http/http_handler.h"

namespace troupe::core {

std::unique_ptr<Handler> make_handler(const HandlerOptions& options,
                                      boost::asio::any_io_executor executor, Clock& clock) {
  return std::visit(
      [&](const auto& o) -> std::unique_ptr<Handler> {
        using T = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<T, BuiltinHandlerOptions>) {
          return make_builtin_handler(o, std::move(executor), clock);
        } else if constexpr (std::is_same_v<T, ExecHandlerOptions>) {
          return make_exec_handler(o, std::move(executor), clock);
        } else {
          return make_http_handler(o, std::move(executor), clock);
        }
      },
      options);
}

std::string describe(const HandlerOptions& options) {
  if (const auto* b = std::get_if<BuiltinHandlerOptions>(&options)) {
    switch (b->kind) {
      case BuiltinHandlerOptions::Kind::kNoop:
        return "builtin:noop";
      case BuiltinHandlerOptions::Kind::kEcho:
        return "builtin:echo";
      case BuiltinHandlerOptions::Kind::kSleep:
        return "builtin:sleep";
      case BuiltinHandlerOptions::Kind::kFail:
        return "builtin:fail";
    }
  }
  if (std::holds_alternative<ExecHandlerOptions>(options)) return "exec";
  return "http";
}

}  // namespace troupe::core
