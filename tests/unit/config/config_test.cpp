#include "config/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>
#include <variant>

#include "config/crypto.h"
#include "handlers/builtin/builtin_options.h"
#include "handlers/exec/exec_options.h"
#include "handlers/http/http_options.h"

namespace troupe::config {
namespace {

using namespace std::chrono_literals;
using core::Duration;
using core::FailureClass;

std::string all_errors(const LoadResult& result) {
  std::string out;
  for (const auto& error : result.errors) out += error.to_string() + "\n";
  return out;
}

Config load_valid(std::string_view yaml) {
  LoadResult result = load_string(yaml, "test.yaml");
  EXPECT_TRUE(result.errors.empty()) << all_errors(result);
  EXPECT_TRUE(result.config.has_value());
  return result.config.value_or(Config{});
}

// ------------------------------------------------------------ valid files

TEST(LoadString, MinimalTroupeTakesEveryDefault) {
  const Config config = load_valid(R"(troupes:
  - name: echo
    handler: {kind: builtin, name: echo}
)");
  const ServerOptions server_defaults;
  EXPECT_EQ(config.server.grpc_address, server_defaults.grpc_address);
  EXPECT_EQ(config.server.metrics_address, server_defaults.metrics_address);
  EXPECT_EQ(config.server.threads, 0u);
  EXPECT_EQ(config.server.drain_timeout, Duration(30s));
  EXPECT_EQ(config.server.limits.max_payload, 4u << 20);
  EXPECT_EQ(config.server.limits.max_metadata_entries, 32u);
  EXPECT_EQ(config.server.limits.max_metadata_bytes, 8u << 10);
  EXPECT_EQ(config.runtime.max_listeners_per_job, 64u);
  EXPECT_EQ(config.server.grpc.max_concurrent_streams, 1000u);
  EXPECT_EQ(config.server.grpc.keepalive_time, Duration(1min));
  EXPECT_EQ(config.server.grpc.keepalive_timeout, Duration(20s));
  EXPECT_EQ(config.server.grpc.min_client_ping_interval, Duration(10s));
  EXPECT_EQ(config.server.grpc.max_memory, std::size_t{1} << 30);
  EXPECT_EQ(config.logging.level, "info");
  EXPECT_EQ(config.logging.format, LoggingOptions::Format::kText);
  EXPECT_EQ(config.runtime.job_store.result_ttl, Duration(10min));
  EXPECT_EQ(config.runtime.job_store.max_jobs, 1'000'000u);
  EXPECT_EQ(config.runtime.job_store.max_bytes, 512u << 20);
  EXPECT_EQ(config.runtime.job_store.idempotency_ttl, Duration(24h));

  ASSERT_EQ(config.troupes.size(), 1u);
  const core::TroupeOptions& t = config.troupes[0];
  EXPECT_EQ(t.name, "echo");
  EXPECT_EQ(t.mode, core::TroupeMode::kDynamic);
  EXPECT_EQ(t.min_actors, 1u);
  EXPECT_EQ(t.initial_actors, 1u);
  EXPECT_EQ(t.max_actors, 4u);
  EXPECT_EQ(t.mailbox_capacity, 1024u);
  EXPECT_EQ(t.dispatch, core::DispatchStrategy::kLeastLoaded);
  EXPECT_EQ(t.timeout, Duration(30s));
  EXPECT_FALSE(t.max_timeout.has_value());
  EXPECT_EQ(core::max_timeout(t), Duration(30s));  // the troupe's timeout
  EXPECT_EQ(t.dead_letter_capacity, 1000u);

  EXPECT_EQ(t.supervisor.strategy, core::SupervisorOptions::Strategy::kRestart);
  EXPECT_EQ(t.supervisor.max_restarts, 5u);
  EXPECT_EQ(t.supervisor.window, Duration(60s));
  EXPECT_EQ(t.supervisor.backoff_initial, Duration(100ms));
  EXPECT_EQ(t.supervisor.backoff_max, Duration(10s));

  EXPECT_EQ(t.autoscale.interval, Duration(5s));
  EXPECT_DOUBLE_EQ(t.autoscale.high_threshold, 4.0);
  EXPECT_DOUBLE_EQ(t.autoscale.low_threshold, 0.5);
  EXPECT_DOUBLE_EQ(t.autoscale.low_busy_ratio, 0.5);
  EXPECT_EQ(t.autoscale.scale_up_step, 1u);
  EXPECT_EQ(t.autoscale.scale_down_step, 1u);
  EXPECT_EQ(t.autoscale.cooldown, Duration(30s));

  const auto& cb = t.circuit_breaker;
  EXPECT_TRUE(cb.enabled);
  EXPECT_EQ(cb.consecutive_failures, 5u);
  EXPECT_EQ(cb.window_size, 20u);
  EXPECT_EQ(cb.minimum_calls, 10u);
  EXPECT_DOUBLE_EQ(cb.failure_rate_threshold, 0.5);
  EXPECT_DOUBLE_EQ(cb.slow_call_rate_threshold, 1.0);
  EXPECT_EQ(cb.slow_call_duration, Duration(60s));
  EXPECT_EQ(cb.open_timeout, Duration(30s));
  EXPECT_DOUBLE_EQ(cb.open_timeout_multiplier, 1.0);
  EXPECT_EQ(cb.max_open_timeout, Duration(5min));
  EXPECT_EQ(cb.half_open_max_calls, 3u);
  EXPECT_EQ(cb.max_wait_in_half_open, Duration(60s));
  EXPECT_EQ(cb.policy, core::CircuitBreakerOptions::OpenPolicy::kReject);
  EXPECT_EQ(cb.record, (std::set<FailureClass>{FailureClass::kRetryable, FailureClass::kTimeout,
                                               FailureClass::kCrash}));

  EXPECT_EQ(t.retry.max_attempts, 3u);
  EXPECT_EQ(t.retry.initial_backoff, Duration(100ms));
  EXPECT_EQ(t.retry.max_backoff, Duration(30s));
  EXPECT_DOUBLE_EQ(t.retry.multiplier, 2.0);
  EXPECT_TRUE(t.retry.jitter);
  EXPECT_TRUE(t.retry.non_retryable.empty());

  EXPECT_FALSE(t.rate_limit.enabled);

  const auto* builtin = t.handler.get_if<core::BuiltinHandlerOptions>();
  ASSERT_NE(builtin, nullptr);
  EXPECT_EQ(builtin->kind, core::BuiltinHandlerOptions::Kind::kEcho);
  EXPECT_EQ(builtin->sleep, Duration(100ms));
  EXPECT_EQ(builtin->fail_mode, core::BuiltinHandlerOptions::FailMode::kRetryable);
  EXPECT_EQ(builtin->fail_every, 1u);
}

constexpr std::string_view kFullFile = R"(server:
  grpc_address: "[::1]:6000"
  metrics_address: localhost:6001
  threads: 8
  shutdown: {drain_timeout: 1m30s}
  limits: {max_payload: 1MiB, max_metadata_entries: 4, max_metadata_bytes: 512,
           max_waiters_per_job: 7}
  grpc: {max_concurrent_streams: 50, keepalive_time: 30s, keepalive_timeout: 5s,
         min_client_ping_interval: 1s, max_memory: 256MiB}
  job_store: {result_ttl: 2m, max_jobs: 5000, max_bytes: 64MiB, idempotency_ttl: 1h}
logging: {level: debug, format: json}
troupes:
  - name: full.one
    mode: dynamic
    actors: {min: 2, initial: 3, max: 9}
    mailbox: 77
    dispatch: key
    timeout: 1500ms
    max_timeout: 2m
    dead_letter_capacity: 12
    supervisor: {strategy: resume, max_restarts: 7, window: 2m, backoff_initial: 50ms, backoff_max: 3s}
    autoscale: {interval: 1s, high_threshold: 6, low_threshold: 1.5, low_busy_ratio: 0.25, scale_up_step: 2, scale_down_step: 3, cooldown: 0s}
    circuit_breaker:
      enabled: false
      consecutive_failures: 0
      window_size: 40
      minimum_calls: 40
      failure_rate_threshold: 0.75
      slow_call_rate_threshold: 0.9
      slow_call_duration: 2s
      open_timeout: 3s
      open_timeout_multiplier: 1.5
      max_open_timeout: 1m
      half_open_max_calls: 1
      max_wait_in_half_open: 0
      policy: hold
      record: [permanent, crash]
    retry: {max_attempts: 6, initial_backoff: 10ms, max_backoff: 1s, multiplier: 3.5, jitter: false, non_retryable: [timeout, crash]}
    rate_limit: {per_second: 12.5, burst: 4}
    handler: {kind: builtin, name: fail, fail_mode: throw, fail_every: 3}
  - name: proc
    mode: fixed
    actors: {max: 3}
    handler:
      kind: exec
      argv: [tr, "a-z", "A-Z"]
      working_dir: /tmp
      env_allow: [HOME, LANG]
      env: {LC_ALL: C, EMPTY: ""}
      max_output: 2KiB
      max_stderr: 100
      kill_grace: 250ms
      non_retryable_exit_codes: [2, 64]
      metadata_env_prefix: META_
  - name: web
    mode: fixed
    actors: 5
    rate_limit: {enabled: false, per_second: 1}
    handler:
      kind: http
      url: https://example.com:8443/hook
      method: PUT
      headers: {Authorization: Bearer x, X-Trace: "1"}
      max_response: 3MiB
      connections_per_actor: 4
      retryable_statuses: [409, 503]
      metadata_header_prefix: X-Meta-
  - name: nap
    handler: {kind: builtin, name: sleep, sleep: 5ms}
)";

TEST(LoadString, FullFileSetsEveryField) {
  const Config config = load_valid(kFullFile);
  EXPECT_EQ(config.server.grpc_address, "[::1]:6000");
  EXPECT_EQ(config.server.metrics_address, "localhost:6001");
  EXPECT_EQ(config.server.threads, 8u);
  EXPECT_EQ(config.server.drain_timeout, Duration(90s));
  EXPECT_EQ(config.server.limits.max_payload, 1u << 20);
  EXPECT_EQ(config.server.limits.max_metadata_entries, 4u);
  EXPECT_EQ(config.server.limits.max_metadata_bytes, 512u);
  EXPECT_EQ(config.runtime.max_listeners_per_job, 7u);
  EXPECT_EQ(config.server.grpc.max_concurrent_streams, 50u);
  EXPECT_EQ(config.server.grpc.keepalive_time, Duration(30s));
  EXPECT_EQ(config.server.grpc.keepalive_timeout, Duration(5s));
  EXPECT_EQ(config.server.grpc.min_client_ping_interval, Duration(1s));
  EXPECT_EQ(config.server.grpc.max_memory, 256u << 20);
  EXPECT_EQ(config.runtime.job_store.result_ttl, Duration(2min));
  EXPECT_EQ(config.runtime.job_store.max_jobs, 5000u);
  EXPECT_EQ(config.runtime.job_store.max_bytes, 64u << 20);
  EXPECT_EQ(config.runtime.job_store.idempotency_ttl, Duration(1h));
  EXPECT_EQ(config.logging.level, "debug");
  EXPECT_EQ(config.logging.format, LoggingOptions::Format::kJson);
  ASSERT_EQ(config.troupes.size(), 4u);

  const core::TroupeOptions& t = config.troupes[0];
  EXPECT_EQ(t.name, "full.one");
  EXPECT_EQ(t.mode, core::TroupeMode::kDynamic);
  EXPECT_EQ(t.min_actors, 2u);
  EXPECT_EQ(t.initial_actors, 3u);
  EXPECT_EQ(t.max_actors, 9u);
  EXPECT_EQ(t.mailbox_capacity, 77u);
  EXPECT_EQ(t.dispatch, core::DispatchStrategy::kKey);
  EXPECT_EQ(t.timeout, Duration(1500ms));
  EXPECT_EQ(t.max_timeout, Duration(2min));
  EXPECT_EQ(core::max_timeout(t), Duration(2min));
  EXPECT_EQ(t.dead_letter_capacity, 12u);
  EXPECT_EQ(t.supervisor.strategy, core::SupervisorOptions::Strategy::kResume);
  EXPECT_EQ(t.supervisor.max_restarts, 7u);
  EXPECT_EQ(t.supervisor.window, Duration(2min));
  EXPECT_EQ(t.supervisor.backoff_initial, Duration(50ms));
  EXPECT_EQ(t.supervisor.backoff_max, Duration(3s));
  EXPECT_EQ(t.autoscale.interval, Duration(1s));
  EXPECT_DOUBLE_EQ(t.autoscale.high_threshold, 6.0);
  EXPECT_DOUBLE_EQ(t.autoscale.low_threshold, 1.5);
  EXPECT_DOUBLE_EQ(t.autoscale.low_busy_ratio, 0.25);
  EXPECT_EQ(t.autoscale.scale_up_step, 2u);
  EXPECT_EQ(t.autoscale.scale_down_step, 3u);
  EXPECT_EQ(t.autoscale.cooldown, Duration::zero());
  const auto& cb = t.circuit_breaker;
  EXPECT_FALSE(cb.enabled);
  EXPECT_EQ(cb.consecutive_failures, 0u);
  EXPECT_EQ(cb.window_size, 40u);
  EXPECT_EQ(cb.minimum_calls, 40u);
  EXPECT_DOUBLE_EQ(cb.failure_rate_threshold, 0.75);
  EXPECT_DOUBLE_EQ(cb.slow_call_rate_threshold, 0.9);
  EXPECT_EQ(cb.slow_call_duration, Duration(2s));
  EXPECT_EQ(cb.open_timeout, Duration(3s));
  EXPECT_DOUBLE_EQ(cb.open_timeout_multiplier, 1.5);
  EXPECT_EQ(cb.max_open_timeout, Duration(1min));
  EXPECT_EQ(cb.half_open_max_calls, 1u);
  EXPECT_EQ(cb.max_wait_in_half_open, Duration::zero());
  EXPECT_EQ(cb.policy, core::CircuitBreakerOptions::OpenPolicy::kHold);
  EXPECT_EQ(cb.record, (std::set<FailureClass>{FailureClass::kPermanent, FailureClass::kCrash}));
  EXPECT_EQ(t.retry.max_attempts, 6u);
  EXPECT_EQ(t.retry.initial_backoff, Duration(10ms));
  EXPECT_EQ(t.retry.max_backoff, Duration(1s));
  EXPECT_DOUBLE_EQ(t.retry.multiplier, 3.5);
  EXPECT_FALSE(t.retry.jitter);
  EXPECT_EQ(t.retry.non_retryable,
            (std::set<FailureClass>{FailureClass::kTimeout, FailureClass::kCrash}));
  EXPECT_TRUE(t.rate_limit.enabled);
  EXPECT_DOUBLE_EQ(t.rate_limit.per_second, 12.5);
  EXPECT_EQ(t.rate_limit.burst, 4u);
  const auto* fail = t.handler.get_if<core::BuiltinHandlerOptions>();
  ASSERT_NE(fail, nullptr);
  EXPECT_EQ(fail->kind, core::BuiltinHandlerOptions::Kind::kFail);
  EXPECT_EQ(fail->fail_mode, core::BuiltinHandlerOptions::FailMode::kThrow);
  EXPECT_EQ(fail->fail_every, 3u);

  const core::TroupeOptions& proc = config.troupes[1];
  EXPECT_EQ(proc.mode, core::TroupeMode::kFixed);
  EXPECT_EQ(proc.min_actors, 3u);
  EXPECT_EQ(proc.initial_actors, 3u);
  EXPECT_EQ(proc.max_actors, 3u);
  const auto* exec = proc.handler.get_if<core::ExecHandlerOptions>();
  ASSERT_NE(exec, nullptr);
  EXPECT_EQ(exec->argv, (std::vector<std::string>{"tr", "a-z", "A-Z"}));
  EXPECT_EQ(exec->working_dir, "/tmp");
  EXPECT_EQ(exec->env_allow, (std::vector<std::string>{"HOME", "LANG"}));
  EXPECT_EQ(exec->env, (std::map<std::string, std::string>{{"LC_ALL", "C"}, {"EMPTY", ""}}));
  EXPECT_EQ(exec->max_output, 2048u);
  EXPECT_EQ(exec->max_stderr, 100u);
  EXPECT_EQ(exec->kill_grace, Duration(250ms));
  EXPECT_EQ(exec->non_retryable_exit_codes, (std::vector<int>{2, 64}));
  EXPECT_EQ(exec->metadata_env_prefix, "META_");

  const core::TroupeOptions& web = config.troupes[2];
  EXPECT_EQ(web.min_actors, 5u);
  EXPECT_EQ(web.initial_actors, 5u);
  EXPECT_EQ(web.max_actors, 5u);
  EXPECT_FALSE(web.rate_limit.enabled);
  const auto* http = web.handler.get_if<core::HttpHandlerOptions>();
  ASSERT_NE(http, nullptr);
  EXPECT_EQ(http->url, "https://example.com:8443/hook");
  EXPECT_EQ(http->method, "PUT");
  EXPECT_EQ(http->headers,
            (std::map<std::string, std::string>{{"Authorization", "Bearer x"}, {"X-Trace", "1"}}));
  EXPECT_EQ(http->max_response, 3u << 20);
  EXPECT_EQ(http->connections_per_actor, 4u);
  EXPECT_EQ(http->retryable_statuses, (std::vector<int>{409, 503}));
  EXPECT_EQ(http->metadata_header_prefix, "X-Meta-");

  const auto* nap = config.troupes[3].handler.get_if<core::BuiltinHandlerOptions>();
  ASSERT_NE(nap, nullptr);
  EXPECT_EQ(nap->kind, core::BuiltinHandlerOptions::Kind::kSleep);
  EXPECT_EQ(nap->sleep, Duration(5ms));
}

TEST(LoadString, DynamicInitialDefaultsToMinAndFixedDefaultsToMax) {
  const Config config = load_valid(R"(troupes:
  - name: a
    actors: {min: 3, max: 6}
    handler: {kind: builtin, name: noop}
  - name: b
    mode: fixed
    handler: {kind: builtin, name: noop}
)");
  ASSERT_EQ(config.troupes.size(), 2u);
  EXPECT_EQ(config.troupes[0].initial_actors, 3u);
  EXPECT_EQ(config.troupes[1].min_actors, 4u);
  EXPECT_EQ(config.troupes[1].initial_actors, 4u);
  EXPECT_EQ(config.troupes[1].max_actors, 4u);
}

// ------------------------------------------------------------ malformed files

struct BadCase {
  const char* name;
  const char* yaml;
  const char* path;  // exact key path of the expected error
  int line;
  int column;           // 0: not checked
  const char* message;  // a substring of the message
};

std::ostream& operator<<(std::ostream& os, const BadCase& c) {
  return os << c.name;
}

/// Each error with its source line and a caret under the reported column.
std::string errors_with_carets(const LoadResult& result, std::string_view yaml) {
  std::vector<std::string_view> lines;
  for (std::size_t begin = 0; begin <= yaml.size();) {
    const auto end = std::min(yaml.find('\n', begin), yaml.size());
    lines.push_back(yaml.substr(begin, end - begin));
    begin = end + 1;
  }
  std::string out;
  for (const auto& error : result.errors) {
    out += error.to_string() + "\n";
    if (error.line > 0 && static_cast<std::size_t>(error.line) <= lines.size()) {
      out += "  " + std::string(lines[error.line - 1]) + "\n";
      out += "  " + std::string(std::max(error.column - 1, 0), ' ') + "^\n";
    }
  }
  return out;
}

// A valid troupe prefix (lines 1-3) the cases add to.
#define TROUPE "troupes:\n  - name: t\n    handler: {kind: builtin, name: echo}\n"

const BadCase kBadCases[] = {
    {"SyntaxError", "troupes: [a, b\nserver: {}\n", "", 2, 0, "YAML syntax error"},
    {"EmptyFile", "# nothing here\n", "", 0, 0, "the file is empty"},
    {"TopLevelList", "- a\n- b\n", "", 1, 1, "top level must be a map"},
    {"UnknownTopLevelKeyWithSuggestion", TROUPE "troupe: []\n", "troupe", 4, 1,
     "unknown key 'troupe'; did you mean 'troupes'?"},
    {"UnknownTroupeKeyWithSuggestion", TROUPE "    timout: 5s\n", "troupes[0].timout", 4, 5,
     "did you mean 'timeout'?"},
    {"UnknownKeyFarFromAnyWithList", "logging: {colour: red}\n" TROUPE, "logging.colour", 1, 11,
     "unknown key 'colour'; expected one of level or format"},
    {"MissingTroupes", "logging: {level: info}\n", "troupes", 1, 1, "define at least one troupe"},
    {"TroupesIsAMap", "troupes: {name: t}\n", "troupes", 1, 10, "expected a list, got a map"},
    {"EmptyTroupeList", "troupes: []\n", "troupes", 1, 10, "no troupes defined"},
    {"DurationWord", TROUPE "    timeout: fast\n", "troupes[0].timeout", 4, 14,
     R"(expected a duration like "250ms", "30s" or "5m" (units ns, us, ms, s, m, h), got "fast")"},
    {"DurationNegative", TROUPE "    timeout: -5s\n", "troupes[0].timeout", 4, 14,
     "cannot be negative"},
    {"DurationWithoutUnit", TROUPE "    timeout: 5\n", "troupes[0].timeout", 4, 14,
     R"("5" has no unit; write e.g. "5s")"},
    {"DurationParsecs", TROUPE "    timeout: 10 parsecs\n", "troupes[0].timeout", 4, 14,
     R"(got "10 parsecs")"},
    {"DurationZeroWhereMustBePositive", TROUPE "    timeout: 0s\n", "troupes[0].timeout", 4, 14,
     "must be longer than 0s"},
    {"DurationGivenAMap", TROUPE "    retry: {max_backoff: {s: 1}}\n",
     "troupes[0].retry.max_backoff", 4, 26, "got a map"},
    {"SizeWithDecimalUnit", "server:\n  limits:\n    max_payload: 4MB\n" TROUPE,
     "server.limits.max_payload", 3, 18, "unknown size unit \"MB\""},
    {"SizeNegative", "server:\n  limits: {max_metadata_bytes: -1}\n" TROUPE,
     "server.limits.max_metadata_bytes", 2, 32, "cannot be negative"},
    {"SizeTooLarge", "server: {limits: {max_payload: 2GiB}}\n" TROUPE, "server.limits.max_payload",
     1, 32, "must be between 1B and 1GiB"},
    {"NoWaitersPerJob", "server: {limits: {max_waiters_per_job: 0}}\n" TROUPE,
     "server.limits.max_waiters_per_job", 1, 40, "between 1 and 100000"},
    {"ZeroConcurrentStreams", "server: {grpc: {max_concurrent_streams: 0}}\n" TROUPE,
     "server.grpc.max_concurrent_streams", 1, 41, "between 1 and 1000000"},
    {"ZeroKeepalive", "server: {grpc: {keepalive_time: 0s}}\n" TROUPE, "server.grpc.keepalive_time",
     1, 33, "must be longer than 0s"},
    {"TinyGrpcMemory", "server: {grpc: {max_memory: 1MiB}}\n" TROUPE, "server.grpc.max_memory", 1,
     29, "must be between 64MiB"},
    {"PortTooLarge", "server:\n  grpc_address: 127.0.0.1:70000\n" TROUPE, "server.grpc_address", 2,
     17, "is not a number from 0 to 65535"},
    {"BadIpv4", "server:\n  grpc_address: 300.1.1.1:80\n" TROUPE, "server.grpc_address", 2, 17,
     "not a valid IPv4 address"},
    {"Ipv6WithoutBrackets", "server:\n  metrics_address: \"::1:9464\"\n" TROUPE,
     "server.metrics_address", 2, 20, "IPv6 addresses need brackets"},
    {"AddressWithoutPort", "server:\n  grpc_address: localhost\n" TROUPE, "server.grpc_address", 2,
     17, "missing port"},
    {"SameGrpcAndMetricsAddress",
     "server:\n  grpc_address: 127.0.0.1:7000\n  metrics_address: 127.0.0.1:7000\n" TROUPE,
     "server.metrics_address", 3, 20, "same as grpc_address"},
    {"GrpcOffLoopbackWithoutTlsOrInsecure", "server:\n  grpc_address: 0.0.0.0:50051\n" TROUPE,
     "server.grpc_address", 2, 17,
     "0.0.0.0:50051 is reachable from other machines, and without TLS and authentication"},
    {"GrpcOnAnyIpv6WithoutTlsOrInsecure", "server:\n  grpc_address: \"[::]:50051\"\n" TROUPE,
     "server.grpc_address", 2, 17, "or set server.insecure: true to accept that"},
    {"GrpcOnHostNameWithInsecureFalse",
     "server:\n  grpc_address: worker-1.example.com:1\n  insecure: false\n" TROUPE,
     "server.grpc_address", 2, 17, "configure server.tls and auth"},
    {"MetricsOffLoopbackWithoutInsecure", "server:\n  metrics_address: 10.1.2.3:9464\n" TROUPE,
     "server.metrics_address", 2, 20,
     "10.1.2.3:9464 is reachable from other machines without TLS and basic auth"},
    {"TlsWithoutKeyFile", "server:\n  tls: {refresh_interval: 5s}\n" TROUPE, "server.tls.cert_file",
     2, 8, "TLS needs both cert_file (the server's certificate chain) and key_file"},
    {"TooManyThreads", "server: {threads: 5000}\n" TROUPE, "server.threads", 1, 19,
     "must be between 0 and 1024, got 5000"},
    {"QuotedNumber", TROUPE "    mailbox: \"1024\"\n", "troupes[0].mailbox", 4, 14,
     "expected a whole number, got the quoted string \"1024\"; remove the quotes"},
    {"WordForNumber", TROUPE "    mailbox: lots\n", "troupes[0].mailbox", 4, 14,
     "expected a whole number, got \"lots\""},
    {"NegativeMailbox", TROUPE "    mailbox: -1\n", "troupes[0].mailbox", 4, 14,
     "must be between 1 and 1000000, got -1"},
    {"MapWhereListExpected", TROUPE "    circuit_breaker:\n      record: {retryable: true}\n",
     "troupes[0].circuit_breaker.record", 5, 15, "expected a list, got a map"},
    {"ListWhereMapExpected", TROUPE "    retry: [1, 2]\n", "troupes[0].retry", 4, 12,
     "expected a map (key: value), got a list"},
    {"YesIsNotABoolean", TROUPE "    retry: {jitter: yes}\n", "troupes[0].retry.jitter", 4, 21,
     "expected true or false, got \"yes\""},
    {"RateAboveOne", TROUPE "    circuit_breaker: {failure_rate_threshold: 1.5}\n",
     "troupes[0].circuit_breaker.failure_rate_threshold", 4, 47,
     "must be greater than 0 and at most 1, got 1.5"},
    {"RateZero", TROUPE "    circuit_breaker: {slow_call_rate_threshold: 0}\n",
     "troupes[0].circuit_breaker.slow_call_rate_threshold", 4, 49, "must be greater than 0"},
    {"MultiplierBelowOne", TROUPE "    retry: {multiplier: 0.5}\n", "troupes[0].retry.multiplier",
     4, 25, "must be at least 1 and at most 100, got 0.5"},
    {"ScaleStepZero", TROUPE "    autoscale: {scale_up_step: 0}\n",
     "troupes[0].autoscale.scale_up_step", 4, 32, "must be between 1 and 4096"},
    {"MinAboveMax", TROUPE "    actors: {min: 5, max: 2}\n", "troupes[0].actors.min", 4, 19,
     "min (5) is greater than max (2)"},
    {"MinAboveDefaultMax", TROUPE "    actors: {min: 6}\n", "troupes[0].actors.min", 4, 19,
     "min (6) is greater than max (4, the default)"},
    {"InitialAboveMax", TROUPE "    actors: {min: 1, initial: 9, max: 8}\n",
     "troupes[0].actors.initial", 4, 31, "initial (9) is greater than max (8)"},
    {"InitialBelowMin", TROUPE "    actors: {min: 3, initial: 2, max: 8}\n",
     "troupes[0].actors.initial", 4, 31, "initial (2) is less than min (3)"},
    {"FixedModeWithMin", TROUPE "    mode: fixed\n    actors: {min: 1, max: 3}\n",
     "troupes[0].actors.min", 5, 19, "mode fixed runs exactly 'max' actors; remove 'min'"},
    {"PlainActorCountInDynamicMode", TROUPE "    actors: 3\n", "troupes[0].actors", 4, 13,
     "a single actor count needs mode: fixed"},
    {"AutoscaleInFixedMode", TROUPE "    mode: fixed\n    autoscale: {interval: 1s}\n",
     "troupes[0].autoscale", 5, 16, "mode fixed never scales"},
    {"MaxBackoffBelowInitial", TROUPE "    retry: {initial_backoff: 5s, max_backoff: 1s}\n",
     "troupes[0].retry.max_backoff", 4, 47,
     "max_backoff (1s) is shorter than initial_backoff (5s)"},
    {"InitialBackoffAboveDefaultMax", TROUPE "    retry: {initial_backoff: 1m}\n",
     "troupes[0].retry.initial_backoff", 4, 30,
     "max_backoff (30s, the default) is shorter than initial_backoff (1m)"},
    {"SupervisorBackoffMaxBelowInitial",
     TROUPE "    supervisor:\n      backoff_initial: 2s\n      backoff_max: 1s\n",
     "troupes[0].supervisor.backoff_max", 6, 20, "backoff_max (1s) is shorter than"},
    {"LowThresholdNotBelowHigh", TROUPE "    autoscale: {high_threshold: 2, low_threshold: 2}\n",
     "troupes[0].autoscale.low_threshold", 4, 51, "must be below high_threshold (2)"},
    {"MinimumCallsAboveWindow", TROUPE "    circuit_breaker: {window_size: 5}\n",
     "troupes[0].circuit_breaker.window_size", 4, 36,
     "minimum_calls (10, the default) is larger than window_size (5)"},
    {"MaxOpenTimeoutBelowOpenTimeout", TROUPE "    circuit_breaker: {open_timeout: 10m}\n",
     "troupes[0].circuit_breaker.open_timeout", 4, 37,
     "max_open_timeout (5m, the default) is shorter than open_timeout (10m)"},
    {"MaxTimeoutBelowTimeout", TROUPE "    timeout: 1m\n    max_timeout: 10s\n",
     "troupes[0].max_timeout", 5, 18, "max_timeout (10s) is shorter than timeout (1m)"},
    {"MaxTimeoutBelowDefaultTimeout", TROUPE "    max_timeout: 10s\n", "troupes[0].max_timeout", 4,
     18, "max_timeout (10s) is shorter than timeout (30s, the default)"},
    {"MaxTimeoutZero", TROUPE "    max_timeout: 0s\n", "troupes[0].max_timeout", 4, 18,
     "must be longer than 0s, got \"0s\""},
    {"EmptyRecordList", TROUPE "    circuit_breaker: {record: []}\n",
     "troupes[0].circuit_breaker.record", 4, 31, "the breaker can never open"},
    {"UnknownFailureClass", TROUPE "    retry: {non_retryable: [timeout, crashed]}\n",
     "troupes[0].retry.non_retryable[1]", 4, 38, "(did you mean \"crash\"?)"},
    {"RepeatedFailureClass", TROUPE "    retry: {non_retryable: [timeout, timeout]}\n",
     "troupes[0].retry.non_retryable[1]", 4, 38, "listed twice"},
    {"RateLimitWithoutRate", TROUPE "    rate_limit: {burst: 5}\n",
     "troupes[0].rate_limit.per_second", 4, 17, "missing; set the dispatches allowed per second"},
    {"DuplicateTroupeName", TROUPE "  - name: t\n    handler: {kind: builtin, name: noop}\n",
     "troupes[1].name", 4, 11,
     "duplicate troupe name \"t\": troupes[0].name (line 2) already uses it"},
    {"MissingName", "troupes:\n  - handler: {kind: builtin, name: echo}\n", "troupes[0].name", 2, 5,
     "missing; every troupe needs a name"},
    {"BadName", "troupes:\n  - name: my troupe\n    handler: {kind: builtin, name: echo}\n",
     "troupes[0].name", 2, 11, "is not a valid troupe name"},
    {"MissingHandler", "troupes:\n  - name: t\n", "troupes[0].handler", 2, 5,
     "missing; every troupe needs a handler"},
    {"MissingHandlerKind", "troupes:\n  - name: t\n    handler: {name: echo}\n",
     "troupes[0].handler.kind", 3, 14, "missing; set kind: builtin, exec or http"},
    {"UnknownHandlerKind", "troupes:\n  - name: t\n    handler: {kind: lambda}\n",
     "troupes[0].handler.kind", 3, 21,
     "unknown handler kind \"lambda\"; expected one of the registered kinds: builtin, exec or "
     "http"},
    {"HandlerKeyOfAnotherKind",
     "troupes:\n  - name: t\n    handler: {kind: builtin, name: echo, argv: [ls]}\n",
     "troupes[0].handler.argv", 3, 42, "'argv' belongs to handler kind 'exec', not 'builtin'"},
    {"BuiltinKeyForAnotherName",
     "troupes:\n  - name: t\n    handler: {kind: builtin, name: echo, sleep: 1s}\n",
     "troupes[0].handler.sleep", 3, 49, "'sleep' applies only to name: sleep, not name: echo"},
    {"UnknownBuiltinName", "troupes:\n  - name: t\n    handler: {kind: builtin, name: ecko}\n",
     "troupes[0].handler.name", 3, 36, "(did you mean \"echo\"?)"},
    {"ExecWithoutArgv", "troupes:\n  - name: t\n    handler: {kind: exec}\n",
     "troupes[0].handler.argv", 3, 14, "missing; an exec handler needs the program"},
    {"ExecEmptyArgv", "troupes:\n  - name: t\n    handler: {kind: exec, argv: []}\n",
     "troupes[0].handler.argv", 3, 33, "must name the program to run"},
    {"ExecNullArgv", "troupes:\n  - name: t\n    handler:\n      kind: exec\n      argv:\n",
     "troupes[0].handler.argv", 5, 7, "must name the program to run"},
    {"TwoDocuments", TROUPE "---\n" TROUPE, "", 5, 1, "holds 2 YAML documents"},
    {"ExecBadEnvName",
     "troupes:\n  - name: t\n    handler:\n      kind: exec\n      argv: [cat]\n      env: {1BAD: "
     "x}\n",
     "troupes[0].handler.env.1BAD", 6, 13, "is not an environment variable name"},
    {"ExecExitCodeOutOfRange",
     "troupes:\n  - name: t\n    handler:\n      kind: exec\n      argv: [cat]\n      "
     "non_retryable_exit_codes: [2, 256]\n",
     "troupes[0].handler.non_retryable_exit_codes[1]", 6, 37, "must be between 1 and 255, got 256"},
    {"HttpFtpUrl", "troupes:\n  - name: t\n    handler: {kind: http, url: \"ftp://x/y\"}\n",
     "troupes[0].handler.url", 3, 32, "must start with http:// or https://"},
    {"HttpUrlWithoutHost",
     "troupes:\n  - name: t\n    handler: {kind: http, url: \"http:///jobs\"}\n",
     "troupes[0].handler.url", 3, 32, "has no host"},
    {"HttpStatusOutOfRange",
     "troupes:\n  - name: t\n    handler: {kind: http, url: \"http://h/\", retryable_statuses: "
     "[600]}\n",
     "troupes[0].handler.retryable_statuses[0]", 3, 66, "must be between 100 and 599"},
    {"DuplicateKey", TROUPE "    mailbox: 1\n    mailbox: 2\n", "troupes[0].mailbox", 5, 5,
     "'mailbox' is given twice (first on line 4)"},
    {"UnknownLogLevel", "logging: {level: verbose}\n" TROUPE, "logging.level", 1, 18,
     "expected one of trace, debug, info, warn, error, critical or off"},
    {"DispatchWithDash", TROUPE "    dispatch: least-loaded\n", "troupes[0].dispatch", 4, 15,
     "(did you mean \"least_loaded\"?)"},
};

class BadConfig : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadConfig, ReportsTheKeyPathAndPlace) {
  const BadCase& c = GetParam();
  const LoadResult result = load_string(c.yaml, "bad.yaml");
  EXPECT_FALSE(result.config.has_value());
  ASSERT_FALSE(result.errors.empty());
  bool found = false;
  for (const ConfigError& error : result.errors) {
    EXPECT_EQ(error.file, "bad.yaml");
    if (error.path == c.path && error.line == c.line &&
        (c.column == 0 || error.column == c.column) &&
        error.message.find(c.message) != std::string::npos) {
      found = true;
    }
  }
  EXPECT_TRUE(found) << "expected " << c.path << " at " << c.line << ":" << c.column << " with \""
                     << c.message << "\"; got:\n"
                     << errors_with_carets(result, c.yaml);
  // Each case has one mistake, so it reports one error.
  EXPECT_EQ(result.errors.size(), 1u) << all_errors(result);
}

INSTANTIATE_TEST_SUITE_P(Cases, BadConfig, ::testing::ValuesIn(kBadCases),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(LoadString, ReportsEveryErrorInAFileInFileOrder) {
  const LoadResult result = load_string(R"(server:
  threads: -1
  grpc_adress: 127.0.0.1:1
logging: {level: loud}
troupes:
  - name: a
    timeout: 5
    handler: {kind: builtin, name: echo}
  - name: a
    actors: {min: 3, max: 2}
    handler: {kind: exec}
  - handler: {kind: http, url: "http://x/", method: YEET}
)",
                                        "multi.yaml");
  EXPECT_FALSE(result.config.has_value());
  std::vector<std::string> lines;
  for (const auto& error : result.errors) lines.push_back(error.to_string());
  const std::vector<std::string> expected = {
      "multi.yaml:2:12: server.threads: must be between 0 and 1024, got -1",
      "multi.yaml:3:3: server.grpc_adress: unknown key 'grpc_adress'; did you mean "
      "'grpc_address'?",
      "multi.yaml:4:18: logging.level: unknown value \"loud\"; expected one of trace, debug, "
      "info, warn, error, critical or off",
      "multi.yaml:7:14: troupes[0].timeout: \"5\" has no unit; write e.g. \"5s\" or \"5ms\" "
      "(units ns, us, ms, s, m, h)",
      "multi.yaml:9:11: troupes[1].name: duplicate troupe name \"a\": troupes[0].name (line 6) "
      "already uses it; names must be unique",
      "multi.yaml:10:19: troupes[1].actors.min: min (3) is greater than max (2)",
      "multi.yaml:11:14: troupes[1].handler.argv: missing; an exec handler needs the program "
      "and its arguments, e.g. argv: [\"tr\", \"a-z\", \"A-Z\"] (no shell is involved)",
      "multi.yaml:12:5: troupes[2].name: missing; every troupe needs a name, e.g. name: echo",
      "multi.yaml:12:53: troupes[2].handler.method: unknown value \"YEET\"; expected one of "
      "POST, PUT, PATCH, GET or DELETE",
  };
  EXPECT_EQ(lines, expected);
}

TEST(ConfigError, FormatsWithAndWithoutAPlace) {
  EXPECT_EQ((ConfigError{"f.yaml", 3, 7, "a.b", "bad"}).to_string(), "f.yaml:3:7: a.b: bad");
  EXPECT_EQ((ConfigError{"f.yaml", 0, 0, "", "cannot read"}).to_string(), "f.yaml: cannot read");
}

// ------------------------------------------------------------ files

TEST(LoadFile, NamesTheFileItCannotRead) {
  const LoadResult missing = load_file("/nonexistent/trouped.yaml");
  EXPECT_FALSE(missing.config.has_value());
  ASSERT_EQ(missing.errors.size(), 1u);
  EXPECT_EQ(missing.errors[0].to_string(),
            "/nonexistent/trouped.yaml: cannot read config file: No such file or directory");
  const LoadResult directory = load_file("/");
  ASSERT_EQ(directory.errors.size(), 1u);
  EXPECT_NE(directory.errors[0].message.find("directory"), std::string::npos);
}

TEST(LoadFile, ReportsErrorsUnderTheFilesPath) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("troupe_config_test_" +
                     std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + ".yaml");
  {
    std::ofstream out(path);
    out << "troupes:\n  - name: x\n    handler: {kind: builtin, name: echo}\n    mailbox: 0\n";
  }
  const LoadResult result = load_file(path.string());
  std::filesystem::remove(path);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].to_string(),
            path.string() + ":4:14: troupes[0].mailbox: must be between 1 and 1000000, got 0");
}

// ------------------------------------------------------------ store

TEST(LoadString, StoreDefaultsToSqliteWithSyncFull) {
  const Config config = load_valid(R"(troupes:
  - name: echo
    handler: {kind: builtin, name: echo}
)");
  EXPECT_EQ(config.store.kind, StoreOptions::Kind::kSqlite);
  EXPECT_TRUE(config.store.sync_full);
  EXPECT_EQ(config.store.max_size, 0u);
  EXPECT_EQ(config.store.path, "");  // resolved by load_file
}

TEST(LoadString, StoreSectionSetsEveryField) {
  const Config sqlite =
      load_valid(R"(store: {kind: sqlite, path: /srv/jobs.db, sync: normal, max_size: 1GiB}
troupes:
  - name: echo
    handler: {kind: builtin, name: echo}
)");
  EXPECT_EQ(sqlite.store.kind, StoreOptions::Kind::kSqlite);
  EXPECT_EQ(sqlite.store.path, "/srv/jobs.db");
  EXPECT_FALSE(sqlite.store.sync_full);
  EXPECT_EQ(sqlite.store.max_size, std::size_t{1} << 30);
  const Config memory = load_valid(R"(store: {kind: memory}
troupes:
  - name: echo
    handler: {kind: builtin, name: echo}
)");
  EXPECT_EQ(memory.store.kind, StoreOptions::Kind::kMemory);
}

TEST(LoadString, StoreMistakesAreReportedAtTheirKeys) {
  const LoadResult result = load_string(R"(store: {kind: postgre, sync: always, path: ""}
troupes:
  - name: echo
    handler: {kind: builtin, name: echo}
)",
                                        "s.yaml");
  std::vector<std::string> lines;
  for (const auto& error : result.errors) lines.push_back(error.to_string());
  ASSERT_EQ(lines.size(), 3u) << all_errors(result);
  EXPECT_NE(lines[0].find("store.kind: unknown value \"postgre\""), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("did you mean \"postgres\""), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("store.sync: unknown value \"always\""), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("store.path: empty"), std::string::npos) << lines[2];

  const LoadResult memory = load_string(R"(store: {kind: memory, path: /srv/jobs.db}
troupes:
  - name: echo
    handler: {kind: builtin, name: echo}
)",
                                        "m.yaml");
  ASSERT_EQ(memory.errors.size(), 1u);
  EXPECT_NE(memory.errors[0].to_string().find("store.path: only for kind sqlite"),
            std::string::npos)
      << all_errors(memory);
}

TEST(LoadString, PostgresStoreTakesTheSpecDefaults) {
  const Config config = load_valid(R"(store: {kind: postgres}
troupes:
  - name: echo
    handler: {kind: builtin, name: echo}
)");
  EXPECT_EQ(config.store.kind, StoreOptions::Kind::kPostgres);
  // An empty DSN leaves the connection to libpq's defaults and PG* variables.
  EXPECT_EQ(config.store.postgres.dsn, "");
  EXPECT_EQ(config.store.postgres.replica, "");
  EXPECT_EQ(config.store.postgres.lease, Duration(15s));
  EXPECT_EQ(config.store.postgres.heartbeat, Duration(5s));
  EXPECT_EQ(config.store.postgres.poll, Duration(1s));
  EXPECT_EQ(config.store.postgres.claim_batch, 100u);
}

TEST(LoadString, PostgresStoreSetsEveryField) {
  const Config config = load_valid(R"(store:
  kind: postgres
  dsn: "host=db.internal dbname=troupe user=troupe"
  replica: worker-7
  lease: 30s
  heartbeat: 10s
  poll: 250ms
  claim_batch: 20
troupes:
  - name: echo
    handler: {kind: builtin, name: echo}
)");
  const PostgresStoreOptions& pg = config.store.postgres;
  EXPECT_EQ(pg.dsn, "host=db.internal dbname=troupe user=troupe");
  EXPECT_EQ(pg.replica, "worker-7");
  EXPECT_EQ(pg.lease, Duration(30s));
  EXPECT_EQ(pg.heartbeat, Duration(10s));  // exactly lease / 3 is allowed
  EXPECT_EQ(pg.poll, Duration(250ms));
  EXPECT_EQ(pg.claim_batch, 20u);
  // A reload compares the whole section: another DSN is another store.
  Config other = config;
  other.store.postgres.dsn = "host=elsewhere";
  EXPECT_NE(other.store, config.store);
}

TEST(LoadString, PostgresStoreRefusesSqliteKeysAndSqliteRefusesPostgresKeys) {
  const LoadResult postgres = load_string(R"(store:
  kind: postgres
  path: /srv/jobs.db
  sync: normal
  max_size: 1GiB
troupes:
  - name: echo
    handler: {kind: builtin, name: echo}
)",
                                          "p.yaml");
  ASSERT_EQ(postgres.errors.size(), 3u) << all_errors(postgres);
  EXPECT_EQ(postgres.errors[0].to_string().rfind("p.yaml:3:9: store.path: only for kind sqlite; "
                                                 "kind postgres keeps jobs in the database",
                                                 0),
            0u)
      << all_errors(postgres);
  EXPECT_EQ(postgres.errors[1].path, "store.sync");
  EXPECT_EQ(postgres.errors[2].path, "store.max_size");

  for (const char* kind : {"sqlite", "memory"}) {
    const LoadResult other = load_string(std::string("store:\n  kind: ") + kind + R"(
  dsn: "host=db"
  lease: 30s
troupes:
  - name: echo
    handler: {kind: builtin, name: echo}
)",
                                         "o.yaml");
    ASSERT_EQ(other.errors.size(), 2u) << all_errors(other);
    EXPECT_EQ(other.errors[0].to_string().rfind("o.yaml:3:8: store.dsn: only for kind postgres", 0),
              0u)
        << all_errors(other);
    EXPECT_EQ(other.errors[1].path, "store.lease");
  }
}

TEST(LoadString, ClusterOptionsOfATroupeNeedThePostgresStore) {
  const Config config = load_valid(R"(store: {kind: postgres}
troupes:
  - name: single
    cluster: {singleton: true}
    handler: {kind: builtin, name: echo}
  - name: capped
    cluster: {max_concurrency: 10}
    handler: {kind: builtin, name: echo}
  - name: plain
    handler: {kind: builtin, name: echo}
)");
  ASSERT_EQ(config.troupes.size(), 3u);
  EXPECT_TRUE(config.troupes[0].cluster.singleton);
  EXPECT_EQ(config.troupes[0].cluster.max_concurrency, 0u);
  EXPECT_FALSE(config.troupes[1].cluster.singleton);
  EXPECT_EQ(config.troupes[1].cluster.max_concurrency, 10u);
  EXPECT_FALSE(config.troupes[2].cluster.any());

  for (const char* kind : {"sqlite", "memory"}) {
    const LoadResult other = load_string(std::string("store: {kind: ") + kind + R"(}
troupes:
  - name: single
    cluster: {singleton: true}
    handler: {kind: builtin, name: echo}
)",
                                         "c.yaml");
    ASSERT_EQ(other.errors.size(), 1u) << all_errors(other);
    EXPECT_EQ(other.errors[0].path, "troupes[0].cluster") << all_errors(other);
    EXPECT_NE(other.errors[0].message.find("only with store kind postgres"), std::string::npos)
        << all_errors(other);
  }
  const LoadResult zero = load_string(R"(store: {kind: postgres}
troupes:
  - name: capped
    cluster: {max_concurrency: 0, leader: true}
    handler: {kind: builtin, name: echo}
)",
                                      "z.yaml");
  ASSERT_EQ(zero.errors.size(), 2u) << all_errors(zero);
  EXPECT_EQ(zero.errors[0].path, "troupes[0].cluster.max_concurrency") << all_errors(zero);
  EXPECT_EQ(zero.errors[1].path, "troupes[0].cluster.leader") << all_errors(zero);
}

TEST(LoadString, AClusterRateLimitHasADefaultBurstOfTwoBlocks) {
  const LoadResult loaded = load_string(R"(store: {kind: postgres}
troupes:
  - name: rated
    cluster: {rate_limit: {per_second: 200}}
    handler: {kind: builtin, name: echo}
  - name: slow
    cluster: {rate_limit: {per_second: 0.5}}
    handler: {kind: builtin, name: echo}
  - name: bursty
    rate_limit: {per_second: 50}
    cluster: {rate_limit: {per_second: 1000, burst: 5000}}
    handler: {kind: builtin, name: echo}
)",
                                        "r.yaml");
  ASSERT_TRUE(loaded.errors.empty()) << all_errors(loaded);
  const auto& t = loaded.config->troupes;
  ASSERT_EQ(t.size(), 3u);
  EXPECT_TRUE(t[0].cluster.any());
  EXPECT_TRUE(t[0].cluster.rate_limit.enabled);
  EXPECT_EQ(t[0].cluster.rate_limit.per_second, 200.0);
  EXPECT_EQ(t[0].cluster.rate_limit.burst, 40u);  // blocks of 20 (a tenth of a second)
  EXPECT_FALSE(t[0].rate_limit.enabled);          // the per-replica limit is separate
  EXPECT_EQ(t[1].cluster.rate_limit.burst, 2u);   // blocks of one token
  EXPECT_EQ(t[2].cluster.rate_limit.burst, 5000u);
  EXPECT_EQ(t[2].rate_limit.per_second, 50.0);

  const LoadResult missing = load_string(R"(store: {kind: postgres}
troupes:
  - name: rated
    cluster: {rate_limit: {burst: 3}}
    handler: {kind: builtin, name: echo}
)",
                                         "m.yaml");
  ASSERT_EQ(missing.errors.size(), 1u) << all_errors(missing);
  EXPECT_EQ(missing.errors[0].path, "troupes[0].cluster.rate_limit.per_second")
      << all_errors(missing);
}

TEST(LoadString, PostgresHeartbeatMustBeAtMostAThirdOfTheLease) {
  const LoadResult given = load_string(R"(store:
  kind: postgres
  lease: 10s
  heartbeat: 4s
troupes:
  - name: echo
    handler: {kind: builtin, name: echo}
)",
                                       "h.yaml");
  ASSERT_EQ(given.errors.size(), 1u) << all_errors(given);
  EXPECT_EQ(given.errors[0].to_string(),
            "h.yaml:4:14: store.heartbeat: heartbeat (4s) is more than a third of lease (10s); a "
            "replica renews its lease at least three times per lease, so that one late heartbeat "
            "does not hand its jobs to other replicas: lower heartbeat or raise lease");
  // A lease shorter than three default heartbeats is reported at the lease.
  const LoadResult by_default = load_string(R"(store: {kind: postgres, lease: 12s}
troupes:
  - name: echo
    handler: {kind: builtin, name: echo}
)",
                                            "d.yaml");
  ASSERT_EQ(by_default.errors.size(), 1u) << all_errors(by_default);
  EXPECT_EQ(by_default.errors[0].path, "store.lease");
  EXPECT_NE(by_default.errors[0].message.find("heartbeat (5s, the default)"), std::string::npos)
      << all_errors(by_default);
  // Non-positive durations and batches are refused at their keys.
  const LoadResult ranges = load_string(R"(store: {kind: postgres, poll: 0s, claim_batch: 0}
troupes:
  - name: echo
    handler: {kind: builtin, name: echo}
)",
                                        "r.yaml");
  ASSERT_EQ(ranges.errors.size(), 2u) << all_errors(ranges);
  EXPECT_EQ(ranges.errors[0].path, "store.poll");
  EXPECT_EQ(ranges.errors[1].path, "store.claim_batch");
}

TEST(LoadResultErrorAt, PlacesAnErrorAtTheDsnOfTheFile) {
  const LoadResult result = load_string(R"(troupes:
  - name: echo
    handler: {kind: builtin, name: echo}
store:
  kind: postgres
  dsn: "host=db.internal"
)",
                                        "c.yaml");
  ASSERT_TRUE(result.config) << all_errors(result);
  EXPECT_EQ(result.error_at("store.dsn", "cannot connect").to_string(),
            "c.yaml:6:8: store.dsn: cannot connect");
  // A key the file does not give is named without a place.
  EXPECT_EQ(result.error_at("store.replica", "x").to_string(), "c.yaml: store.replica: x");
}

TEST(ResolveStorePath, FollowsTheDefaultRule) {
  StoreOptions store;
  EXPECT_EQ(resolve_store_path(store, "/etc/troupe/trouped.yaml", nullptr),
            "/etc/troupe/trouped-data/jobs.db");
  EXPECT_EQ(resolve_store_path(store, "/etc/troupe/trouped.yaml", ""),
            "/etc/troupe/trouped-data/jobs.db");
  EXPECT_EQ(resolve_store_path(store, "/etc/troupe/trouped.yaml", "/var/lib/trouped"),
            "/var/lib/trouped/jobs.db");
  EXPECT_EQ(resolve_store_path(store, "/etc/troupe/trouped.yaml", "/var/lib/a:/var/lib/b"),
            "/var/lib/a/jobs.db");
  store.path = "data/../jobs.db";
  EXPECT_EQ(resolve_store_path(store, "/etc/troupe/trouped.yaml", "/var/lib/trouped"),
            "/etc/troupe/jobs.db");
  store.path = "/srv/jobs.db";
  EXPECT_EQ(resolve_store_path(store, "/etc/troupe/trouped.yaml", nullptr), "/srv/jobs.db");
  store.kind = StoreOptions::Kind::kMemory;
  EXPECT_EQ(resolve_store_path(store, "/etc/troupe/trouped.yaml", nullptr), "");
  // A relative config path is taken from the working directory.
  store = StoreOptions{};
  EXPECT_EQ(resolve_store_path(store, "trouped.yaml", nullptr),
            (std::filesystem::current_path() / "trouped-data" / "jobs.db").string());
}

TEST(LoadFile, ResolvesTheStorePathNextToTheConfig) {
  const auto dir =
      std::filesystem::temp_directory_path() /
      ("troupe_store_path_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream out(dir / "t.yaml");
    out << "troupes:\n  - name: x\n    handler: {kind: builtin, name: echo}\n";
  }
  const LoadResult result = load_file((dir / "t.yaml").string());
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(result.config.has_value()) << all_errors(result);
  const char* state = std::getenv("STATE_DIRECTORY");
  if (state == nullptr || *state == '\0') {
    EXPECT_EQ(result.config->store.path, (dir / "trouped-data" / "jobs.db").string());
  }
}

TEST(LoadString, ListenersDefaultToLoopback) {
  const Config config = load_valid(TROUPE);
  EXPECT_EQ(config.server.grpc_address, "127.0.0.1:50051");
  EXPECT_EQ(config.server.metrics_address, "127.0.0.1:9464");
  EXPECT_FALSE(config.server.insecure);
}

TEST(LoadString, InsecureTrueAllowsListeningOffLoopbackWithoutTls) {
  const Config config = load_valid(
      "server:\n  grpc_address: 0.0.0.0:50051\n  metrics_address: \"[::]:9464\"\n"
      "  insecure: true\n" TROUPE);
  EXPECT_TRUE(config.server.insecure);
  EXPECT_EQ(config.server.grpc_address, "0.0.0.0:50051");
}

/// True when `result` has an error at `path` whose message contains `text`.
bool has_error(const LoadResult& result, std::string_view path, std::string_view text) {
  return std::any_of(result.errors.begin(), result.errors.end(), [&](const ConfigError& e) {
    return e.path == path && e.message.find(text) != std::string::npos;
  });
}

TEST(LoadString, TlsFilesMustBeReadablePemAndRefreshAtLeastOneSecond) {
  const auto result = load_string(
      "server:\n  tls:\n    cert_file: /nonexistent/troupe.crt\n    key_file: /dev/null\n"
      "    refresh_interval: 500ms\n" TROUPE);
  EXPECT_FALSE(result.config);
  EXPECT_TRUE(has_error(result, "server.tls.cert_file",
                        "cannot read /nonexistent/troupe.crt: No such file or directory"))
      << all_errors(result);
  EXPECT_TRUE(has_error(result, "server.tls.key_file", "/dev/null holds no PEM block"))
      << all_errors(result);
  EXPECT_TRUE(has_error(result, "server.tls.refresh_interval", "500ms")) << all_errors(result);
}

TEST(LoadString, AuthIdentitiesKeepTokenHashesAndPermissionsByPattern) {
  const Config config = load_valid(
      "auth:\n  identities:\n    - name: ci\n      token_sha256: "
      "2BB80D537B1DA3E38BD30361AA855686BDE0EACD7162FEF6A25FE97BF527A25B\n"
      "      permissions: {\"batch-*\": [submit, read], \"*\": [read]}\n"
      "    - name: ops\n      token_sha256: "
      "0000000000000000000000000000000000000000000000000000000000000001\n"
      "      permissions: {\"*\": [\"*\"]}\n" TROUPE);
  ASSERT_EQ(config.auth.identities.size(), 2u);
  const Identity& ci = config.auth.identities[0];
  EXPECT_EQ(ci.name, "ci");
  ASSERT_TRUE(ci.token_sha256);
  EXPECT_EQ(to_hex(*ci.token_sha256), to_hex(sha256("secret")));
  ASSERT_EQ(ci.grants.size(), 2u);
  EXPECT_EQ(ci.grants[0].troupes, "batch-*");
  EXPECT_EQ(ci.grants[0].permissions, static_cast<Permissions>(Permission::kSubmit) |
                                          static_cast<Permissions>(Permission::kRead));
  EXPECT_EQ(config.auth.identities[1].grants[0].permissions, kAllPermissions);
}

TEST(LoadString, AuthMistakesAreReportedAtTheirKeys) {
  const auto result = load_string(
      "auth:\n  identities:\n"
      "    - name: a\n      token_sha256: secret\n"
      "    - name: b\n"
      "    - name: c\n      token_sha256: " +
      std::string(64, 'a') +
      "\n      token_file: /x\n"
      "    - name: d\n      certificate_subject: CN=d\n      permissions: {x: [write]}\n"
      "    - name: e\n      token_file: /nonexistent/token\n"
      "    - name: f\n      token_sha256: " +
      std::string(64, 'b') +
      "\n"
      "    - name: g\n      token_sha256: " +
      std::string(64, 'b') +
      "\n"
      "      permissions: {\"bad name\": [read]}\n" TROUPE);
  EXPECT_FALSE(result.config);
  EXPECT_TRUE(
      has_error(result, "auth.identities[0].token_sha256", "make one with `trouped hash-token`"))
      << all_errors(result);
  EXPECT_TRUE(has_error(result, "auth.identities[1]", "has no credential")) << all_errors(result);
  EXPECT_TRUE(has_error(result, "auth.identities[2].token_file", "not both")) << all_errors(result);
  EXPECT_TRUE(has_error(result, "auth.identities[3].certificate_subject", "needs mTLS"))
      << all_errors(result);
  EXPECT_TRUE(has_error(result, "auth.identities[3].permissions.x[0]", "unknown value \"write\""))
      << all_errors(result);
  EXPECT_TRUE(has_error(result, "auth.identities[4].token_file", "cannot read /nonexistent/token"))
      << all_errors(result);
  EXPECT_TRUE(has_error(result, "auth.identities[6]", "has the same token as \"f\""))
      << all_errors(result);
  EXPECT_TRUE(has_error(result, "auth.identities[6].permissions.bad name", "not a troupe name"))
      << all_errors(result);
}

TEST(LoadString, TokensOffLoopbackStillNeedTls) {
  const auto result = load_string(
      "server: {grpc_address: 0.0.0.0:1}\nauth:\n  identities:\n    - name: a\n"
      "      token_sha256: " +
      std::string(64, 'a') + "\n" TROUPE);
  EXPECT_TRUE(has_error(result, "server.grpc_address", "and without TLS anyone who reaches it"))
      << all_errors(result);
}

TEST(LoadFile, ShippedConfigIsValid) {
  const LoadResult result = load_file(TROUPE_SHIPPED_CONFIG);
  ASSERT_TRUE(result.config.has_value()) << all_errors(result);
  const Config& config = *result.config;
  EXPECT_EQ(config.server.grpc_address, "127.0.0.1:50051");
  EXPECT_EQ(config.server.metrics_address, "127.0.0.1:9464");
  std::vector<std::string> names;
  for (const auto& t : config.troupes) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"echo", "upper", "sleep"}));
  const auto* exec = config.troupes[1].handler.get_if<core::ExecHandlerOptions>();
  ASSERT_NE(exec, nullptr);
  EXPECT_EQ(exec->argv, (std::vector<std::string>{"tr", "a-z", "A-Z"}));
}

TEST(LoadFile, EveryExampleIsValid) {
  std::size_t count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(TROUPE_CONFIG_EXAMPLES_DIR)) {
    if (entry.path().extension() != ".yaml") continue;
    ++count;
    const LoadResult result = load_file(entry.path().string());
    EXPECT_TRUE(result.config.has_value()) << all_errors(result);
  }
  EXPECT_GE(count, 3u);
}

}  // namespace
}  // namespace troupe::config

namespace troupe::config {
namespace {

TEST(LoadString, HttpSigningSecretIsReadFromItsFileAndRedirectsAreOffByDefault) {
  const auto path =
      std::filesystem::temp_directory_path() /
      ("troupe_signing_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
  {
    std::ofstream out(path);
    out << "  shh-its-a-secret\n";
  }
  const std::string troupe =
      "troupes:\n  - name: t\n    handler: {kind: http, url: "
      "\"http://127.0.0.1:9/\"";
  const Config signed_config = load_valid(troupe + ", signing_secret_file: " + path.string() +
                                          ", follow_redirects: true}\n");
  const Config plain = load_valid(troupe + "}\n");
  std::filesystem::remove(path);
  const auto* http = signed_config.troupes.at(0).handler.get_if<core::HttpHandlerOptions>();
  ASSERT_NE(http, nullptr);
  EXPECT_EQ(http->signing_secret, "shh-its-a-secret");
  EXPECT_EQ(http->signing_secret_file, path.string());
  EXPECT_TRUE(http->follow_redirects);
  const auto* unsigned_http = plain.troupes.at(0).handler.get_if<core::HttpHandlerOptions>();
  ASSERT_NE(unsigned_http, nullptr);
  EXPECT_EQ(unsigned_http->signing_secret, "");
  EXPECT_FALSE(unsigned_http->follow_redirects);

  const LoadResult missing = load_string(troupe + ", signing_secret_file: /nonexistent/key}\n");
  ASSERT_EQ(missing.errors.size(), 1u) << all_errors(missing);
  EXPECT_EQ(missing.errors[0].path, "troupes[0].handler.signing_secret_file");
  EXPECT_EQ(missing.errors[0].message, "cannot read /nonexistent/key: No such file or directory");
  const LoadResult empty = load_string(troupe + ", signing_secret_file: /dev/null}\n");
  ASSERT_EQ(empty.errors.size(), 1u) << all_errors(empty);
  EXPECT_EQ(empty.errors[0].message, "/dev/null is empty; it must hold the secret");
}

TEST(LoadString, ExecUserAndGroupAreResolvedWhenTheConfigIsRead) {
  if (::geteuid() != 0) GTEST_SKIP() << "user/group need trouped to run as root";
  const std::string troupe = "troupes:\n  - name: t\n    handler: {kind: exec, argv: [id]";
  const Config as_nobody = load_valid(troupe + ", user: nobody}\n");
  const auto* exec = as_nobody.troupes.at(0).handler.get_if<core::ExecHandlerOptions>();
  ASSERT_NE(exec, nullptr);
  ASSERT_TRUE(exec->run_as.has_value());
  EXPECT_EQ(exec->run_as->uid, 65534u);
  EXPECT_EQ(exec->run_as->gid, 65534u);  // nobody's primary group, nogroup
  EXPECT_EQ(exec->run_as->groups, std::vector<gid_t>{65534});

  const Config with_group = load_valid(troupe + ", user: nobody, group: root}\n");
  const auto* grouped = with_group.troupes.at(0).handler.get_if<core::ExecHandlerOptions>();
  ASSERT_NE(grouped, nullptr);
  ASSERT_TRUE(grouped->run_as.has_value());
  EXPECT_EQ(grouped->run_as->uid, 65534u);
  EXPECT_EQ(grouped->run_as->gid, 0u);
  EXPECT_EQ(grouped->run_as->groups, std::vector<gid_t>{0});
  EXPECT_NE(*grouped, *exec);  // a reload that changes the user rebuilds the handlers

  const Config plain = load_valid(troupe + "}\n");
  EXPECT_FALSE(plain.troupes.at(0).handler.get_if<core::ExecHandlerOptions>()->run_as);

  const LoadResult unknown = load_string(troupe + ", user: no-such-user-x, group: no-such-grp}\n");
  ASSERT_EQ(unknown.errors.size(), 2u) << all_errors(unknown);
  EXPECT_EQ(unknown.errors[0].path, "troupes[0].handler.user");
  EXPECT_EQ(unknown.errors[0].message,
            "unknown user 'no-such-user-x' (not in the passwd database)");
  EXPECT_EQ(unknown.errors[1].path, "troupes[0].handler.group");
  EXPECT_EQ(unknown.errors[1].message, "unknown group 'no-such-grp' (not in the group database)");
}

}  // namespace
}  // namespace troupe::config
