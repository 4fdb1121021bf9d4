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
  /// The fencing term of a singleton troupe's lease under which this
  /// attempt runs (docs/cluster.md); 0 otherwise. Handlers pass it on
  /// (TROUPE_FENCE_TERM, X-Troupe-Fence-Term) so that a downstream can
  /// refuse a stale holder.
  std::int64_t fence_term = 0;
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

/// One handler kind's options as core sees them: what to build per actor,
/// how to name it, and whether a reload changed it. Each kind gets it from
/// KindHandlerConfig below; core never names a kind. Immutable once built,
/// so thread-safe.
class HandlerConfig {
 public:
  virtual ~HandlerConfig() = default;
  /// `kind:` in the config: "builtin", "exec", "http".
  virtual std::string_view kind() const = 0;
  /// "builtin:echo", "exec", "http": for status displays.
  virtual std::string describe() const = 0;
  /// One line for `trouped --check-config`: "builtin sleep 100ms".
  virtual std::string summary() const = 0;
  /// Same kind and every option equal.
  virtual bool equals(const HandlerConfig& other) const = 0;
  /// Builds the handler for one actor; `executor` is the actor's strand.
  virtual std::unique_ptr<Handler> make(boost::asio::any_io_executor executor,
                                        Clock& clock) const = 0;
};

namespace detail {

/// HandlerConfig for a kind's options struct: equality is the struct's
/// operator==; the rest is the kind's build_handler, describe_handler and
/// summarize_handler, found by argument-dependent lookup.
template <class KindOptions>
class KindHandlerConfig final : public HandlerConfig {
 public:
  explicit KindHandlerConfig(KindOptions options) : options_(std::move(options)) {}
  const KindOptions& options() const { return options_; }

  std::string_view kind() const override { return KindOptions::kKind; }
  std::string describe() const override { return describe_handler(options_); }
  std::string summary() const override { return summarize_handler(options_); }
  bool equals(const HandlerConfig& other) const override {
    const auto* same_kind = dynamic_cast<const KindHandlerConfig*>(&other);
    return same_kind != nullptr && same_kind->options_ == options_;
  }
  std::unique_ptr<Handler> make(boost::asio::any_io_executor executor,
                                Clock& clock) const override {
    return build_handler(options_, std::move(executor), clock);
  }

 private:
  KindOptions options_;
};

}  // namespace detail

template <class KindOptions>
requires requires {
  KindOptions::kKind;
}
HandlerOptions::HandlerOptions(KindOptions options)
    : config_(std::make_shared<const detail::KindHandlerConfig<KindOptions>>(std::move(options))) {}

template <class KindOptions>
const KindOptions* HandlerOptions::get_if() const {
  const auto* config = dynamic_cast<const detail::KindHandlerConfig<KindOptions>*>(config_.get());
  return config != nullptr ? &config->options() : nullptr;
}

/// Builds the handler for one actor from its options. `executor` is the
/// actor's strand. Throws std::invalid_argument when no handler is set.
std::unique_ptr<Handler> make_handler(const HandlerOptions& options,
                                      boost::asio::any_io_executor executor, Clock& clock);

/// HandlerConfig::describe(), or "none" when no handler is set.
std::string describe(const HandlerOptions& options);

/// HandlerConfig::summary(), or "none" when no handler is set.
std::string summarize(const HandlerOptions& options);

}  // namespace troupe::core
