#pragma once

/// The `http` handler: sends each attempt's payload as the body of one HTTP
/// request (Boost.Beast, on the actor's strand), keeping the connection alive
/// across attempts. See docs/handlers.md for the full contract.

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/handler.h"
#include "handlers/http/http_options.h"

namespace troupe::core {

/// The http handler's one classification of a response status: 2xx -> kNone;
/// 5xx and anything in retryable_statuses -> kRetryable; everything else
/// (other 4xx, 3xx — redirects are not followed — 1xx) -> kPermanent.
/// Connection-level failures are kRetryable and never reach this function.
FailureClass classify_http(const HttpHandlerOptions& options, int status);

/// A Retry-After header value (delay-seconds, or an HTTP-date in IMF-fixdate,
/// RFC 850 or asctime form) as a delay from `now`. A date in the past is a
/// zero delay; anything unparsable is nullopt.
std::optional<Duration> parse_retry_after(std::string_view value,
                                          std::chrono::system_clock::time_point now);

/// The request signature trouped sends in X-Troupe-Signature when a
/// signing secret is configured: "v1=" and the lower-case hex HMAC-SHA256,
/// keyed with `secret`, of `timestamp` (the X-Troupe-Timestamp value, Unix
/// seconds), a '.', and the request body. Pure; thread-safe.
std::string sign_http_request(std::string_view secret, std::string_view timestamp,
                              std::string_view body);

/// Builds the http handler for one actor. `actor_executor` is the actor's
/// strand: every completion (resolve, connect, TLS, read, write) runs there and
/// `done` is invoked there. `clock` (wall time) turns an HTTP-date Retry-After
/// into a delay; it must outlive the handler. An invalid URL makes every
/// attempt fail permanently (config validation rejects it before this point).
std::unique_ptr<Handler> make_http_handler(const HttpHandlerOptions& options,
                                           boost::asio::any_io_executor actor_executor,
                                           Clock& clock);

}  // namespace troupe::core
