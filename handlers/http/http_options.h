#pragma once

/// Options of the `http` handler kind: one HTTP request per attempt.

#include <boost/asio/any_io_executor.hpp>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/handler.h"
#include "core/options.h"

namespace troupe::core {

struct HttpHandlerOptions {
  static constexpr std::string_view kKind = "http";  // `kind:` in the config

  std::string url;  // http:// or https://
  std::string method = "POST";
  std::map<std::string, std::string> headers;
  std::size_t max_response = 1 << 20;
  std::uint32_t connections_per_actor = 1;           // kept alive
  std::vector<int> retryable_statuses = {408, 429};  // plus every 5xx
  std::string metadata_header_prefix = "X-Troupe-Meta-";
  std::string ca_file;  // https: PEM file of trusted CAs; empty = system default verify paths
  /// Request signing (docs/handlers.md): the file the secret was read from
  /// and the secret itself (read at config load, so a reload re-reads it and
  /// a changed secret rebuilds the handlers). Empty secret = unsigned.
  std::string signing_secret_file;
  std::string signing_secret;
  bool follow_redirects = false;  // same host only, never https -> http; at most 5

  bool operator==(const HttpHandlerOptions&) const = default;
};

/// The kind's glue to core (handlers/http/http_kind.cpp), found by
/// HandlerOptions through argument-dependent lookup.
std::unique_ptr<Handler> build_handler(const HttpHandlerOptions& options,
                                       boost::asio::any_io_executor executor, Clock& clock);
std::string describe_handler(const HttpHandlerOptions& options);
std::string summarize_handler(const HttpHandlerOptions& options);

}  // namespace troupe::core
