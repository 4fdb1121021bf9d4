#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <cstdio>
#include <cstdlib>

#include "tools/bench/bench_options.h"
#include "tools/bench/load.h"
#include "tools/bench/report.h"
#include "tools/bench/targets.h"
#include "tools/common/exit_code.h"

int main(int argc, char** argv) {
  using namespace troupe::bench;
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
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (std::uint32_t i = 0; i < opts.threads; ++i) {
    grpc::ChannelArguments ch_args;
    // A distinct argument per channel keeps gRPC from sharing one connection.
    ch_args.SetInt("troupe.bench.channel", static_cast<int>(i));
    ch_args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channels.push_back(
        grpc::CreateCustomChannel(opts.address, grpc::InsecureChannelCredentials(), ch_args));
  }
  auto target = make_target(opts);
  const BenchReport report = run_bench(opts, *target, channels);
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
