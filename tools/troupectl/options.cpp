#include "tools/troupectl/options.h"

#include <charconv>
#include <string_view>

#include "syntax/duration.h"

namespace troupe::troupectl {
namespace {

constexpr const char* kUsage = R"(troupectl - command-line client for trouped

Usage: troupectl [global options] COMMAND [arguments]

Commands:
  submit TROUPE [--payload STR | --payload-file F | -] [--key K]
         [--idempotency-key K] [--timeout D] [--wait]
                       submit a job; prints its id (the job with --wait).
                       `-` reads stdin and submits one job per line in bulk
                       over SubmitStream (--window N jobs in flight, default 64);
                       a progress bar shows on stderr when it is a terminal.
  get ID               show a job
  watch ID             print each state change of a job until it ends
  cancel ID            cancel a job
  troupes              list the troupes
  troupe NAME          show one troupe
  dead TROUPE [--limit N]
                       list the troupe's dead jobs
  cluster              the replicas sharing the store (heartbeat age, alive) and
                       each troupe's queue across them (store kind postgres)
  health [SERVICE]     check grpc.health.v1 (SERVICE: "" = whole daemon, or a
                       troupe name); exits 0 only when SERVING

Global options:
  --address HOST:PORT  daemon address (default: $TROUPE_ADDRESS, then localhost:50051)
  --output text|json   output format (default text)
  --deadline D         per-call deadline, e.g. 500ms, 10s (default 10s; none for
                       watch and submit --wait)
  --no-progress        no progress bar for bulk submit
  -h, --help           this text
%CONNECTION%
Durations: a number and a unit (ns, us, ms, s, m, h), e.g. 250ms, 30s, 1m30s.

Exit codes:
  0  success (health: SERVING)
  1  the job ended but not SUCCEEDED (submit --wait, watch); health: not SERVING
  2  usage error, or the server refused the request as INVALID_ARGUMENT
  3  not found: unknown troupe, job id (or its result expired), or health service
  4  unavailable or rejected: daemon unreachable or draining, breaker open,
     troupe full or rate limited (bulk submit: some job was rejected so)
  5  any other RPC error (e.g. DEADLINE_EXCEEDED, INTERNAL)
)";

std::optional<Command> command_from(std::string_view word) {
  if (word == "submit") return Command::kSubmit;
  if (word == "get") return Command::kGet;
  if (word == "watch") return Command::kWatch;
  if (word == "cancel") return Command::kCancel;
  if (word == "troupes") return Command::kTroupes;
  if (word == "troupe") return Command::kTroupe;
  if (word == "dead") return Command::kDead;
  if (word == "cluster") return Command::kCluster;
  if (word == "health") return Command::kHealth;
  if (word == "help") return Command::kHelp;
  return std::nullopt;
}

UsageError usage(std::string message) {
  return UsageError{std::move(message) + " (see `troupectl --help`)"};
}

}  // namespace

const char* usage_text() {
  static const std::string text = tools::with_connection_usage(kUsage);
  return text.c_str();
}

std::variant<Options, UsageError> parse_options(const std::vector<std::string>& args,
                                                const char* env_address) {
  Options opts;
  opts.address = env_address != nullptr && *env_address != '\0' ? env_address : "localhost:50051";
  std::vector<std::string> positional;
  bool payload_given = false;

  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg == "-h" || arg == "--help") {
      opts.command = Command::kHelp;
      return opts;
    }
    if (arg == "-" || arg.size() < 2 || arg.rfind("--", 0) != 0) {
      if (arg == "-") {
        if (payload_given) return usage("give the payload once: --payload, --payload-file or -");
        payload_given = true;
        opts.payload_source = PayloadSource::kStdinLines;
        continue;
      }
      positional.push_back(arg);
      continue;
    }
    std::string name = arg;
    std::optional<std::string> inline_value;
    if (const auto eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      inline_value = arg.substr(eq + 1);
    }
    auto flag = [&](bool& field) -> std::optional<UsageError> {
      if (inline_value) return usage(name + " takes no value");
      field = true;
      return std::nullopt;
    };
    auto take_value = [&]() -> std::optional<std::string> {
      if (inline_value) return inline_value;
      if (i + 1 >= args.size()) return std::nullopt;
      return args[++i];
    };
    auto need = [&](std::optional<std::string>& v) -> std::optional<UsageError> {
      v = take_value();
      if (!v) return usage(name + " needs a value");
      return std::nullopt;
    };
    std::optional<std::string> v;
    if (name == "--wait") {
      if (auto e = flag(opts.wait)) return *e;
    } else if (tools::is_tls_flag(name)) {
      if (auto e = flag(opts.connection.tls)) return *e;
    } else if (name == "--ca" || name == "--cert" || name == "--cert-key" || name == "--token" ||
               name == "--token-file") {
      if (auto e = need(v)) return *e;
      if (v->empty()) return usage(name + " needs a value");
      tools::set_connection_option(opts.connection, name, *v);
    } else if (name == "--no-progress") {
      bool on = false;
      if (auto e = flag(on)) return *e;
      opts.progress = false;
    } else if (name == "--address") {
      if (auto e = need(v)) return *e;
      if (v->empty()) return usage("--address needs HOST:PORT, e.g. localhost:50051");
      opts.address = *v;
    } else if (name == "--output") {
      if (auto e = need(v)) return *e;
      if (*v == "text") {
        opts.output = OutputFormat::kText;
      } else if (*v == "json") {
        opts.output = OutputFormat::kJson;
      } else {
        return usage("--output must be text or json, not '" + *v + "'");
      }
    } else if (name == "--deadline" || name == "--timeout") {
      if (auto e = need(v)) return *e;
      const auto d = syntax::parse_duration(*v);
      if (!d.value) return usage(name + " needs a duration: " + d.error);
      if (d.value->count() <= 0) {
        return usage(name + " needs a positive duration like 500ms or 10s, not '" + *v + "'");
      }
      (name == "--deadline" ? opts.deadline : opts.timeout) = *d.value;
    } else if (name == "--payload" || name == "--payload-file") {
      if (auto e = need(v)) return *e;
      if (payload_given) return usage("give the payload once: --payload, --payload-file or -");
      payload_given = true;
      opts.payload_source = name == "--payload" ? PayloadSource::kString : PayloadSource::kFile;
      opts.payload = *v;
    } else if (name == "--key") {
      if (auto e = need(v)) return *e;
      opts.key = *v;
    } else if (name == "--idempotency-key") {
      if (auto e = need(v)) return *e;
      opts.idempotency_key = *v;
    } else if (name == "--limit" || name == "--window") {
      if (auto e = need(v)) return *e;
      std::uint32_t n = 0;
      const auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
      if (ec != std::errc() || end != v->data() + v->size() || (name == "--window" && n == 0)) {
        return usage(name + " needs a whole number" + (name == "--window" ? " > 0" : "") +
                     ", not '" + *v + "'");
      }
      (name == "--limit" ? opts.limit : opts.window) = n;
    } else {
      return usage("unknown option " + name);
    }
  }

  if (positional.empty()) {
    return usage("no command given");
  }
  const auto command = command_from(positional[0]);
  if (!command) return usage("unknown command '" + positional[0] + "'");
  opts.command = *command;
  const std::size_t operands = positional.size() - 1;
  if (operands > 0) opts.target = positional[1];

  auto operand_count = [&](std::size_t min, std::size_t max,
                           const char* what) -> std::optional<UsageError> {
    if (operands < min) return usage(positional[0] + " needs " + what);
    if (operands > max) return usage("too many arguments for " + positional[0]);
    return std::nullopt;
  };
  std::optional<UsageError> err;
  switch (opts.command) {
    case Command::kSubmit:
      err = operand_count(1, 1, "a troupe name: troupectl submit TROUPE --payload STR");
      break;
    case Command::kGet:
    case Command::kWatch:
    case Command::kCancel:
      err = operand_count(1, 1, "a job id");
      break;
    case Command::kTroupe:
    case Command::kDead:
      err = operand_count(1, 1, "a troupe name");
      break;
    case Command::kTroupes:
    case Command::kCluster:
    case Command::kHelp:
      err = operand_count(0, 0, "");
      break;
    case Command::kHealth:
      err = operand_count(0, 1, "");
      break;
  }
  if (err) return *err;

  const bool submit = opts.command == Command::kSubmit;
  if (!submit && (payload_given || opts.wait || !opts.key.empty() ||
                  !opts.idempotency_key.empty() || opts.timeout)) {
    return usage(
        "--payload, --payload-file, -, --key, --idempotency-key, --timeout and --wait "
        "apply to submit only");
  }
  if (opts.limit != 0 && opts.command != Command::kDead) {
    return usage("--limit applies to dead only");
  }
  if (submit && opts.payload_source == PayloadSource::kStdinLines) {
    if (opts.wait) return usage("bulk submit (-) cannot --wait: watch the printed ids instead");
    if (!opts.idempotency_key.empty()) {
      return usage("bulk submit (-) cannot share one --idempotency-key between lines");
    }
  }
  return opts;
}

}  // namespace troupe::troupectl
