#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "tools/common/connection.h"

namespace troupe::troupectl {

enum class Command {
  kSubmit,
  kGet,
  kWatch,
  kCancel,
  kTroupes,
  kTroupe,
  kDead,
  kCluster,
  kHealth,
  kHelp
};
enum class OutputFormat { kText, kJson };
/// Where submit takes its payload from.
enum class PayloadSource { kNone, kString, kFile, kStdinLines };

/// A parsed troupectl command line.
struct Options {
  Command command = Command::kHelp;
  std::string address;                  // --address, else TROUPE_ADDRESS, else localhost:50051
  tools::ConnectionOptions connection;  // --tls, --ca, --cert, --cert-key, --token(-file)
  OutputFormat output = OutputFormat::kText;
  /// Per-RPC deadline; unset = 10s for quick calls, none for watch / submit --wait.
  std::optional<std::chrono::nanoseconds> deadline;

  std::string target;  // TROUPE for submit/troupe/dead, ID for get/watch/cancel, SERVICE for health

  // submit
  PayloadSource payload_source = PayloadSource::kNone;
  std::string payload;  // the string, or the file name for kFile
  std::string key;
  std::string idempotency_key;
  std::optional<std::chrono::nanoseconds> timeout;
  bool wait = false;
  std::uint32_t window = 64;  // bulk submit: jobs awaiting their ack
  std::uint32_t limit = 0;    // dead --limit; 0 = server default
  bool progress = true;       // --no-progress turns the bulk progress bar off
};

struct UsageError {
  std::string message;  // what was wrong and what to type instead
};

/// Parses argv (without argv[0]). `env_address` is TROUPE_ADDRESS or null.
std::variant<Options, UsageError> parse_options(const std::vector<std::string>& args,
                                                const char* env_address);

/// The --help text, including the exit codes.
const char* usage_text();

}  // namespace troupe::troupectl
