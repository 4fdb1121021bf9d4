#pragma once

/// Option structs a troupe and the runtime are built from. config/ fills them
/// from YAML and validates them; core/ trusts what it is given (it asserts
/// only invariants that validation guarantees). Every default here is the
/// documented default (docs/configuration.md) — change both together.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <variant>
#include <vector>

namespace troupe::core {

using Duration = std::chrono::nanoseconds;
using namespace std::chrono_literals;

/// How an attempt ended, as classified by the handler kind's one
/// classification function. The retry policy and the circuit breaker both
/// consume this; neither re-interprets raw exit codes or HTTP statuses.
enum class FailureClass : std::uint8_t {
  kNone,       // success
  kRetryable,  // transient: retry with backoff
  kPermanent,  // never retried
  kTimeout,    // attempt ran past its timeout
  kCrash,      // handler threw, or its process died
  kCancelled,  // cancelled by request or drain
};

enum class TroupeMode : std::uint8_t { kFixed, kDynamic };

/// How a job is routed to an actor.
enum class DispatchStrategy : std::uint8_t {
  kLeastLoaded,  // shared queue; any idle actor takes the next job
  kRoundRobin,   // jobs are handed to actors in turn (idle actors still steal)
  kKey,          // same non-empty key -> same actor, in submission order
};

struct SupervisorOptions {
  enum class Strategy : std::uint8_t { kRestart, kResume, kStop };
  Strategy strategy = Strategy::kRestart;
  std::uint32_t max_restarts = 5;  // within `window`; past it the actor stops
  Duration window = 60s;
  Duration backoff_initial = 100ms;  // min(max, initial * 2^n) with jitter
  Duration backoff_max = 10s;
};

struct AutoscaleOptions {
  Duration interval = 5s;
  double high_threshold = 4.0;  // mean queued jobs per actor above which we grow
  double low_threshold = 0.5;   // ... below which we shrink
  double low_busy_ratio = 0.5;  // and only shrink when fewer than this share are busy
  std::uint32_t scale_up_step = 1;
  std::uint32_t scale_down_step = 1;
  Duration cooldown = 30s;
};

struct CircuitBreakerOptions {
  enum class OpenPolicy : std::uint8_t { kReject, kHold };
  bool enabled = true;
  std::uint32_t consecutive_failures = 5;  // 0 disables the consecutive rule
  std::uint32_t window_size = 20;          // count-based sliding window
  std::uint32_t minimum_calls = 10;        // rates are judged only past this
  double failure_rate_threshold = 0.5;     // (0, 1]
  double slow_call_rate_threshold = 1.0;   // (0, 1]; 1.0 = only when all are slow
  Duration slow_call_duration = 60s;
  Duration open_timeout = 30s;
  double open_timeout_multiplier = 1.0;  // >= 1; grows on repeated opens
  Duration max_open_timeout = 5min;
  std::uint32_t half_open_max_calls = 3;
  Duration max_wait_in_half_open = 60s;  // 0 = wait for the probes indefinitely
  OpenPolicy policy = OpenPolicy::kReject;
  /// Which failure classes count as breaker failures.
  std::set<FailureClass> record = {FailureClass::kRetryable, FailureClass::kTimeout,
                                   FailureClass::kCrash};
};

struct RetryOptions {
  std::uint32_t max_attempts = 3;  // total attempts, >= 1
  Duration initial_backoff = 100ms;
  Duration max_backoff = 30s;
  double multiplier = 2.0;  // >= 1
  bool jitter = true;       // full jitter: uniform in [0, computed backoff]
  /// Failure classes never retried (kPermanent is never retried regardless).
  std::set<FailureClass> non_retryable = {};
};

struct RateLimitOptions {
  bool enabled = false;
  double per_second = 0;    // dispatches per second, > 0 when enabled
  std::uint32_t burst = 1;  // bucket size, >= 1
};

struct BuiltinHandlerOptions {
  enum class Kind : std::uint8_t { kNoop, kEcho, kSleep, kFail };
  enum class FailMode : std::uint8_t { kThrow, kRetryable, kPermanent };
  Kind kind = Kind::kNoop;
  Duration sleep = 100ms;  // kSleep: used when the payload is not a duration
  FailMode fail_mode = FailMode::kRetryable;
  std::uint32_t fail_every = 1;  // kFail: fail every Nth call (1 = always)
};

struct ExecHandlerOptions {
  std::vector<std::string> argv;              // argv[0] resolved via PATH; never a shell
  std::string working_dir;                    // empty = daemon's cwd
  std::vector<std::string> env_allow;         // inherited by name, besides PATH
  std::map<std::string, std::string> env;     // fixed values
  std::size_t max_output = 1 << 20;           // stdout bytes; over -> permanent failure
  std::size_t max_stderr = 64 << 10;          // kept in the error, truncated
  Duration kill_grace = 5s;                   // SIGTERM -> SIGKILL
  std::vector<int> non_retryable_exit_codes;  // -> kPermanent
  std::string metadata_env_prefix = "TROUPE_META_";
};

struct HttpHandlerOptions {
  std::string url;  // http:// or https://
  std::string method = "POST";
  std::map<std::string, std::string> headers;
  std::size_t max_response = 1 << 20;
  std::uint32_t connections_per_actor = 1;           // kept alive
  std::vector<int> retryable_statuses = {408, 429};  // plus every 5xx
  std::string metadata_header_prefix = "X-Troupe-Meta-";
  std::string ca_file;  // https: PEM file of trusted CAs; empty = system default verify paths
};

using HandlerOptions = std::variant<BuiltinHandlerOptions, ExecHandlerOptions, HttpHandlerOptions>;

struct TroupeOptions {
  std::string name;
  TroupeMode mode = TroupeMode::kDynamic;
  std::uint32_t min_actors = 1;
  std::uint32_t initial_actors = 1;
  std::uint32_t max_actors = 4;           // fixed mode runs exactly max_actors
  std::uint32_t mailbox_capacity = 1024;  // per actor
  DispatchStrategy dispatch = DispatchStrategy::kLeastLoaded;
  Duration timeout = 30s;  // per attempt
  SupervisorOptions supervisor;
  AutoscaleOptions autoscale;
  CircuitBreakerOptions circuit_breaker;
  RetryOptions retry;
  RateLimitOptions rate_limit;
  HandlerOptions handler = BuiltinHandlerOptions{};
  std::size_t dead_letter_capacity = 1000;
  /// Bytes (payload + error) the dead letters keep; the oldest go first.
  std::size_t dead_letter_max_bytes = 64u << 20;
};

struct JobStoreOptions {
  Duration result_ttl = 10min;         // terminal jobs stay visible this long
  std::size_t max_jobs = 1'000'000;    // records kept (terminal ones evicted first)
  std::size_t max_bytes = 512u << 20;  // payload + result bytes kept
  Duration idempotency_ttl = 24h;
};

struct RuntimeOptions {
  JobStoreOptions job_store;
};

}  // namespace troupe::core
