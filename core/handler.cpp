#include "core/handler.h"

#include <stdexcept>
#include <string>

namespace troupe::core {

bool HandlerOptions::operator==(const HandlerOptions& other) const {
  if (config_ == other.config_) return true;
  return config_ != nullptr && other.config_ != nullptr && config_->equals(*other.config_);
}

std::unique_ptr<Handler> make_handler(const HandlerOptions& options,
                                      boost::asio::any_io_executor executor, Clock& clock) {
  if (options.config() == nullptr) throw std::invalid_argument("the troupe has no handler");
  return options.config()->make(std::move(executor), clock);
}

std::string describe(const HandlerOptions& options) {
  return options.config() != nullptr ? options.config()->describe() : "none";
}

std::string summarize(const HandlerOptions& options) {
  return options.config() != nullptr ? options.config()->summary() : "none";
}

}  // namespace troupe::core
