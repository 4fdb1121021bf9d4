#pragma once

/// A tiny HTTP/1.1 server (Boost.Beast) for handler tests: listens on
/// 127.0.0.1:0, answers each request as its Responder says (status, headers,
/// body, delay, or drop the connection), and records every request and every
/// accepted TCP connection. Runs on a strand of the test's io_context; read
/// its counters while the io_context is not running.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace troupe::core::testing {

namespace http = boost::beast::http;

struct Reply {
  Reply(int s = 200, std::string b = {}, std::vector<std::pair<std::string, std::string>> h = {},
        std::chrono::milliseconds d = {}, bool drop_it = false, bool close_it = false)
      : status(s),
        body(std::move(b)),
        headers(std::move(h)),
        delay(d),
        drop(drop_it),
        close_after(close_it) {}
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds delay{0};
  bool drop = false;         // close the connection without answering
  bool close_after = false;  // answer (advertising keep-alive), then close anyway
};

class TestHttpServer {
 public:
  using Request = http::request<http::string_body>;
  using Responder = std::function<Reply(const Request&)>;

  TestHttpServer(boost::asio::io_context& io, Responder responder)
      : state_(std::make_shared<State>(io, std::move(responder))) {
    accept(state_);
  }
  ~TestHttpServer() { stop(); }

  unsigned short port() const { return state_->acceptor.local_endpoint().port(); }
  std::string url(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port()) + path;
  }
  int connections() const { return state_->connections; }
  const std::vector<Request>& requests() const { return state_->requests; }
  void set_responder(Responder r) { state_->responder = std::move(r); }

  void stop() {
    boost::system::error_code ignored;
    state_->acceptor.close(ignored);
    for (auto& weak : state_->sessions) {
      if (auto s = weak.lock()) s->close();
    }
    state_->sessions.clear();
  }

 private:
  using tcp = boost::asio::ip::tcp;
  struct Session;
  struct State {
    State(boost::asio::io_context& io, Responder r)
        // One strand for the whole server, so it may run on a multi-threaded
        // io_context: accepted sockets inherit the acceptor's executor.
        : acceptor(boost::asio::make_strand(io),
                   tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0)),
          responder(std::move(r)) {}
    tcp::acceptor acceptor;
    Responder responder;
    int connections = 0;
    std::vector<Request> requests;
    std::vector<std::weak_ptr<Session>> sessions;
  };

  struct Session : std::enable_shared_from_this<Session> {
    Session(std::shared_ptr<State> s, tcp::socket sock)
        : state(std::move(s)), socket(std::move(sock)), timer(socket.get_executor()) {}

    void close() {
      boost::system::error_code ignored;
      timer.cancel();
      socket.shutdown(tcp::socket::shutdown_both, ignored);
      socket.close(ignored);
    }

    void read() {
      request = {};
      http::async_read(socket, buffer, request,
                       [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                         if (ec) return self->close();
                         self->state->requests.push_back(self->request);
                         Reply reply = self->state->responder(self->request);
                         if (reply.drop) return self->close();
                         if (reply.delay.count() == 0) return self->respond(std::move(reply));
                         self->timer.expires_after(reply.delay);
                         self->timer.async_wait(
                             [self, reply = std::move(reply)](boost::system::error_code wait_ec) {
                               if (!wait_ec) self->respond(reply);
                             });
                       });
    }

    void respond(Reply reply) {
      auto res = std::make_shared<http::response<http::string_body>>(
          static_cast<http::status>(reply.status), 11);
      for (auto& [k, v] : reply.headers) res->set(k, v);
      res->body() = reply.body;
      res->keep_alive(request.keep_alive());
      res->prepare_payload();
      const bool close_after = reply.close_after;
      http::async_write(
          socket, *res,
          [self = shared_from_this(), res, close_after](boost::system::error_code ec, std::size_t) {
            if (ec || close_after || !res->keep_alive()) return self->close();
            self->read();
          });
    }

    std::shared_ptr<State> state;
    tcp::socket socket;
    boost::asio::steady_timer timer;
    boost::beast::flat_buffer buffer;
    Request request;
  };

  static void accept(const std::shared_ptr<State>& state) {
    state->acceptor.async_accept([state](boost::system::error_code ec, tcp::socket socket) {
      if (ec) return;
      ++state->connections;
      auto session = std::make_shared<Session>(state, std::move(socket));
      state->sessions.push_back(session);
      session->read();
      accept(state);
    });
  }

  std::shared_ptr<State> state_;
};

}  // namespace troupe::core::testing
