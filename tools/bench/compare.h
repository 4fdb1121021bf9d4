#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tools/bench/bench_options.h"
#include "tools/bench/load.h"

namespace troupe::bench {

/// The figures of one side of one round that the comparison uses.
struct SideFigures {
  double throughput = 0;  // requests per second
  double p50_us = 0;
  double p99_us = 0;
};

struct RoundFigures {
  SideFigures baseline;
  SideFigures daemon;
};

/// min, median and max of a set of values (median of an even count: the
/// mean of the middle two). All zero when the set is empty.
struct Spread {
  double min = 0;
  double median = 0;
  double max = 0;
};

/// What a side-by-side run concludes over its rounds: for throughput, p50
/// and p99, the spread of the per-round ratio daemon/baseline, and the
/// medians of the raw figures of each side. A round whose baseline figure is
/// zero has no ratio for that figure and is left out of its spread.
struct CompareSummary {
  std::size_t rounds = 0;
  Spread throughput_ratio;
  Spread p50_ratio;
  Spread p99_ratio;
  SideFigures baseline_median;
  SideFigures daemon_median;
};

/// Pure arithmetic over the rounds' figures.
Spread spread_of(std::vector<double> values);
CompareSummary summarize_rounds(const std::vector<RoundFigures>& rounds);

/// The figures of a report: throughput and latency percentiles of OK calls.
SideFigures figures_of(const BenchReport& report);

struct CompareRound {
  BenchReport baseline;
  BenchReport daemon;
};

/// Runs options.rounds rounds, each the baseline (baseline_mode(options.mode)
/// at *options.baseline) then the daemon (options.mode at options.address),
/// back to back, with the same load over fresh channels (the daemon's over
/// `connection`, the baseline's plaintext). Blocks the calling thread.
/// `on_round` (may be empty) runs on it after each round.
std::vector<CompareRound> run_compare(
    const BenchOptions& options, const tools::Connection& connection,
    const std::function<void(std::size_t index, const CompareRound&)>& on_round);

/// One round as text (two lines) and the whole comparison as text / JSON
/// (shape documented in docs/tools.md).
std::string compare_round_text(std::size_t index, std::size_t rounds, const CompareRound& round);
std::string compare_summary_text(const BenchOptions& options, const CompareSummary& summary);
std::string compare_json(const std::vector<CompareRound>& rounds, const CompareSummary& summary);
/// 0 when every run of every round had a successful call; otherwise the
/// exit code of the first run that had none (see bench_exit_code).
int compare_exit_code(const std::vector<CompareRound>& rounds);

}  // namespace troupe::bench
