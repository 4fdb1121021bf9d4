#include <string>

#include "handlers/exec/exec_handler.h"
#include "handlers/exec/exec_options.h"

namespace troupe::core {

std::unique_ptr<Handler> build_handler(const ExecHandlerOptions& options,
                                       boost::asio::any_io_executor executor, Clock& clock) {
  return make_exec_handler(options, std::move(executor), clock);
}

std::string describe_handler(const ExecHandlerOptions&) {
  return "exec";
}

std::string summarize_handler(const ExecHandlerOptions& options) {
  std::string text = "exec";
  for (const auto& arg : options.argv) text += " " + arg;
  constexpr std::size_t kMaxWidth = 40;
  if (text.size() > kMaxWidth) text = text.substr(0, kMaxWidth - 3) + "...";
  return text;
}

}  // namespace troupe::core
