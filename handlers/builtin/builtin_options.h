#pragma once

/// Options of the `builtin` handler kind (noop, echo, sleep, fail).

#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/handler.h"
#include "core/options.h"

namespace troupe::core {

struct BuiltinHandlerOptions {
  static constexpr std::string_view kKind = "builtin";  // `kind:` in the config

  enum class Kind : std::uint8_t { kNoop, kEcho, kSleep, kFail };
  enum class FailMode : std::uint8_t { kThrow, kRetryable, kPermanent };
  Kind kind = Kind::kNoop;
  Duration sleep = 100ms;  // kSleep: used when the payload is not a duration
  FailMode fail_mode = FailMode::kRetryable;
  std::uint32_t fail_every = 1;  // kFail: fail every Nth call (1 = always)

  bool operator==(const BuiltinHandlerOptions&) const = default;
};

/// The kind's glue to core (handlers/builtin/builtin_kind.cpp), found by
/// HandlerOptions through argument-dependent lookup.
std::unique_ptr<Handler> build_handler(const BuiltinHandlerOptions& options,
                                       boost::asio::any_io_executor executor, Clock& clock);
std::string describe_handler(const BuiltinHandlerOptions& options);
std::string summarize_handler(const BuiltinHandlerOptions& options);

}  // namespace troupe::core
