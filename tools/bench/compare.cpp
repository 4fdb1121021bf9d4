#include "tools/bench/compare.h"

#include <algorithm>
#include <cstdio>

#include "tools/bench/report.h"
#include "tools/bench/targets.h"
#include "tools/common/duration.h"
#include "tools/common/json_writer.h"

namespace troupe::bench {
namespace {

using tools::micros;

std::string latency_text(double us) {
  return tools::format_duration(std::chrono::nanoseconds(static_cast<std::int64_t>(us * 1e3)));
}

/// The ratios daemon/baseline of one figure over the rounds with a nonzero baseline.
template <class Field>
Spread ratio_spread(const std::vector<RoundFigures>& rounds, Field field) {
  std::vector<double> ratios;
  for (const auto& r : rounds) {
    const double base = field(r.baseline);
    if (base > 0) ratios.push_back(field(r.daemon) / base);
  }
  return spread_of(std::move(ratios));
}

template <class Field>
double median_of(const std::vector<RoundFigures>& rounds, bool daemon, Field field) {
  std::vector<double> values;
  for (const auto& r : rounds) values.push_back(field(daemon ? r.daemon : r.baseline));
  return spread_of(std::move(values)).median;
}

SideFigures medians(const std::vector<RoundFigures>& rounds, bool daemon) {
  return {median_of(rounds, daemon, [](const SideFigures& s) { return s.throughput; }),
          median_of(rounds, daemon, [](const SideFigures& s) { return s.p50_us; }),
          median_of(rounds, daemon, [](const SideFigures& s) { return s.p99_us; })};
}

void write_spread(tools::JsonWriter& w, const char* name, const Spread& s) {
  w.key(name).begin_object();
  w.key("min").value(s.min);
  w.key("median").value(s.median);
  w.key("max").value(s.max);
  w.end_object();
}

void write_side(tools::JsonWriter& w, const char* name, const SideFigures& s) {
  w.key(name).begin_object();
  w.key("throughput_rps").value(s.throughput);
  w.key("p50_us").value(s.p50_us);
  w.key("p99_us").value(s.p99_us);
  w.end_object();
}

std::string side_line(const char* label, const BenchReport& r) {
  const SideFigures f = figures_of(r);
  char line[256];
  std::snprintf(line, sizeof line, "%-9s %-12s %11.1f req/s  p50 %-8s  p99 %s", label,
                mode_name(r.options.mode), f.throughput, latency_text(f.p50_us).c_str(),
                latency_text(f.p99_us).c_str());
  std::string out = line;
  if (r.ok != r.requests) out.append("  errors ").append(std::to_string(r.requests - r.ok));
  if (r.stream_failures > 0) {
    out.append("  failed streams ").append(std::to_string(r.stream_failures));
  }
  return out;
}

}  // namespace

Spread spread_of(std::vector<double> values) {
  if (values.empty()) return {};
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  const double median = n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  return {values.front(), median, values.back()};
}

CompareSummary summarize_rounds(const std::vector<RoundFigures>& rounds) {
  CompareSummary s;
  s.rounds = rounds.size();
  s.throughput_ratio = ratio_spread(rounds, [](const SideFigures& f) { return f.throughput; });
  s.p50_ratio = ratio_spread(rounds, [](const SideFigures& f) { return f.p50_us; });
  s.p99_ratio = ratio_spread(rounds, [](const SideFigures& f) { return f.p99_us; });
  s.baseline_median = medians(rounds, false);
  s.daemon_median = medians(rounds, true);
  return s;
}

SideFigures figures_of(const BenchReport& report) {
  return {report.throughput(), micros(report.latency.percentile(50)),
          micros(report.latency.percentile(99))};
}

std::vector<CompareRound> run_compare(
    const BenchOptions& options, const tools::Connection& connection,
    const std::function<void(std::size_t index, const CompareRound&)>& on_round) {
  const tools::Connection plaintext{grpc::InsecureChannelCredentials(), {}, {}};
  BenchOptions baseline_options = options;
  baseline_options.mode = baseline_mode(options.mode);
  baseline_options.address = options.baseline.value_or("");
  const auto baseline_target = make_target(baseline_options);
  const auto daemon_target = make_target(options);
  std::vector<CompareRound> rounds;
  for (std::uint32_t i = 0; i < options.rounds; ++i) {
    // Fresh channels per run: neither side inherits the other's (or an
    // earlier round's) warmed-up connections.
    CompareRound round;
    round.baseline = run_bench(baseline_options, *baseline_target,
                               make_channels(baseline_options.address, plaintext, options.threads));
    round.daemon = run_bench(options, *daemon_target,
                             make_channels(options.address, connection, options.threads));
    if (on_round) on_round(i, round);
    rounds.push_back(std::move(round));
  }
  return rounds;
}

std::string compare_round_text(std::size_t index, std::size_t rounds, const CompareRound& round) {
  char label[32];
  std::snprintf(label, sizeof label, "round %zu/%zu", index + 1, rounds);
  std::string out = label;
  out.append("\n  ").append(side_line("baseline", round.baseline));
  out.append("\n  ").append(side_line("daemon", round.daemon)).append("\n");
  return out;
}

std::string compare_summary_text(const BenchOptions& options, const CompareSummary& s) {
  std::string out;
  char line[320];
  const std::string load =
      streaming_mode(options.mode)
          ? std::to_string(options.streams) + " streams x window " + std::to_string(options.window)
          : std::to_string(options.concurrency) + " in flight";
  std::snprintf(line, sizeof line,
                "daemon %s (troupe %s, %s) vs baseline %s (%s); %s, %u channels, payload %zuB; "
                "%zu rounds\n",
                mode_name(options.mode), options.troupe.c_str(), options.address.c_str(),
                mode_name(baseline_mode(options.mode)), options.baseline.value_or("").c_str(),
                load.c_str(), options.threads, options.payload_size, s.rounds);
  out += line;
  std::snprintf(line, sizeof line, "%-11s %16s %16s   %s\n", "figure", "baseline median",
                "daemon median", "daemon/baseline min / median / max");
  out += line;
  auto row = [&](const char* name, const std::string& base, const std::string& daemon,
                 const Spread& r) {
    std::snprintf(line, sizeof line, "%-11s %16s %16s   %.3f / %.3f / %.3f\n", name, base.c_str(),
                  daemon.c_str(), r.min, r.median, r.max);
    out += line;
  };
  char base_tp[32];
  char daemon_tp[32];
  std::snprintf(base_tp, sizeof base_tp, "%.1f/s", s.baseline_median.throughput);
  std::snprintf(daemon_tp, sizeof daemon_tp, "%.1f/s", s.daemon_median.throughput);
  row("throughput", base_tp, daemon_tp, s.throughput_ratio);
  row("p50", latency_text(s.baseline_median.p50_us), latency_text(s.daemon_median.p50_us),
      s.p50_ratio);
  row("p99", latency_text(s.baseline_median.p99_us), latency_text(s.daemon_median.p99_us),
      s.p99_ratio);
  return out;
}

std::string compare_json(const std::vector<CompareRound>& rounds, const CompareSummary& s) {
  tools::JsonWriter w;
  w.begin_object();
  w.key("rounds").begin_array();
  for (const auto& r : rounds) {
    w.begin_object();
    w.key("baseline").raw(report_json(r.baseline));
    w.key("daemon").raw(report_json(r.daemon));
    w.end_object();
  }
  w.end_array();
  w.key("ratio").begin_object();
  write_spread(w, "throughput", s.throughput_ratio);
  write_spread(w, "p50", s.p50_ratio);
  write_spread(w, "p99", s.p99_ratio);
  w.end_object();
  w.key("median").begin_object();
  write_side(w, "baseline", s.baseline_median);
  write_side(w, "daemon", s.daemon_median);
  w.end_object();
  w.end_object();
  return w.str();
}

int compare_exit_code(const std::vector<CompareRound>& rounds) {
  for (const auto& r : rounds) {
    if (const int code = bench_exit_code(r.baseline); code != 0) return code;
    if (const int code = bench_exit_code(r.daemon); code != 0) return code;
  }
  return 0;
}

}  // namespace troupe::bench
