#pragma once

/// Option structs a troupe and the runtime are built from. config/ fills them
/// from YAML and validates them; core/ trusts what it is given (it asserts
/// only invariants that validation guarantees). Every default here is the
/// documented default (docs/configuration.md) — change both together. Each
/// struct compares with a defaulted operator==, so a field added later is
/// compared too (a reload rebuilds handlers exactly when their options differ).

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
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

  bool operator==(const SupervisorOptions&) const = default;
};

struct AutoscaleOptions {
  Duration interval = 5s;
  double high_threshold = 4.0;  // mean queued jobs per actor above which we grow
  double low_threshold = 0.5;   // ... below which we shrink
  double low_busy_ratio = 0.5;  // and only shrink when fewer than this share are busy
  std::uint32_t scale_up_step = 1;
  std::uint32_t scale_down_step = 1;
  Duration cooldown = 30s;

  bool operator==(const AutoscaleOptions&) const = default;
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

  bool operator==(const CircuitBreakerOptions&) const = default;
};

struct RetryOptions {
  std::uint32_t max_attempts = 3;  // total attempts, >= 1
  Duration initial_backoff = 100ms;
  Duration max_backoff = 30s;
  double multiplier = 2.0;  // >= 1
  bool jitter = true;       // full jitter: uniform in [0, computed backoff]
  /// Failure classes never retried (kPermanent is never retried regardless).
  std::set<FailureClass> non_retryable = {};

  bool operator==(const RetryOptions&) const = default;
};

struct RateLimitOptions {
  bool enabled = false;
  double per_second = 0;    // dispatches per second, > 0 when enabled
  std::uint32_t burst = 1;  // bucket size, >= 1

  bool operator==(const RateLimitOptions&) const = default;
};

class HandlerConfig;  // core/handler.h

/// A troupe's handler: one handler kind's options (handlers/<kind>/, e.g.
/// BuiltinHandlerOptions) behind a shared immutable value, so that core
/// knows no kind. Two compare equal when they are of the same kind and
/// every option is equal (the kind's defaulted operator==). Empty until set;
/// config always sets one. Copies share the value; thread-safe to read.
class HandlerOptions {
 public:
  HandlerOptions() = default;
  /// From a kind's options struct; defined in core/handler.h, which the
  /// kind's header includes.
  template <class KindOptions>
  requires requires { KindOptions::kKind; }
  HandlerOptions(KindOptions options);  // NOLINT(google-explicit-constructor)

  const HandlerConfig* config() const { return config_.get(); }
  /// The kind's options, or nullptr when the handler is of another kind.
  template <class KindOptions>
  const KindOptions* get_if() const;

  bool operator==(const HandlerOptions& other) const;

 private:
  std::shared_ptr<const HandlerConfig> config_;
};

/// A troupe's coordination across the replicas of a shared store
/// (`cluster:` of a troupe, docs/cluster.md; only with a shared journal).
struct ClusterOptions {
  /// One replica at a time runs the troupe's jobs (leader election with a
  /// fencing term); the others accept them and hand them to the store.
  bool singleton = false;
  /// Running attempts of the troupe across all replicas, at most (0: no cap).
  std::uint32_t max_concurrency = 0;
  /// Attempt starts per second across all replicas (a token bucket in the
  /// store, leased to replicas in blocks); burst is the bucket's size.
  RateLimitOptions rate_limit;

  bool any() const { return singleton || max_concurrency > 0 || rate_limit.enabled; }
  /// The tokens a replica takes from the cluster bucket at a time: a tenth
  /// of a second's worth, at least one.
  static std::uint32_t rate_block(double per_second) {
    return per_second >= 10 ? static_cast<std::uint32_t>(std::ceil(per_second / 10)) : 1;
  }
  /// The bucket's size when none is given: two blocks, so that the bucket
  /// does not fill up (and waste tokens) between two replicas' requests.
  static std::uint32_t default_rate_burst(double per_second) { return 2 * rate_block(per_second); }
  bool operator==(const ClusterOptions&) const = default;
};

struct TroupeOptions {
  std::string name;
  TroupeMode mode = TroupeMode::kDynamic;
  std::uint32_t min_actors = 1;
  std::uint32_t initial_actors = 1;
  std::uint32_t max_actors = 4;           // fixed mode runs exactly max_actors
  std::uint32_t mailbox_capacity = 1024;  // per actor
  DispatchStrategy dispatch = DispatchStrategy::kLeastLoaded;
  Duration timeout = 30s;  // per attempt
  /// The most a job may ask for as its own attempt timeout; unset: `timeout`.
  std::optional<Duration> max_timeout;
  SupervisorOptions supervisor;
  AutoscaleOptions autoscale;
  CircuitBreakerOptions circuit_breaker;
  RetryOptions retry;
  RateLimitOptions rate_limit;
  HandlerOptions handler;
  std::size_t dead_letter_capacity = 1000;
  /// Bytes (payload + error) the dead letters keep; the oldest go first.
  std::size_t dead_letter_max_bytes = 64u << 20;
  ClusterOptions cluster;

  bool operator==(const TroupeOptions&) const = default;
};

/// The cap on a job's own attempt timeout: max_timeout, else the timeout.
inline Duration max_timeout(const TroupeOptions& o) {
  return o.max_timeout.value_or(o.timeout);
}

struct JobStoreOptions {
  Duration result_ttl = 10min;         // terminal jobs stay visible this long
  std::size_t max_jobs = 1'000'000;    // records kept (terminal ones evicted first)
  std::size_t max_bytes = 512u << 20;  // payload + result bytes kept
  Duration idempotency_ttl = 24h;

  bool operator==(const JobStoreOptions&) const = default;
};

struct RuntimeOptions {
  JobStoreOptions job_store;
  /// Per job: at most this many watches, and at most this many on_terminal
  /// callbacks (the submit's own and those of duplicates waiting on it).
  std::size_t max_listeners_per_job = 64;
  /// Shared journal: how often a watch of a job held by another replica
  /// asks the store for the job's row (Runtime::watch; docs/cluster.md).
  Duration remote_watch_interval = std::chrono::milliseconds(200);

  bool operator==(const RuntimeOptions&) const = default;
};

}  // namespace troupe::core
