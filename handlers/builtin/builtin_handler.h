#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <memory>

#include "core/clock.h"
#include "core/handler.h"
#include "handlers/builtin/builtin_options.h"

namespace troupe::core {

/// The builtin handlers, for tests, demos and benchmarks:
/// - noop: succeeds at once with an empty result;
/// - echo: succeeds at once with the payload as the result;
/// - sleep: succeeds after the payload's duration ("50ms", "1m30s"; the
///   config's duration syntax, syntax/duration.h), or the configured one
///   when the payload is not a duration; cancellation ends it
///   early with kCancelled;
/// - fail: fails every `fail_every`-th call (1 = every call) by throwing,
///   or returning a retryable or a permanent failure; succeeds otherwise.
/// noop, echo and fail complete synchronously inside start(). One instance
/// per actor, used on the actor's strand only.
std::unique_ptr<Handler> make_builtin_handler(const BuiltinHandlerOptions& options,
                                              boost::asio::any_io_executor executor, Clock& clock);

}  // namespace troupe::core
