#include "tools/bench/report.h"

#include <grpcpp/support/status.h>

#include <algorithm>
#include <cstdio>
#include <initializer_list>
#include <string_view>

#include "tools/common/duration.h"
#include "tools/common/exit_code.h"
#include "tools/common/json_writer.h"

namespace troupe::bench {
namespace {

using tools::micros;

struct Quantile {
  const char* name;
  double q;
};
constexpr Quantile kQuantiles[] = {{"p50", 50}, {"p90", 90}, {"p99", 99}, {"p99.9", 99.9}};

std::string code_name(int code) {
  return tools::status_code_name(static_cast<grpc::StatusCode>(code));
}

}  // namespace

std::string report_text(const BenchReport& r) {
  const auto& o = r.options;
  std::string out;
  char line[256];
  if (o.mode == Mode::kEcho || o.mode == Mode::kEchoStream) {
    std::snprintf(line, sizeof line, "target:      %s address=%s payload=%zuB\n", mode_name(o.mode),
                  o.address.c_str(), o.payload_size);
  } else {
    std::snprintf(line, sizeof line, "target:      %s troupe=%s address=%s payload=%zuB\n",
                  mode_name(o.mode), o.troupe.c_str(), o.address.c_str(), o.payload_size);
  }
  out += line;
  if (streaming_mode(o.mode)) {
    std::snprintf(line, sizeof line, "load:        %u streams x window %u, %u channels\n",
                  o.streams, o.window, o.threads);
  } else {
    std::snprintf(line, sizeof line, "load:        %u in flight, %u channels\n", o.concurrency,
                  o.threads);
  }
  out += line;
  std::snprintf(line, sizeof line,
                "requests:    %llu in %s (%llu ok, %llu errors)\nthroughput:  %.1f req/s\n",
                static_cast<unsigned long long>(r.requests),
                tools::format_duration(r.elapsed).c_str(), static_cast<unsigned long long>(r.ok),
                static_cast<unsigned long long>(r.requests - r.ok), r.throughput());
  out += line;
  // Appended piece by piece: GCC 12 at -O3 warns (-Wrestrict, a false
  // positive) on `"literal" + std::string` chains.
  auto append = [&out](std::initializer_list<std::string_view> parts) {
    for (const auto part : parts) out.append(part);
  };
  append({"latency:     min ", tools::format_duration(r.latency.min()), "  mean ",
          tools::format_duration(r.latency.mean())});
  for (const auto& q : kQuantiles) {
    append({"  ", q.name, " ", tools::format_duration(r.latency.percentile(q.q))});
  }
  append({"  max ", tools::format_duration(r.latency.max()), "\n"});
  if (!r.errors.empty()) {
    out.append("errors:     ");
    for (const auto& [code, n] : r.errors) append({" ", code_name(code), "=", std::to_string(n)});
    out.append("\n");
  }
  if (r.stream_failures > 0) {
    append({"streams that failed: ", std::to_string(r.stream_failures), "\n"});
  }
  return out;
}

std::string report_json(const BenchReport& r) {
  const auto& o = r.options;
  tools::JsonWriter w;
  w.begin_object();
  w.key("mode").value(mode_name(o.mode));
  w.key("troupe").value(o.troupe);
  w.key("address").value(o.address);
  w.key("concurrency").value(static_cast<std::uint64_t>(o.concurrency));
  w.key("streams").value(static_cast<std::uint64_t>(o.streams));
  w.key("window").value(static_cast<std::uint64_t>(o.window));
  w.key("threads").value(static_cast<std::uint64_t>(o.threads));
  w.key("payload_size").value(static_cast<std::uint64_t>(o.payload_size));
  w.key("elapsed_seconds").value(std::chrono::duration<double>(r.elapsed).count());
  w.key("requests").value(r.requests);
  w.key("ok").value(r.ok);
  w.key("throughput_rps").value(r.throughput());
  w.key("errors").begin_object();
  for (const auto& [code, n] : r.errors) w.key(code_name(code)).value(n);
  w.end_object();
  w.key("stream_failures").value(r.stream_failures);
  w.key("latency_us").begin_object();
  w.key("min").value(micros(r.latency.min()));
  w.key("mean").value(micros(r.latency.mean()));
  for (const auto& q : kQuantiles) w.key(q.name).value(micros(r.latency.percentile(q.q)));
  w.key("max").value(micros(r.latency.max()));
  w.end_object();
  w.end_object();
  return w.str();
}

int bench_exit_code(const BenchReport& r) {
  if (r.ok > 0) return static_cast<int>(tools::ExitCode::kOk);
  if (r.errors.empty()) return static_cast<int>(tools::ExitCode::kRpcError);
  const auto worst =
      std::max_element(r.errors.begin(), r.errors.end(),
                       [](const auto& a, const auto& b) { return a.second < b.second; });
  return static_cast<int>(tools::exit_code_for(static_cast<grpc::StatusCode>(worst->first)));
}

}  // namespace troupe::bench
