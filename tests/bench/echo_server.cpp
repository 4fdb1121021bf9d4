// echo_server: the bare gRPC baseline troupe-bench compares trouped against
// (`troupe-bench --baseline`, scripts/perf-compare.sh). EchoService answers
// at once, in the callback style trouped uses or on the classic async API
// with completion queues, on the same server options as trouped.
//
//   echo_server [--address 127.0.0.1:0] [--style callback|cq] [--threads N]
//               [--max-lifetime D]
//
// Prints `echo_server listening on HOST:PORT style=STYLE` once serving; stops
// on SIGTERM/SIGINT, or by itself after --max-lifetime (default 15m).
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "daemon/grpc_runtime.h"
#include "syntax/duration.h"
#include "tests/bench/echo_callback_service.h"
#include "tests/bench/echo_cq_server.h"

namespace {

using namespace std::chrono_literals;

// As trouped: its default max_payload (4MiB) plus its request overhead
// (daemon/daemon.cpp kRequestOverhead), so both refuse the same sizes.
constexpr int kMaxReceiveMessageSize = (4 << 20) + (64 << 10);
constexpr auto kShutdownDeadline = 5s;

constexpr const char* kUsage =
    "usage: echo_server [--address HOST:PORT] [--style callback|cq] [--threads N]\n"
    "                   [--max-lifetime D]\n"
    "  --address       where to listen (default 127.0.0.1:0: a free port)\n"
    "  --style         callback: gRPC's callback API, as trouped (default)\n"
    "                  cq: the async API, one completion queue and thread per --threads\n"
    "  --threads N     cq style: completion queues/threads (default: CPU cores)\n"
    "  --max-lifetime  stop by itself after this long (default 15m)\n";

struct Options {
  std::string address = "127.0.0.1:0";
  std::string style = "callback";
  std::uint32_t threads = std::max(1u, std::thread::hardware_concurrency());
  std::chrono::nanoseconds max_lifetime = 15min;
};

std::optional<Options> parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string name = argv[i];
    if (i + 1 >= argc) return std::nullopt;
    const std::string value = argv[++i];
    if (name == "--address" && !value.empty()) {
      o.address = value;
    } else if (name == "--style" && (value == "callback" || value == "cq")) {
      o.style = value;
    } else if (name == "--threads") {
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), o.threads);
      if (ec != std::errc() || end != value.data() + value.size() || o.threads == 0) {
        return std::nullopt;
      }
    } else if (name == "--max-lifetime") {
      const auto d = troupe::syntax::parse_duration(value).value;
      if (!d || d->count() == 0) return std::nullopt;
      o.max_lifetime = *d;
    } else {
      return std::nullopt;
    }
  }
  return o;
}

/// Blocks until SIGTERM/SIGINT or until `bound` passes (both signals are
/// blocked in every thread, so they arrive here).
void wait_for_stop(const sigset_t& signals, std::chrono::nanoseconds bound) {
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(bound);
  timespec timeout{static_cast<time_t>(secs.count()), static_cast<long>((bound - secs).count())};
  for (;;) {
    const int signo = sigtimedwait(&signals, nullptr, &timeout);
    if (signo > 0) return;
    if (errno == EAGAIN) {
      std::fprintf(stderr, "echo_server: --max-lifetime reached, stopping\n");
      return;
    }
    // EINTR: another signal interrupted the wait; a restart from the full
    // bound is harmless for a lifetime cap.
  }
}

}  // namespace

int main(int argc, char** argv) {
  const auto options = parse(argc, argv);
  if (!options) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  // Blocked before gRPC starts its threads, which inherit the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // The same process-wide gRPC settings as trouped (daemon/grpc_runtime.h).
  troupe::daemon::configure_grpc_process();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options->address, grpc::InsecureServerCredentials(), &port);
  // The same server options as trouped (daemon/daemon.cpp).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(kMaxReceiveMessageSize);
  std::unique_ptr<troupe::bench::EchoCallbackService> callback_service;
  std::unique_ptr<troupe::bench::EchoCqServer> cq_server;
  if (options->style == "callback") {
    callback_service = std::make_unique<troupe::bench::EchoCallbackService>();
    builder.RegisterService(callback_service.get());
  } else {
    cq_server = std::make_unique<troupe::bench::EchoCqServer>(builder, options->threads);
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "echo_server: cannot listen on %s\n", options->address.c_str());
    if (cq_server) cq_server->shutdown();
    return 1;
  }
  if (cq_server) cq_server->start();
  const std::string host = options->address.substr(0, options->address.rfind(':'));
  std::printf("echo_server listening on %s:%d style=%s\n", host.c_str(), port,
              options->style.c_str());
  std::fflush(stdout);

  wait_for_stop(stop_signals, options->max_lifetime);
  server->Shutdown(std::chrono::system_clock::now() + kShutdownDeadline);
  if (cq_server) cq_server->shutdown();
  server->Wait();
  return 0;
}
