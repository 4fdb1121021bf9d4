#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "tools/common/connection.h"

namespace troupe::bench {

/// What each call is. A new target adds a value here and one small class in
/// targets.cpp.
enum class Mode {
  kSubmit,        // unary Submit, answered at acceptance
  kSubmitWait,    // unary Submit with wait=true: answered when the job ends
  kSubmitStream,  // SubmitStream: --streams streams, --window jobs in flight each
  kEcho,          // unary Echo of tests/bench/echo_server (the bare gRPC baseline)
  kEchoStream,    // EchoStream of echo_server: --streams streams, --window in flight each
};

/// True for the modes that drive a bidi stream with the windowed driver.
bool streaming_mode(Mode m);
/// The echo_server mode a daemon mode is compared with under --baseline:
/// submit and submit-wait -> echo, stream -> echo-stream.
Mode baseline_mode(Mode m);

struct BenchOptions {
  Mode mode = Mode::kSubmit;
  std::string address = "localhost:50051";
  /// How to reach the daemon at `address` (the --baseline echo_server is
  /// always plaintext).
  tools::ConnectionOptions connection;
  std::string troupe = "echo";
  std::uint32_t concurrency = 16;  // unary: calls in flight
  std::uint32_t streams = 1;       // stream: concurrent streams
  std::uint32_t window = 64;       // stream: requests in flight per stream
  /// Exactly one of duration / count bounds the measured run.
  std::optional<std::chrono::nanoseconds> duration;
  std::optional<std::uint64_t> count;
  std::size_t payload_size = 16;
  std::chrono::nanoseconds warmup{0};  // calls in this lead-in are not measured
  std::uint32_t threads = 2;           // channels (HTTP/2 connections) to spread load over
  std::chrono::nanoseconds call_deadline = std::chrono::seconds(30);  // per unary call
  /// Side by side: the echo_server to run the derived baseline mode against,
  /// alternating with the daemon at `address` for `rounds` rounds.
  std::optional<std::string> baseline;
  std::uint32_t rounds = 5;
  bool json = false;
  bool help = false;
};

struct BenchUsageError {
  std::string message;
};

/// Parses argv (without argv[0]). `env_address` is TROUPE_ADDRESS or null.
std::variant<BenchOptions, BenchUsageError> parse_bench_options(
    const std::vector<std::string>& args, const char* env_address);

const char* mode_name(Mode m);
const char* bench_usage_text();

}  // namespace troupe::bench
