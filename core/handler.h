#pragma once

/// The handler contract: what an actor calls to run one attempt of a job.

#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/cancellation_compat.h"
#include "core/clock.h"
#include "core/job.h"
#include "core/options.h"

namespace troupe::core {

/// Everything an attempt may read. The referenced job data stays valid until
/// the attempt's completion callback has been invoked.
struct AttemptContext {
  JobId id;
  std::string_view troupe;
  std::uint32_t attempt = 1;  // 1-based
  const std::string& payload;
  const Metadata& metadata;
  Duration timeout;  // the actor enforces it through `cancellation` as well
  /// Emits cancellation_type::terminal when the job is cancelled, its
  /// attempt times out, or a drain deadline passes. The handler must then
  /// stop its work (kill its process, close its connection) and complete.
  boost::asio::cancellation_slot cancellation;
};

/// How an attempt ended, already classified (see FailureClass).
struct AttemptResult {
  FailureClass failure = FailureClass::kNone;
  std::string output;                   // result on success; error message otherwise
  std::optional<Duration> retry_after;  // server's hint (HTTP Retry-After)

  static AttemptResult success(std::string out) {
    return {FailureClass::kNone, std::move(out), {}};
  }
  static AttemptResult failed(FailureClass c, std::string why) { return {c, std::move(why), {}}; }
};

using AttemptCallback = std::function<void(AttemptResult)>;

/// Runs attempts for one actor; one instance per actor, so it may hold
/// per-actor state (a kept-alive connection, a worker process).
/// start() is called on the actor's strand, one attempt at a time. `done`
/// must be invoked exactly once, from any thread; a handler that throws from
/// start() is treated as a crash by the supervisor.
class Handler {
 public:
  virtual ~Handler() = default;
  virtual void start(const AttemptContext& ctx, AttemptCallback done) = 0;
};

/// Builds the handler for one actor from its options. `executor` is the
/// actor's strand.
std::unique_ptr<Handler> make_handler(const HandlerOptions& options,
                                      boost::asio::any_io_executor executor, Clock& clock);

/// "builtin:echo", "exec", "http": for status displays.
std::string describe(const HandlerOptions& options);

}  // namespace troupe::core
