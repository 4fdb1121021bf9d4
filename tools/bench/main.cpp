#include <cstdio>
#include <cstdlib>

#include "tools/bench/bench_options.h"
#include "tools/bench/compare.h"
#include "tools/bench/load.h"
#include "tools/bench/report.h"
#include "tools/bench/targets.h"
#include "tools/common/exit_code.h"

namespace {

using namespace troupe::bench;

int run_single(const BenchOptions& opts, const troupe::tools::Connection& connection) {
  auto target = make_target(opts);
  const BenchReport report =
      run_bench(opts, *target, make_channels(opts.address, connection, opts.threads));
  if (opts.json) {
    std::printf("%s\n", report_json(report).c_str());
  } else {
    std::fputs(report_text(report).c_str(), stdout);
  }
  const int code = bench_exit_code(report);
  if (code != 0) {
    std::fprintf(stderr,
                 "troupe-bench: no call succeeded; is trouped running at %s with troupe '%s'?\n",
                 opts.address.c_str(), opts.troupe.c_str());
  }
  return code;
}

int run_side_by_side(const BenchOptions& opts, const troupe::tools::Connection& connection) {
  const auto rounds =
      run_compare(opts, connection, [&opts](std::size_t i, const CompareRound& round) {
        if (opts.json) return;
        std::fputs(compare_round_text(i, opts.rounds, round).c_str(), stdout);
        std::fflush(stdout);
      });
  std::vector<RoundFigures> figures;
  for (const auto& r : rounds) figures.push_back({figures_of(r.baseline), figures_of(r.daemon)});
  const CompareSummary summary = summarize_rounds(figures);
  if (opts.json) {
    std::printf("%s\n", compare_json(rounds, summary).c_str());
  } else {
    std::fputs(compare_summary_text(opts, summary).c_str(), stdout);
  }
  const int code = compare_exit_code(rounds);
  if (code != 0) {
    std::fprintf(stderr,
                 "troupe-bench: a run had no successful call; is echo_server at %s and trouped "
                 "at %s with troupe '%s'?\n",
                 opts.baseline->c_str(), opts.address.c_str(), opts.troupe.c_str());
  }
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = parse_bench_options(args, std::getenv("TROUPE_ADDRESS"));
  if (auto* err = std::get_if<BenchUsageError>(&parsed)) {
    std::fprintf(stderr, "troupe-bench: %s\n", err->message.c_str());
    return static_cast<int>(troupe::tools::ExitCode::kUsage);
  }
  const auto& opts = std::get<BenchOptions>(parsed);
  if (opts.help) {
    std::fputs(bench_usage_text(), stdout);
    return 0;
  }
  const auto connection =
      troupe::tools::open_connection(opts.connection, std::getenv("TROUPE_TOKEN"));
  if (!connection.error.empty()) {
    std::fprintf(stderr, "troupe-bench: %s\n", connection.error.c_str());
    return static_cast<int>(troupe::tools::ExitCode::kUsage);
  }
  return opts.baseline ? run_side_by_side(opts, connection) : run_single(opts, connection);
}
