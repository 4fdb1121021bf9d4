#pragma once

/// Loads and validates trouped's YAML configuration.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config_error.h"
#include "core/options.h"

namespace troupe::config {

struct LimitsOptions {
  std::size_t max_payload = 4u << 20;  // bytes per job payload
  std::size_t max_metadata_entries = 32;
  std::size_t max_metadata_bytes = 8u << 10;  // keys + values

  bool operator==(const LimitsOptions&) const = default;
};

/// The gRPC transport's own limits (server.grpc).
struct GrpcOptions {
  std::uint32_t max_concurrent_streams = 1000;                  // per connection (HTTP/2 setting)
  core::Duration keepalive_time = std::chrono::minutes(1);      // ping a quiet connection
  core::Duration keepalive_timeout = std::chrono::seconds(20);  // close it unanswered
  core::Duration min_client_ping_interval = std::chrono::seconds(10);  // faster: GOAWAY
  std::size_t max_memory = std::size_t{1} << 30;                       // gRPC's resource quota

  bool operator==(const GrpcOptions&) const = default;
};

/// TLS on the gRPC port. The files are PEM; gRPC re-reads them every
/// `refresh_interval` (certificate rotation without a restart).
struct TlsOptions {
  std::string cert_file;       // server certificate chain
  std::string key_file;        // its private key
  std::string client_ca_file;  // set: mTLS, client certificates required and verified
  core::Duration refresh_interval = std::chrono::seconds(10);

  bool enabled() const { return !cert_file.empty(); }
  bool mutual() const { return !client_ca_file.empty(); }
  friend bool operator==(const TlsOptions&, const TlsOptions&) = default;
};

/// HTTP basic auth on /metrics; the password is kept only as its SHA-256.
struct MetricsAuthOptions {
  std::string username;
  std::optional<std::array<std::uint8_t, 32>> password_sha256;
  bool enabled() const { return password_sha256.has_value(); }
  friend bool operator==(const MetricsAuthOptions&, const MetricsAuthOptions&) = default;
};

struct ServerOptions {
  std::string grpc_address = "127.0.0.1:50051";
  std::string metrics_address = "127.0.0.1:9464";
  /// Listen off loopback without TLS and authentication anyway (logged
  /// loudly at start). Without it such a config is refused.
  bool insecure = false;
  TlsOptions tls;
  MetricsAuthOptions metrics_auth;
  bool reflection = true;     // serve grpc.reflection (grpcurl without .proto files)
  std::uint32_t threads = 0;  // 0 = hardware concurrency
  core::Duration drain_timeout = std::chrono::seconds(30);
  LimitsOptions limits;
  GrpcOptions grpc;

  bool operator==(const ServerOptions&) const = default;
};

/// What an identity may do on a troupe; a set is a bit mask of these.
enum class Permission : std::uint8_t {
  kSubmit = 1,  // Submit, SubmitStream
  kRead = 2,    // GetJob, WatchJob, ListDeadJobs
  kCancel = 4,  // CancelJob
  kAdmin = 8,   // ListTroupes, GetTroupe
};
using Permissions = std::uint8_t;
inline constexpr Permissions kAllPermissions = 15;

/// Permissions on the troupes whose names match `troupes` ('*' matches any
/// run of characters: "*", "batch-*").
struct Grant {
  std::string troupes;
  Permissions permissions = 0;
  friend bool operator==(const Grant&, const Grant&) = default;
};

/// Someone who may call trouped: known by a bearer token (kept only as its
/// SHA-256) and/or by the subject of a client certificate (mTLS).
struct Identity {
  std::string name;
  std::optional<std::array<std::uint8_t, 32>> token_sha256;
  std::string certificate_subject;  // RFC 2253, as gRPC reports it: "O=Example,CN=ci"
  std::vector<Grant> grants;
  friend bool operator==(const Identity&, const Identity&) = default;
};

/// Authentication and per-troupe permissions. No identities: every caller
/// may do everything (allowed on loopback, or with server.insecure / mTLS).
struct AuthOptions {
  std::vector<Identity> identities;
  bool enabled() const { return !identities.empty(); }
  friend bool operator==(const AuthOptions&, const AuthOptions&) = default;
};

struct LoggingOptions {
  enum class Format { kText, kJson };
  std::string level = "info";
  Format format = Format::kText;

  bool operator==(const LoggingOptions&) const = default;
};

/// `store: {kind: postgres}`: a database several replicas share
/// (docs/cluster.md). What the journal makes of them: store::PgJournalOptions.
struct PostgresStoreOptions {
  /// A libpq connection string or URI. Empty: libpq's defaults and its PG*
  /// environment variables (PGHOST, PGDATABASE, PGUSER, PGPASSWORD, ...).
  std::string dsn;
  /// This replica's name; empty: $TROUPE_REPLICA, else the host name
  /// (daemon::replica_name resolves it at start).
  std::string replica;
  core::Duration lease = std::chrono::seconds(15);
  core::Duration heartbeat = std::chrono::seconds(5);  // at most lease / 3
  core::Duration poll = std::chrono::seconds(1);
  std::size_t claim_batch = 100;

  bool operator==(const PostgresStoreOptions&) const = default;
};

/// Where jobs are kept (`store:`; docs/durability.md, docs/cluster.md).
/// Opened only at start: a reload that changes it is refused.
struct StoreOptions {
  enum class Kind { kSqlite, kMemory, kPostgres };
  Kind kind = Kind::kSqlite;
  /// The SQLite file, absolute once load_file() resolved it: as given
  /// (relative to the config file's directory), else
  /// $STATE_DIRECTORY/jobs.db under systemd, else
  /// <config file's directory>/trouped-data/jobs.db. Empty for kMemory.
  std::string path;
  bool sync_full = true;          // sync: full (default) or normal
  std::size_t max_size = 0;       // bytes the database may grow to; 0: unlimited
  PostgresStoreOptions postgres;  // kPostgres only

  bool operator==(const StoreOptions&) const = default;
};

/// The whole file, validated.
struct Config {
  ServerOptions server;
  StoreOptions store;
  LoggingOptions logging;
  AuthOptions auth;
  core::RuntimeOptions runtime;
  std::vector<core::TroupeOptions> troupes;

  bool operator==(const Config&) const = default;
};

/// Either a whole valid config, or every error found in the file.
struct LoadResult {
  std::optional<Config> config;
  std::vector<ConfigError> errors;
  /// An error about `key` ("store.dsn") of the valid config found after
  /// loading (--check-config's reach of the database), placed where the
  /// file gives that key's value; without line and column when the loader
  /// did not note the key (only the keys such checks need are noted).
  ConfigError error_at(const std::string& key, std::string message) const;

  std::string file;                                                // as errors name it
  std::map<std::string, std::pair<int, int>, std::less<>> places;  // key -> line, column
};

/// True when the gRPC port has TLS and authenticates every caller (auth
/// identities, or mTLS): then it may listen off loopback without
/// `server.insecure`, and trouped warns about it under `insecure` no more.
bool grpc_is_protected(const Config& config);

/// Reads, parses and validates a whole file, and resolves store.path
/// against `path`'s directory (resolve_store_path). Never throws.
LoadResult load_file(const std::string& path);
/// Same for YAML text; `name` stands in for the file name in errors.
/// store.path is left as written (empty when not given).
LoadResult load_string(std::string_view yaml, const std::string& name = "<config>");

/// The store's path for a config loaded from `config_path`: an absolute
/// store.path as it is; a relative one under the config file's directory;
/// none: $STATE_DIRECTORY/jobs.db when `state_directory` (systemd's
/// STATE_DIRECTORY, its first entry) is set and not empty, else
/// <config file's directory>/trouped-data/jobs.db. Absolute, lexically
/// normal. Empty for kind memory. Reads no file.
std::string resolve_store_path(const StoreOptions& store, const std::string& config_path,
                               const char* state_directory);

}  // namespace troupe::config
