#include <string>

#include "handlers/http/http_handler.h"
#include "handlers/http/http_options.h"

namespace troupe::core {

std::unique_ptr<Handler> build_handler(const HttpHandlerOptions& options,
                                       boost::asio::any_io_executor executor, Clock& clock) {
  return make_http_handler(options, std::move(executor), clock);
}

std::string describe_handler(const HttpHandlerOptions&) {
  return "http";
}

std::string summarize_handler(const HttpHandlerOptions& options) {
  return "http " + options.method + " " + options.url;
}

}  // namespace troupe::core
