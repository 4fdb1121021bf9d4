#include "core/handler.h"

#include <string>
#include <type_traits>

#include "core/handlers/builtin_handler.h"

namespace troupe::core {

namespace {

/// Stands in for a handler kind this build does not provide: every attempt
/// fails permanently, saying so.
class UnavailableHandler final : public Handler {
 public:
  explicit UnavailableHandler(std::string kind) : kind_(std::move(kind)) {}
  void start(const AttemptContext&, AttemptCallback done) override {
    done(AttemptResult::failed(FailureClass::kPermanent,
                               "handler kind '" + kind_ + "' is not available in this build"));
  }

 private:
  std::string kind_;
};

}  // namespace

std::unique_ptr<Handler> make_handler(const HandlerOptions& options,
                                      boost::asio::any_io_executor executor, Clock& clock) {
  return std::visit(
      [&](const auto& o) -> std::unique_ptr<Handler> {
        using T = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<T, BuiltinHandlerOptions>) {
          return make_builtin_handler(o, std::move(executor), clock);
        } else if constexpr (std::is_same_v<T, ExecHandlerOptions>) {
          return std::make_unique<UnavailableHandler>("exec");
        } else {
          return std::make_unique<UnavailableHandler>("http");
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
