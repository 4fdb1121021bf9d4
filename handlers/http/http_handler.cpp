#include "handlers/http/http_handler.h"

#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <cctype>
#include <cerrno>
#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include "core/utf8.h"
#include "syntax/hex.h"
#include "syntax/url.h"

namespace troupe::core {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

/// One kept-alive connection: a TCP socket, or a TLS stream over one.
struct Connection {
  Connection(const asio::any_io_executor& executor, ssl::context* tls_context) {
    if (tls_context != nullptr) {
      tls = std::make_unique<ssl::stream<tcp::socket>>(executor, *tls_context);
    } else {
      plain = std::make_unique<tcp::socket>(executor);
    }
  }
  tcp::socket& socket() { return tls ? tls->next_layer() : *plain; }
  void close() {
    error_code ignored;
    socket().shutdown(tcp::socket::shutdown_both, ignored);
    socket().close(ignored);
  }
  /// Calls f with the stream to read and write (template: both kinds).
  template <typename F>
  void with_stream(F&& f) {
    if (tls) {
      f(*tls);
    } else {
      f(*plain);
    }
  }

  std::unique_ptr<tcp::socket> plain;
  std::unique_ptr<ssl::stream<tcp::socket>> tls;
  boost::beast::flat_buffer buffer;  // survives across responses on this connection
  bool used = false;                 // has carried a complete exchange before
};

/// What a handler's attempts share. Touched only on the actor's strand.
struct HttpShared {
  HttpShared(HttpHandlerOptions o, asio::any_io_executor ex, Clock& c)
      : options(std::move(o)), executor(std::move(ex)), clock(c), resolver(executor) {}

  HttpHandlerOptions options;
  std::optional<syntax::Url> url;
  std::string port;  // url->port, as the resolver takes it
  std::string url_error;
  asio::any_io_executor executor;
  Clock& clock;
  std::unique_ptr<ssl::context> tls_context;  // for the url; a redirect makes its own
  tcp::resolver resolver;
  std::optional<tcp::resolver::results_type> endpoints;  // resolved once, cached
  std::vector<std::unique_ptr<Connection>> idle;         // at most connections_per_actor
};

std::string sanitize_header_name(std::string_view key) {
  std::string out;
  for (char c : key) {
    const bool token = std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
    out.push_back(token ? c : '-');
  }
  return out;
}

std::string sanitize_header_value(std::string_view value) {
  std::string out(value);
  for (char& c : out) {
    if (c == '\r' || c == '\n' || c == '\0') c = ' ';
  }
  return out;
}

std::string clip(std::string_view text, std::size_t n) {
  if (text.size() <= n) return std::string(text);
  const std::string_view kept = utf8_prefix(text, n);  // not inside a character
  return std::string(kept) + "... (" + std::to_string(text.size() - kept.size()) + " bytes more)";
}

/// A TLS client context trusting `options.ca_file` (or the system's trust
/// store), TLS 1.2+; nullptr and `error` when the trust store cannot be read.
std::unique_ptr<ssl::context> make_tls_context(const HttpHandlerOptions& options,
                                               std::string& error) {
  auto context = std::make_unique<ssl::context>(ssl::context::tls_client);
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  error_code ec;
  if (options.ca_file.empty()) {
    context->set_default_verify_paths(ec);
  } else {
    context->load_verify_file(options.ca_file, ec);
  }
  if (ec) {
    error = "cannot load TLS trust store" +
            (options.ca_file.empty() ? std::string() : " '" + options.ca_file + "'") + ": " +
            ec.message();
    return nullptr;
  }
  return context;
}

/// Where a followed redirect points, for the rest of one attempt.
struct RedirectTarget {
  syntax::Url url;
  std::string port;
  std::unique_ptr<ssl::context> tls_context;  // https only
};

constexpr int kMaxRedirects = 5;

/// One attempt: acquire a connection (idle, or resolve/connect/handshake),
/// write the request, read the response. Held in a shared_ptr by its pending
/// operation; runs on the actor's strand; `done` is invoked exactly once.
class HttpAttempt : public std::enable_shared_from_this<HttpAttempt> {
 public:
  HttpAttempt(std::shared_ptr<HttpShared> shared, AttemptCallback done)
      : shared_(std::move(shared)), done_(std::move(done)) {}

  void run(const AttemptContext& ctx) {
    slot_ = ctx.cancellation;
    if (!shared_->url) {
      post_failure(FailureClass::kPermanent, shared_->url_error);
      return;
    }
    build_request(ctx);
    if (slot_.is_connected()) {
      // Only post: the slot must not be cleared from inside its own handler.
      slot_.assign([weak = weak_from_this(), ex = shared_->executor](asio::cancellation_type type) {
        if (!type) return;
        asio::post(ex, [weak] {
          if (auto self = weak.lock()) self->cancel();
        });
      });
    }
    acquire();
  }

 private:
  const HttpHandlerOptions& options() const { return shared_->options; }
  /// Where this attempt sends now: the configured url, or where a
  /// followed redirect pointed.
  const syntax::Url& url() const { return redirect_ ? redirect_->url : *shared_->url; }
  const std::string& port() const { return redirect_ ? redirect_->port : shared_->port; }

  void build_request(const AttemptContext& ctx) {
    const http::verb verb = http::string_to_verb(options().method);
    if (verb == http::verb::unknown) {
      request_.method_string(options().method);
    } else {
      request_.method(verb);
    }
    request_.target(url().target);
    request_.version(11);
    request_.set(http::field::host, url().host_header());
    request_.set(http::field::user_agent, "troupe");
    request_.set(http::field::content_type, "application/octet-stream");
    for (const auto& [name, value] : options().headers) request_.set(name, value);
    for (const auto& [key, value] : ctx.metadata) {
      request_.set(options().metadata_header_prefix + sanitize_header_name(key),
                   sanitize_header_value(value));
    }
    request_.set("X-Troupe-Job-Id", ctx.id.to_string());
    request_.set("X-Troupe-Attempt", std::to_string(ctx.attempt));
    if (ctx.fence_term != 0) {
      request_.set("X-Troupe-Fence-Term", std::to_string(ctx.fence_term));
    } else {
      request_.erase("X-Troupe-Fence-Term");
    }
    request_.keep_alive(true);
    request_.body() = ctx.payload;
    request_.prepare_payload();
    sign();
  }

  void sign() {
    if (options().signing_secret.empty()) return;
    const auto now = shared_->clock.wall_now().time_since_epoch();
    const std::string timestamp =
        std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now).count());
    request_.set("X-Troupe-Timestamp", timestamp);
    request_.set("X-Troupe-Signature",
                 sign_http_request(options().signing_secret, timestamp, request_.body()));
  }

  void acquire() {
    if (redirect_) {
      // Never pooled and resolved afresh: the kept connections and the
      // cached addresses belong to the configured url.
      connection_ = std::make_unique<Connection>(shared_->executor, redirect_->tls_context.get());
      return resolve();
    }
    auto& idle = shared_->idle;
    if (!idle.empty()) {
      connection_ = std::move(idle.back());
      idle.pop_back();
      send();
      return;
    }
    connection_ = std::make_unique<Connection>(shared_->executor, shared_->tls_context.get());
    if (shared_->endpoints) {
      connect(*shared_->endpoints);
      return;
    }
    resolve();
  }

  void resolve() {
    shared_->resolver.async_resolve(
        url().host, port(),
        [self = shared_from_this()](const error_code& ec, tcp::resolver::results_type results) {
          if (self->cancelled_) return self->finish_cancelled();
          if (ec) {
            return self->finish(AttemptResult::failed(
                FailureClass::kRetryable,
                "http: cannot resolve '" + self->url().host + "': " + ec.message()));
          }
          if (!self->redirect_) self->shared_->endpoints = results;
          self->connect(results);
        });
  }

  /// Tries the resolved endpoints in order, each on a socket opened
  /// close-on-exec: asio opens sockets without SOCK_CLOEXEC, and a process
  /// another thread spawns meanwhile (an exec job) must never inherit a
  /// connection. Replaces asio::async_connect, which opens its own sockets.
  void connect(const tcp::resolver::results_type& endpoints) {
    endpoints_ = endpoints;
    connect_to(endpoints_.begin(), asio::error::host_not_found);
  }

  void connect_to(tcp::resolver::results_type::const_iterator next, error_code last) {
    auto& socket = connection_->socket();
    error_code ignored;
    socket.close(ignored);
    if (next == endpoints_.end()) {
      // The address may have moved: resolve again next time.
      if (!redirect_) shared_->endpoints.reset();
      return fail_connection("connect to " + url().host + ":" + port() + " failed", last);
    }
    const tcp::endpoint endpoint = next->endpoint();
    const int fd = ::socket(endpoint.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
    error_code open_ec;
    if (fd < 0) {
      open_ec.assign(errno, boost::system::system_category());
    } else {
      socket.assign(endpoint.protocol(), fd, open_ec);
      if (open_ec) ::close(fd);
    }
    if (open_ec) return connect_to(std::next(next), open_ec);
    socket.async_connect(endpoint, [self = shared_from_this(), next](const error_code& ec) {
      if (self->cancelled_) return self->finish_cancelled();
      if (ec) return self->connect_to(std::next(next), ec);
      error_code no_delay_ec;
      self->connection_->socket().set_option(tcp::no_delay(true), no_delay_ec);
      if (self->connection_->tls) return self->handshake();
      self->send();
    });
  }

  void handshake() {
    auto& tls = *connection_->tls;
    error_code addr_ec;
    asio::ip::make_address(url().host, addr_ec);
    // SNI carries names only, never address literals.
    if (addr_ec && SSL_set_tlsext_host_name(tls.native_handle(), url().host.c_str()) != 1) {
      return finish(AttemptResult::failed(FailureClass::kRetryable, "http: cannot set TLS SNI"));
    }
    tls.set_verify_mode(ssl::verify_peer);
    tls.set_verify_callback(ssl::host_name_verification(url().host));
    tls.async_handshake(
        ssl::stream_base::client, [self = shared_from_this()](const error_code& ec) {
          if (self->cancelled_) return self->finish_cancelled();
          if (ec)
            return self->fail_connection("TLS handshake with " + self->url().host + " failed", ec);
          self->send();
        });
  }

  void send() {
    connection_->with_stream([this](auto& stream) {
      http::async_write(stream, request_,
                        [self = shared_from_this()](const error_code& ec, std::size_t) {
                          if (self->cancelled_) return self->finish_cancelled();
                          if (ec) return self->exchange_failed(ec);
                          self->receive();
                        });
    });
  }

  void receive() {
    parser_.emplace();
    parser_->body_limit(options().max_response);
    if (request_.method() == http::verb::head) parser_->skip(true);  // no body follows
    // Header first: Beast 1.74 skips the body_limit check on a Content-Length
    // body when the parser is eager (as async_read makes it), so the limit is
    // checked while reading the header, before any body byte is buffered.
    connection_->with_stream([this](auto& stream) {
      http::async_read_header(stream, connection_->buffer, *parser_,
                              [self = shared_from_this()](const error_code& ec, std::size_t) {
                                if (self->cancelled_) return self->finish_cancelled();
                                if (ec) return self->exchange_failed(ec);
                                self->receive_body();
                              });
    });
  }

  void receive_body() {
    connection_->with_stream([this](auto& stream) {
      http::async_read(stream, connection_->buffer, *parser_,
                       [self = shared_from_this()](const error_code& ec, std::size_t) {
                         if (self->cancelled_) return self->finish_cancelled();
                         if (ec) return self->exchange_failed(ec);
                         self->on_response();
                       });
    });
  }

  /// A write or read failed. A kept-alive connection the server closed while
  /// idle fails exactly like this before any response byte: try once more on
  /// a fresh connection before calling it a failure.
  void exchange_failed(const error_code& ec) {
    if (ec == http::error::body_limit) {
      connection_->close();
      connection_.reset();
      return finish(AttemptResult::failed(FailureClass::kPermanent,
                                          "http: response body exceeds max_response (" +
                                              std::to_string(options().max_response) + " bytes)"));
    }
    const bool nothing_received = !parser_ || !parser_->got_some();
    if (connection_->used && nothing_received && !retried_stale_) {
      retried_stale_ = true;
      connection_->close();
      connection_.reset();
      return acquire();
    }
    fail_connection("request to " + url().host + ":" + port() + " failed", ec);
  }

  void on_response() {
    auto& response = parser_->get();
    const int status = static_cast<int>(response.result_int());
    connection_->used = true;
    if (!redirect_ && response.keep_alive() &&
        shared_->idle.size() < std::max(1u, options().connections_per_actor)) {
      shared_->idle.push_back(std::move(connection_));
    } else {
      connection_->close();
      connection_.reset();
    }
    const FailureClass cls = classify_http(options(), status);
    if (cls == FailureClass::kNone)
      return finish(AttemptResult::success(std::move(response.body())));
    const std::string exchange = "http: " + request_.method_string().to_string() + " " +
                                 url().host_header() + url().target + " -> " +
                                 std::to_string(status) + " " + response.reason().to_string();
    if (status >= 300 && status <= 399) {
      const auto location = response.find(http::field::location);
      if (location != response.end()) {
        return redirect(exchange, std::string(location->value()), status);
      }
    }
    AttemptResult result = AttemptResult::failed(
        cls, exchange + (response.body().empty() ? "" : ": " + clip(response.body(), 512)));
    if (cls == FailureClass::kRetryable) {
      const auto it = response.find(http::field::retry_after);
      if (it != response.end()) {
        result.retry_after = parse_retry_after(
            std::string_view(it->value().data(), it->value().size()), shared_->clock.wall_now());
      }
    }
    finish(std::move(result));
  }

  /// A 3xx with a Location: follow it when follow_redirects allows, else a
  /// permanent failure that names where it pointed.
  void redirect(const std::string& exchange, const std::string& location, int status) {
    auto refuse = [&](const std::string& why) {
      finish(AttemptResult::failed(FailureClass::kPermanent,
                                   exchange + ": redirect to " + clip(location, 512) + " " + why));
    };
    if (!options().follow_redirects) {
      return refuse(
          "not followed (follow_redirects is off; point url at it, or set "
          "follow_redirects: true)");
    }
    if (redirects_ == kMaxRedirects) {
      return refuse("not followed: " + std::to_string(kMaxRedirects) + " redirects already");
    }
    if (status == 300 || status == 304 || status == 305 || status == 306) {
      return refuse("not followed: " + std::to_string(status) + " is not a redirect to follow");
    }
    std::optional<syntax::Url> next;
    if (!location.empty() && location.front() == '/' &&
        (location.size() == 1 || location[1] != '/')) {
      next = url();  // a path on the same origin
      next->target = location.substr(0, location.find('#'));
    } else if (auto parsed = syntax::parse_url(location); parsed.value) {
      next = std::move(parsed.value);
    } else {
      return refuse("not followed: only an absolute http(s) URL or an absolute path is followed");
    }
    if (next->host != url().host) {
      return refuse("not followed: another host (only the same host is followed)");
    }
    if (url().tls() && !next->tls()) {
      return refuse("not followed: https to http");
    }
    auto target = std::make_unique<RedirectTarget>();
    target->url = std::move(*next);
    target->port = std::to_string(target->url.port);
    if (target->url.tls()) {
      std::string error;
      target->tls_context = make_tls_context(options(), error);
      if (!target->tls_context) return refuse("not followed: " + error);
    }
    redirect_ = std::move(target);
    ++redirects_;
    if (status == 303) {  // See Other: fetch the answer with GET
      request_.method(http::verb::get);
      request_.body().clear();
      request_.erase(http::field::content_type);
    }
    request_.target(url().target);
    request_.set(http::field::host, url().host_header());
    request_.prepare_payload();
    sign();
    parser_.reset();
    retried_stale_ = false;
    acquire();
  }

  void fail_connection(const std::string& what, const error_code& ec) {
    if (connection_) {
      connection_->close();
      connection_.reset();
    }
    finish(AttemptResult::failed(FailureClass::kRetryable, "http: " + what + ": " + ec.message()));
  }

  void cancel() {
    if (finished_ || cancelled_) return;
    cancelled_ = true;
    // Closing aborts whatever is pending on the connection; its handler then
    // completes the attempt as cancelled. The connection is not reused.
    shared_->resolver.cancel();
    if (connection_) connection_->close();
  }

  void finish_cancelled() {
    if (connection_) {
      connection_->close();
      connection_.reset();
    }
    finish(AttemptResult::failed(FailureClass::kCancelled, "http: cancelled; connection closed"));
  }

  void post_failure(FailureClass cls, std::string why) {
    asio::post(shared_->executor, [self = shared_from_this(), cls, why = std::move(why)]() mutable {
      self->finish(AttemptResult::failed(cls, std::move(why)));
    });
  }

  void finish(AttemptResult result) {
    if (finished_) return;
    finished_ = true;
    if (slot_.is_connected()) slot_.clear();  // before done: the signal may go away after it
    AttemptCallback done = std::move(done_);
    done(std::move(result));
  }

  std::shared_ptr<HttpShared> shared_;
  AttemptCallback done_;
  asio::cancellation_slot slot_;
  http::request<http::string_body> request_;
  std::optional<http::response_parser<http::string_body>> parser_;
  std::unique_ptr<Connection> connection_;
  tcp::resolver::results_type endpoints_;     // being tried by connect_to()
  std::unique_ptr<RedirectTarget> redirect_;  // set once a redirect is followed
  int redirects_ = 0;
  bool retried_stale_ = false;
  bool cancelled_ = false;
  bool finished_ = false;
};

/// One per actor: the kept-alive connections and the resolved address.
class HttpHandler final : public Handler {
 public:
  explicit HttpHandler(std::shared_ptr<HttpShared> shared) : shared_(std::move(shared)) {}
  ~HttpHandler() override {
    for (auto& c : shared_->idle) c->close();
  }

  void start(const AttemptContext& ctx, AttemptCallback done) override {
    std::make_shared<HttpAttempt>(shared_, std::move(done))->run(ctx);
  }

 private:
  std::shared_ptr<HttpShared> shared_;
};

bool parse_date(std::string_view value, const char* format, std::time_t& out) {
  std::tm tm{};
  const std::string text(value);
  const char* end = ::strptime(text.c_str(), format, &tm);
  if (end == nullptr || *end != '\0') return false;
  out = ::timegm(&tm);
  return out != static_cast<std::time_t>(-1);
}

}  // namespace

FailureClass classify_http(const HttpHandlerOptions& options, int status) {
  if (status >= 200 && status <= 299) return FailureClass::kNone;
  if (status >= 500 && status <= 599) return FailureClass::kRetryable;
  const auto& retryable = options.retryable_statuses;
  if (std::find(retryable.begin(), retryable.end(), status) != retryable.end()) {
    return FailureClass::kRetryable;
  }
  return FailureClass::kPermanent;
}

std::optional<Duration> parse_retry_after(std::string_view value,
                                          std::chrono::system_clock::time_point now) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (value.size() > 9) return std::nullopt;  // over ~30 years: nonsense
    return std::chrono::seconds(std::stoll(std::string(value)));
  }
  std::time_t when = 0;
  if (!parse_date(value, "%a, %d %b %Y %H:%M:%S GMT", when) &&
      !parse_date(value, "%A, %d-%b-%y %H:%M:%S GMT", when) &&
      !parse_date(value, "%a %b %e %H:%M:%S %Y", when)) {
    return std::nullopt;
  }
  const auto at = std::chrono::system_clock::from_time_t(when);
  if (at <= now) return Duration::zero();
  return std::chrono::duration_cast<Duration>(at - now);
}

std::string sign_http_request(std::string_view secret, std::string_view timestamp,
                              std::string_view body) {
  std::string message;
  message.reserve(timestamp.size() + 1 + body.size());
  message.append(timestamp).append(".").append(body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  ::HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &mac_size);
  return "v1=" + syntax::to_hex(std::span<const std::uint8_t>(mac, mac_size));
}

std::unique_ptr<Handler> make_http_handler(const HttpHandlerOptions& options,
                                           boost::asio::any_io_executor actor_executor,
                                           Clock& clock) {
  auto shared = std::make_shared<HttpShared>(options, std::move(actor_executor), clock);
  auto parsed = syntax::parse_url(options.url);
  shared->url = std::move(parsed.value);
  if (shared->url) shared->port = std::to_string(shared->url->port);
  if (!shared->url) {
    shared->url_error = "http: invalid url: " + parsed.error;
  } else if (shared->url->tls()) {
    std::string error;
    shared->tls_context = make_tls_context(options, error);
    if (!shared->tls_context) {
      shared->url.reset();
      shared->url_error = "http: " + error;
    }
  }
  return std::make_unique<HttpHandler>(std::move(shared));
}

}  // namespace troupe::core
