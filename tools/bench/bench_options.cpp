#include "tools/bench/bench_options.h"

#include <charconv>

#include "syntax/duration.h"

namespace troupe::bench {
namespace {

constexpr const char* kUsage = R"(troupe-bench - closed-loop gRPC load generator for trouped

Usage: troupe-bench [options]

  --mode submit|submit-wait|stream|echo|echo-stream
                      submit: unary Submit, answered at acceptance (default)
                      submit-wait: unary Submit with wait=true (job run time included)
                      stream: SubmitStream, one ack per job
                      echo, echo-stream: unary Echo / EchoStream of echo_server
                      (tests/bench/echo_server, the bare gRPC baseline)
  --troupe NAME       troupe to submit to (default echo)
  --concurrency N     unary calls in flight (default 16)
  --streams N         stream modes: concurrent streams (default 1)
  --window N          stream modes: requests awaiting their answer per stream (default 64)
  --duration D        measure for D (default 10s when --count is not given)
  --count N           measure exactly N calls instead of a duration
  --warmup D          run D before measuring; those calls are not reported (default 0)
  --payload-size N    payload bytes per job (default 16)
  --threads N         client channels (separate HTTP/2 connections); gRPC's callback
                      threads serve all of them (default 2)
  --deadline D        per-call deadline for unary calls (default 30s)
  --address HOST:PORT daemon (default: $TROUPE_ADDRESS, then localhost:50051)
  --baseline HOST:PORT
                      side by side: each round runs the baseline (echo_server; mode
                      echo for submit/submit-wait, echo-stream for stream), then the
                      daemon, with the same load over fresh channels; prints every
                      round and daemon/baseline ratios (min, median, max). With mode
                      echo or echo-stream, --address is a second echo_server (e.g.
                      --style cq against --style callback: server styles compared)
  --rounds N          with --baseline: rounds (default 5)
  --output text|json  report format (default text)
  -h, --help          this text
%CONNECTION%
The report gives throughput and latency (min, mean, p50, p90, p99, p99.9, max;
exact, from every measured sample) and errors by status code. Stream latency is
from a job's write to its ack.

Exit codes: 0 the run completed and some call succeeded; 2 usage error;
4 no call succeeded and the daemon was unavailable or rejected every call;
3 / 5 no call succeeded for another reason (NOT_FOUND, other RPC errors).
)";

template <class T>
bool parse_number(const std::string& text, T& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

BenchUsageError usage(std::string message) {
  return BenchUsageError{std::move(message) + " (see `troupe-bench --help`)"};
}

}  // namespace

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::kSubmit:
      return "submit";
    case Mode::kSubmitWait:
      return "submit-wait";
    case Mode::kSubmitStream:
      return "stream";
    case Mode::kEcho:
      return "echo";
    case Mode::kEchoStream:
      return "echo-stream";
  }
  return "?";
}

bool streaming_mode(Mode m) {
  return m == Mode::kSubmitStream || m == Mode::kEchoStream;
}

Mode baseline_mode(Mode m) {
  return streaming_mode(m) ? Mode::kEchoStream : Mode::kEcho;
}

const char* bench_usage_text() {
  static const std::string text = tools::with_connection_usage(kUsage);
  return text.c_str();
}

std::variant<BenchOptions, BenchUsageError> parse_bench_options(
    const std::vector<std::string>& args, const char* env_address) {
  BenchOptions o;
  bool rounds_given = false;
  if (env_address != nullptr && *env_address != '\0') o.address = env_address;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h" || arg == "--help") {
      o.help = true;
      return o;
    }
    if (tools::is_tls_flag(arg)) {
      o.connection.tls = true;
      continue;
    }
    std::string name = arg;
    std::optional<std::string> value;
    if (const auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    if (name.rfind("--", 0) != 0) return usage("unexpected argument '" + arg + "'");
    if (!value) {
      if (i + 1 >= args.size()) return usage(name + " needs a value");
      value = args[++i];
    }
    const std::string& v = *value;
    auto positive = [&](std::uint32_t& field) -> std::optional<BenchUsageError> {
      if (!parse_number(v, field) || field == 0) {
        return usage(name + " needs a whole number > 0, not '" + v + "'");
      }
      return std::nullopt;
    };
    auto duration =
        [&](bool allow_zero) -> std::variant<std::chrono::nanoseconds, BenchUsageError> {
      const auto d = troupe::syntax::parse_duration(v);
      if (!d.value) return usage(name + " needs a duration: " + d.error);
      if (!allow_zero && d.value->count() == 0) {
        return usage(name + " needs a duration like 500ms or 10s, not '" + v + "'");
      }
      return *d.value;
    };
    std::optional<BenchUsageError> err;
    if (name == "--mode") {
      if (v == "submit") {
        o.mode = Mode::kSubmit;
      } else if (v == "submit-wait") {
        o.mode = Mode::kSubmitWait;
      } else if (v == "stream") {
        o.mode = Mode::kSubmitStream;
      } else if (v == "echo") {
        o.mode = Mode::kEcho;
      } else if (v == "echo-stream") {
        o.mode = Mode::kEchoStream;
      } else {
        return usage("--mode must be submit, submit-wait, stream, echo or echo-stream, not '" + v +
                     "'");
      }
    } else if (tools::set_connection_option(o.connection, name, v)) {
      if (v.empty()) return usage(name + " needs a value");
    } else if (name == "--troupe") {
      if (v.empty()) return usage("--troupe needs a name");
      o.troupe = v;
    } else if (name == "--address") {
      if (v.empty()) return usage("--address needs HOST:PORT");
      o.address = v;
    } else if (name == "--baseline") {
      if (v.empty()) return usage("--baseline needs HOST:PORT");
      o.baseline = v;
    } else if (name == "--rounds") {
      err = positive(o.rounds);
      rounds_given = true;
    } else if (name == "--concurrency") {
      err = positive(o.concurrency);
    } else if (name == "--streams") {
      err = positive(o.streams);
    } else if (name == "--window") {
      err = positive(o.window);
    } else if (name == "--threads") {
      err = positive(o.threads);
    } else if (name == "--count") {
      std::uint64_t n = 0;
      if (!parse_number(v, n) || n == 0) return usage("--count needs a whole number > 0");
      o.count = n;
    } else if (name == "--payload-size") {
      std::size_t n = 0;
      if (!parse_number(v, n)) return usage("--payload-size needs a number of bytes");
      o.payload_size = n;
    } else if (name == "--duration" || name == "--warmup" || name == "--deadline") {
      auto d = duration(name == "--warmup");
      if (auto* e = std::get_if<BenchUsageError>(&d)) return *e;
      const auto ns = std::get<std::chrono::nanoseconds>(d);
      if (name == "--duration") {
        o.duration = ns;
      } else if (name == "--warmup") {
        o.warmup = ns;
      } else {
        o.call_deadline = ns;
      }
    } else if (name == "--output") {
      if (v != "text" && v != "json") return usage("--output must be text or json");
      o.json = v == "json";
    } else {
      return usage("unknown option " + name);
    }
    if (err) return *err;
  }
  if (o.duration && o.count) return usage("give --duration or --count, not both");
  if (!o.duration && !o.count) o.duration = std::chrono::seconds(10);
  if (rounds_given && !o.baseline) return usage("--rounds needs --baseline");
  return o;
}

}  // namespace troupe::bench
