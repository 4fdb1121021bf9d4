#include "handlers/builtin/builtin_handler.h"

#include <stdexcept>
#include <string>

#include "syntax/duration.h"

namespace troupe::core {

namespace {

class NoopHandler final : public Handler {
 public:
  void start(const AttemptContext&, AttemptCallback done) override {
    done(AttemptResult::success({}));
  }
};

class EchoHandler final : public Handler {
 public:
  void start(const AttemptContext& ctx, AttemptCallback done) override {
    done(AttemptResult::success(ctx.payload));
  }
};

class FailHandler final : public Handler {
 public:
  explicit FailHandler(const BuiltinHandlerOptions& options)
      : mode_(options.fail_mode), every_(options.fail_every == 0 ? 1 : options.fail_every) {}

  void start(const AttemptContext&, AttemptCallback done) override {
    if (++calls_ % every_ != 0) {
      done(AttemptResult::success({}));
      return;
    }
    switch (mode_) {
      case BuiltinHandlerOptions::FailMode::kThrow:
        throw std::runtime_error("builtin fail handler: configured to throw");
      case BuiltinHandlerOptions::FailMode::kRetryable:
        done(AttemptResult::failed(FailureClass::kRetryable,
                                   "builtin fail handler: configured retryable failure"));
        return;
      case BuiltinHandlerOptions::FailMode::kPermanent:
        done(AttemptResult::failed(FailureClass::kPermanent,
                                   "builtin fail handler: configured permanent failure"));
        return;
    }
  }

 private:
  BuiltinHandlerOptions::FailMode mode_;
  std::uint64_t every_;
  std::uint64_t calls_ = 0;
};

class SleepHandler final : public Handler {
 public:
  SleepHandler(Duration sleep, boost::asio::any_io_executor executor, Clock& clock)
      : sleep_(sleep), timer_(clock.make_timer(std::move(executor))) {}

  void start(const AttemptContext& ctx, AttemptCallback done) override {
    const Duration d = syntax::parse_duration(ctx.payload).value.value_or(sleep_);
    auto slot = ctx.cancellation;
    if (slot.is_connected()) {
      slot.assign([this](boost::asio::cancellation_type) { timer_->cancel(); });
    }
    timer_->wait(d, [done = std::move(done)](bool fired) {
      done(fired ? AttemptResult::success({})
                 : AttemptResult::failed(FailureClass::kCancelled, "sleep cancelled"));
    });
  }

 private:
  Duration sleep_;
  std::unique_ptr<Timer> timer_;
};

}  // namespace

std::unique_ptr<Handler> make_builtin_handler(const BuiltinHandlerOptions& options,
                                              boost::asio::any_io_executor executor, Clock& clock) {
  switch (options.kind) {
    case BuiltinHandlerOptions::Kind::kNoop:
      return std::make_unique<NoopHandler>();
    case BuiltinHandlerOptions::Kind::kEcho:
      return std::make_unique<EchoHandler>();
    case BuiltinHandlerOptions::Kind::kSleep:
      return std::make_unique<SleepHandler>(options.sleep, std::move(executor), clock);
    case BuiltinHandlerOptions::Kind::kFail:
      return std::make_unique<FailHandler>(options);
  }
  return std::make_unique<NoopHandler>();
}

}  // namespace troupe::core
