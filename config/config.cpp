#include "config/config.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <span>
#include <sstream>
#include <system_error>

#include "config/crypto.h"
#include "config/value_parsers.h"
#include "config/yaml_reader.h"
#include "handlers/registry.h"

namespace troupe::config {
namespace {

using namespace detail;
using core::Duration;

constexpr std::int64_t kUnbounded = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMaxActors = 4096;

constexpr RealRange kRatio{0.0, true, 1.0, false};  // (0, 1]
constexpr double kInfinity = std::numeric_limits<double>::infinity();

bool is_troupe_name(std::string_view name) {
  return !name.empty() && name.size() <= 64 &&
         std::all_of(name.begin(), name.end(), [](unsigned char c) {
           return std::isalnum(c) != 0 || c == '_' || c == '.' || c == '-';
         });
}

/// Reports `message` at `key` when present, else at `fallback_key` when
/// present, else at the map itself (path of `key`).
void report_pair(MapReader& m, std::string_view key, std::string_view fallback_key,
                 std::string message) {
  const std::string_view at = m.has(key) || !m.has(fallback_key) ? key : fallback_key;
  m.diag().error(m.at(at), m.path(at), std::move(message));
}

/// "(the default)" when the key was not given: contradictions with a default
/// are otherwise puzzling.
std::string given_or_default(const MapReader& m, std::string_view key, const std::string& value) {
  return m.has(key) ? value : value + ", the default";
}

bool read_address(MapReader& m, std::string_view key, std::string& out) {
  const Field* f = m.find(key);
  if (f == nullptr) return false;
  auto text = read_string(m.diag(), *f);
  if (!text) return false;
  auto parsed = parse_address(*text);
  if (!parsed.value) {
    m.diag().error(f->where(), f->path(), std::move(parsed.error));
    return false;
  }
  out = std::move(*text);
  return true;
}

void read_failure_classes(MapReader& m, std::string_view key, std::set<core::FailureClass>& out) {
  const Field* f = m.find(key);
  if (f == nullptr) return;
  auto items = read_list(m.diag(), *f);
  if (!items) return;
  std::set<core::FailureClass> classes;
  bool ok = true;
  for (const Field& item : *items) {
    auto value = read_choice<core::FailureClass>(m.diag(), item,
                                                 {{"retryable", core::FailureClass::kRetryable},
                                                  {"permanent", core::FailureClass::kPermanent},
                                                  {"timeout", core::FailureClass::kTimeout},
                                                  {"crash", core::FailureClass::kCrash}});
    if (!value) {
      ok = false;
    } else if (!classes.insert(*value).second) {
      m.diag().error(item.where(), item.path(),
                     describe(item.node()) + " is listed twice; list each class once");
      ok = false;
    }
  }
  if (ok) out = std::move(classes);
}

// ---------------------------------------------------------------- auth

bool is_troupe_pattern(std::string_view pattern) {
  return !pattern.empty() && pattern.size() <= 64 &&
         std::all_of(pattern.begin(), pattern.end(), [](unsigned char c) {
           return std::isalnum(c) != 0 || c == '_' || c == '.' || c == '-' || c == '*';
         });
}

std::optional<Sha256> parse_sha256_hex(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  Sha256 out{};
  for (std::size_t i = 0; i < out.size(); ++i) {
    unsigned value = 0;
    for (const char c : hex.substr(2 * i, 2)) {
      const int digit = std::isdigit(static_cast<unsigned char>(c)) != 0 ? c - '0'
                        : c >= 'a' && c <= 'f'                           ? c - 'a' + 10
                        : c >= 'A' && c <= 'F'                           ? c - 'A' + 10
                                                                         : -1;
      if (digit < 0) return std::nullopt;
      value = value * 16 + static_cast<unsigned>(digit);
    }
    out[i] = static_cast<std::uint8_t>(value);
  }
  return out;
}

void read_permissions(MapReader& identity, Identity& out) {
  const Field* f = identity.find("permissions");
  if (f == nullptr) return;
  Diagnostics& diag = identity.diag();
  const YAML::Node& node = f->node();
  if (node.IsNull()) return;
  if (!node.IsMap()) {
    diag.error(f->where(), f->path(),
               "expected a map of troupe name (or pattern with '*') to a list of permissions, "
               "e.g. {\"*\": [read], \"batch-*\": [submit, read, cancel]}; got " +
                   describe(node));
    return;
  }
  for (auto it = node.begin(); it != node.end(); ++it) {
    const Location key_at = location_of(it->first);
    const std::string pattern = it->first.IsScalar() ? it->first.Scalar() : "";
    const Field entry(it->second, f->child(pattern), key_at);
    if (!is_troupe_pattern(pattern)) {
      diag.error(key_at, entry.path(),
                 "\"" + pattern +
                     "\" is not a troupe name or pattern; use letters, digits, '_', '.', '-' "
                     "and '*' for any run of characters");
      continue;
    }
    auto items = read_list(diag, entry);
    if (!items) continue;
    Grant grant{pattern, 0};
    for (const Field& item : *items) {
      if (auto bits =
              read_choice<Permissions>(diag, item,
                                       {{"submit", static_cast<Permissions>(Permission::kSubmit)},
                                        {"read", static_cast<Permissions>(Permission::kRead)},
                                        {"cancel", static_cast<Permissions>(Permission::kCancel)},
                                        {"admin", static_cast<Permissions>(Permission::kAdmin)},
                                        {"*", kAllPermissions}})) {
        grant.permissions |= *bits;
      }
    }
    out.grants.push_back(std::move(grant));
  }
}

/// A secret given as `<name>_sha256` (hex) or `<name>_file` (the secret
/// itself, hashed here); reports both, neither (when `required`), or a bad
/// value. Returns the hash.
std::optional<Sha256> read_secret(MapReader& m, const std::string& name, bool required) {
  const std::string hash_key = name + "_sha256";
  const std::string file_key = name + "_file";
  if (m.has(hash_key) && m.has(file_key)) {
    m.diag().error(m.at(file_key), m.path(file_key),
                   "give " + hash_key + " or " + file_key + ", not both");
    return std::nullopt;
  }
  if (std::string hex; m.string(hash_key, hex)) {
    auto hash = parse_sha256_hex(hex);
    if (!hash) {
      m.diag().error(m.at(hash_key), m.path(hash_key),
                     "expected 64 hex digits (a SHA-256); make one with `trouped hash-token` "
                     "(never put the " +
                         name + " itself in the config)");
    }
    return hash;
  }
  if (std::string path; m.string(file_key, path)) {
    if (auto secret = read_secret_file(m, file_key, path)) return sha256(*secret);
    return std::nullopt;
  }
  if (required) {
    m.diag().error(m.self().where(), m.path(hash_key),
                   "missing; give " + hash_key + " (from `trouped hash-token`) or " + file_key);
  }
  return std::nullopt;
}

void read_metrics_auth(Diagnostics& diag, const Field& f, MetricsAuthOptions& auth) {
  MapReader m(diag, f, {"username", "password_sha256", "password_file"});
  if (!m.is_map()) return;
  if (!m.string("username", auth.username) || auth.username.empty() ||
      auth.username.find(':') != std::string::npos) {
    diag.error(m.at("username"), m.path("username"),
               "needs a user name without ':' (basic auth), e.g. username: prometheus");
  }
  auth.password_sha256 = read_secret(m, "password", true);
}

void read_auth(Diagnostics& diag, const Field& f, Config& config) {
  MapReader m(diag, f, {"identities"});
  if (!m.is_map()) return;
  const Field* list = m.find("identities");
  if (list == nullptr) return;
  auto items = read_list(diag, *list);
  if (!items) return;
  std::map<std::string, int> names;      // name -> line of first use
  std::map<Sha256, std::string> tokens;  // hash -> identity
  std::map<std::string, std::string> subjects;
  for (const Field& item : *items) {
    MapReader i(diag, item,
                {"name", "token_sha256", "token_file", "certificate_subject", "permissions"});
    if (!i.is_map()) continue;
    Identity identity;
    if (!i.string("name", identity.name) || identity.name.empty()) {
      if (!i.has("name")) {
        diag.error(item.where(), i.path("name"),
                   "missing; every identity needs a name (it appears in logs and errors)");
      }
      continue;
    }
    if (const auto [it, inserted] = names.emplace(identity.name, i.at("name").line); !inserted) {
      diag.error(i.at("name"), i.path("name"),
                 "identity \"" + identity.name + "\" is already defined on line " +
                     std::to_string(it->second) + "; names must be unique");
    }
    identity.token_sha256 = read_secret(i, "token", false);
    i.string("certificate_subject", identity.certificate_subject);
    if (!i.has("token_sha256") && !i.has("token_file") && !i.has("certificate_subject")) {
      diag.error(item.where(), item.path(),
                 "identity \"" + identity.name +
                     "\" has no credential; give token_sha256, token_file or "
                     "certificate_subject");
    }
    if (identity.token_sha256) {
      if (const auto [it, inserted] = tokens.emplace(*identity.token_sha256, identity.name);
          !inserted) {
        diag.error(i.at(i.has("token_file") ? "token_file" : "token_sha256"), item.path(),
                   "identity \"" + identity.name + "\" has the same token as \"" + it->second +
                       "\"; give each identity its own token");
      }
    }
    if (!identity.certificate_subject.empty()) {
      if (!config.server.tls.mutual()) {
        diag.error(i.at("certificate_subject"), i.path("certificate_subject"),
                   "needs mTLS: set server.tls.client_ca_file so that clients present "
                   "certificates");
      }
      if (const auto [it, inserted] = subjects.emplace(identity.certificate_subject, identity.name);
          !inserted) {
        diag.error(i.at("certificate_subject"), i.path("certificate_subject"),
                   "identity \"" + it->second + "\" already has this subject");
      }
    }
    read_permissions(i, identity);
    config.auth.identities.push_back(std::move(identity));
  }
}

// ---------------------------------------------------------------- server

/// Reads a PEM file for `key`; reports (at the key) a file that cannot be
/// read or holds no PEM block. Returns the text, or nullopt.
std::optional<std::string> read_pem_file(MapReader& m, std::string_view key, std::string& path) {
  if (!m.string(key, path)) return std::nullopt;
  auto text = read_file_for(m, key, path);
  if (text && text->find("-----BEGIN ") == std::string::npos) {
    m.diag().error(m.at(key), m.path(key), path + " holds no PEM block (-----BEGIN ...)");
    return std::nullopt;
  }
  return text;
}

void read_tls(Diagnostics& diag, const Field& f, TlsOptions& tls) {
  MapReader m(diag, f, {"cert_file", "key_file", "client_ca_file", "refresh_interval"});
  if (!m.is_map()) return;
  const auto cert = read_pem_file(m, "cert_file", tls.cert_file);
  const auto key = read_pem_file(m, "key_file", tls.key_file);
  const auto ca = read_pem_file(m, "client_ca_file", tls.client_ca_file);
  m.duration("refresh_interval", tls.refresh_interval,
             {std::chrono::seconds(1), false, std::chrono::hours(24)});
  if (!m.has("cert_file") || !m.has("key_file")) {
    report_pair(m, "cert_file", "key_file",
                "TLS needs both cert_file (the server's certificate chain) and key_file (its "
                "private key)");
    return;
  }
  if (cert && key) {
    if (auto why = detail::check_key_pair(*cert, *key); !why.empty()) {
      diag.error(m.at("key_file"), m.path("key_file"),
                 tls.key_file + " does not go with " + tls.cert_file + ": " + why);
    }
  }
  if (ca) {
    if (auto why = detail::check_certificates(*ca); !why.empty()) {
      diag.error(m.at("client_ca_file"), m.path("client_ca_file"), tls.client_ca_file + ": " + why);
    }
  }
}

/// server.tls alone (read before auth; read_server skips it).
void read_server_tls(Diagnostics& diag, const Field& f, Config& config) {
  if (!f.node().IsMap()) return;  // read_server reports it
  for (auto it = f.node().begin(); it != f.node().end(); ++it) {
    if (it->first.IsScalar() && it->first.Scalar() == "tls") {
      read_tls(diag, Field(it->second, f.child("tls"), location_of(it->first)), config.server.tls);
      return;
    }
  }
}

/// Off loopback, anyone who reaches the port may submit, read and cancel:
/// refused without TLS and authentication unless `insecure: true` says so.
void check_exposure(MapReader& m, const Config& config) {
  const ServerOptions& server = config.server;
  const auto address = parse_address(server.grpc_address).value;
  if (server.insecure || !address || is_loopback(*address) || grpc_is_protected(config)) return;
  const bool authenticated = config.auth.enabled() || server.tls.mutual();
  const std::string missing = server.tls.enabled() ? "without authentication"
                              : authenticated      ? "without TLS"
                                                   : "without TLS and authentication";
  m.diag().error(m.at("grpc_address"), m.path("grpc_address"),
                 server.grpc_address + " is reachable from other machines, and " + missing +
                     " anyone who reaches it can submit, read and cancel jobs; configure "
                     "server.tls and auth (docs/security.md), listen on 127.0.0.1, or set "
                     "server.insecure: true to accept that");
}

/// The same rule for /metrics (what the troupes are and how busy they are).
void check_metrics_exposure(MapReader& m, const Config& config) {
  const ServerOptions& server = config.server;
  const auto address = parse_address(server.metrics_address).value;
  if (server.insecure || !address || is_loopback(*address)) return;
  m.diag().error(m.at("metrics_address"), m.path("metrics_address"),
                 server.metrics_address +
                     " is reachable from other machines without TLS and basic auth; listen on "
                     "127.0.0.1 (docs/security.md), or set server.insecure: true to accept that");
}

void read_server(Diagnostics& diag, const Field& f, Config& config) {
  MapReader m(diag, f,
              {"grpc_address", "metrics_address", "metrics_auth", "insecure", "tls", "reflection",
               "threads", "shutdown", "limits", "job_store", "grpc"});
  if (!m.is_map()) return;
  ServerOptions& server = config.server;
  const bool grpc_ok = read_address(m, "grpc_address", server.grpc_address);
  const bool metrics_ok = read_address(m, "metrics_address", server.metrics_address);
  m.boolean("insecure", server.insecure);
  m.boolean("reflection", server.reflection);
  if (const Field* auth = m.find("metrics_auth"))
    read_metrics_auth(diag, *auth, server.metrics_auth);
  m.u32("threads", server.threads, {0, 1024});

  if (const Field* shutdown = m.find("shutdown")) {
    MapReader s(diag, *shutdown, {"drain_timeout"});
    s.duration("drain_timeout", server.drain_timeout, kNonNegative);
  }
  if (const Field* limits = m.find("limits")) {
    MapReader l(
        diag, *limits,
        {"max_payload", "max_metadata_entries", "max_metadata_bytes", "max_waiters_per_job"});
    l.size("max_payload", server.limits.max_payload, 1, kGiB);
    l.count("max_metadata_entries", server.limits.max_metadata_entries, {0, 4096});
    l.size("max_metadata_bytes", server.limits.max_metadata_bytes, 0, 16 * kMiB);
    l.count("max_waiters_per_job", config.runtime.max_listeners_per_job, {1, 100'000});
  }
  if (const Field* grpc = m.find("grpc")) {
    MapReader g(diag, *grpc,
                {"max_concurrent_streams", "keepalive_time", "keepalive_timeout",
                 "min_client_ping_interval", "max_memory"});
    g.u32("max_concurrent_streams", server.grpc.max_concurrent_streams, {1, 1'000'000});
    g.duration("keepalive_time", server.grpc.keepalive_time, kPositive);
    g.duration("keepalive_timeout", server.grpc.keepalive_timeout, kPositive);
    g.duration("min_client_ping_interval", server.grpc.min_client_ping_interval, kPositive);
    g.size("max_memory", server.grpc.max_memory, 64 * kMiB,
           std::numeric_limits<std::size_t>::max());
  }
  if (const Field* store = m.find("job_store")) {
    MapReader j(diag, *store, {"result_ttl", "max_jobs", "max_bytes", "idempotency_ttl"});
    core::JobStoreOptions& options = config.runtime.job_store;
    j.duration("result_ttl", options.result_ttl, kPositive);
    j.count("max_jobs", options.max_jobs, {1, kUnbounded});
    j.size("max_bytes", options.max_bytes, 1, std::numeric_limits<std::size_t>::max());
    j.duration("idempotency_ttl", options.idempotency_ttl, kPositive);
  }

  if (grpc_ok && metrics_ok) {
    const auto grpc = parse_address(server.grpc_address).value;
    const auto metrics = parse_address(server.metrics_address).value;
    if (grpc && metrics && grpc->port != 0 && grpc->port == metrics->port &&
        grpc->host == metrics->host) {
      diag.error(m.at("metrics_address"), m.path("metrics_address"),
                 "metrics_address is the same as grpc_address (" + server.grpc_address +
                     "); give the metrics endpoint its own port");
    }
  }
  if (grpc_ok) check_exposure(m, config);
  if (metrics_ok) check_metrics_exposure(m, config);
}

void read_logging(Diagnostics& diag, const Field& f, Config& config) {
  MapReader m(diag, f, {"level", "format"});
  if (!m.is_map()) return;
  std::string_view level;
  if (m.choice<std::string_view>("level", level,
                                 {{"trace", "trace"},
                                  {"debug", "debug"},
                                  {"info", "info"},
                                  {"warn", "warn"},
                                  {"error", "error"},
                                  {"critical", "critical"},
                                  {"off", "off"}})) {
    config.logging.level = std::string(level);
  }
  m.choice<LoggingOptions::Format>(
      "format", config.logging.format,
      {{"text", LoggingOptions::Format::kText}, {"json", LoggingOptions::Format::kJson}});
}

/// Keys whose place in the file LoadResult keeps (LoadResult::error_at).
using Places = std::map<std::string, std::pair<int, int>, std::less<>>;

constexpr std::string_view kSqliteKeys[] = {"path", "sync", "max_size"};
constexpr std::string_view kPostgresKeys[] = {"dsn",       "replica", "lease",
                                              "heartbeat", "poll",    "claim_batch"};

void read_postgres(MapReader& m, PostgresStoreOptions& pg, Places& places) {
  if (m.string("dsn", pg.dsn)) {
    const Location at = m.at("dsn");
    places.insert_or_assign(m.path("dsn"), std::pair{at.line, at.column});
  }
  if (m.string("replica", pg.replica) && pg.replica.size() > 255) {
    m.diag().error(m.at("replica"), m.path("replica"),
                   "is " + std::to_string(pg.replica.size()) +
                       " bytes; a replica name has at most 255 (leave it empty for "
                       "$TROUPE_REPLICA or the host name)");
  }
  const bool lease_ok = !m.has("lease") || m.duration("lease", pg.lease, kPositive);
  const bool heartbeat_ok = !m.has("heartbeat") || m.duration("heartbeat", pg.heartbeat, kPositive);
  m.duration("poll", pg.poll, kPositive);
  m.count("claim_batch", pg.claim_batch, {1, 10'000});
  if (lease_ok && heartbeat_ok && pg.heartbeat * 3 > pg.lease) {
    report_pair(m, "heartbeat", "lease",
                "heartbeat (" + given_or_default(m, "heartbeat", format_duration(pg.heartbeat)) +
                    ") is more than a third of lease (" +
                    given_or_default(m, "lease", format_duration(pg.lease)) +
                    "); a replica renews its lease at least three times per lease, so that one "
                    "late heartbeat does not hand its jobs to other replicas: lower heartbeat or "
                    "raise lease");
  }
}

void read_store(Diagnostics& diag, const Field& f, Config& config, Places& places) {
  std::vector<std::string_view> known = {"kind"};
  known.insert(known.end(), std::begin(kSqliteKeys), std::end(kSqliteKeys));
  known.insert(known.end(), std::begin(kPostgresKeys), std::end(kPostgresKeys));
  MapReader m(diag, f, known);
  if (!m.is_map()) return;
  StoreOptions& store = config.store;
  m.choice<StoreOptions::Kind>("kind", store.kind,
                               {{"sqlite", StoreOptions::Kind::kSqlite},
                                {"memory", StoreOptions::Kind::kMemory},
                                {"postgres", StoreOptions::Kind::kPostgres}});
  m.choice<bool>("sync", store.sync_full, {{"full", true}, {"normal", false}});
  if (m.string("path", store.path) && store.path.empty()) {
    diag.error(m.at("path"), m.path("path"),
               "empty; give the SQLite file (e.g. /var/lib/trouped/jobs.db) or leave path out "
               "for the default");
  }
  m.size("max_size", store.max_size, 0, std::numeric_limits<std::size_t>::max());
  read_postgres(m, store.postgres, places);

  const auto refuse = [&](std::span<const std::string_view> keys, const std::string& why) {
    for (const std::string_view key : keys) {
      if (m.has(key)) diag.error(m.at(key), m.path(key), why);
    }
  };
  switch (store.kind) {
    case StoreOptions::Kind::kSqlite:
      refuse(kPostgresKeys,
             "only for kind postgres; kind sqlite keeps jobs in one local file "
             "(remove it, or use kind: postgres)");
      break;
    case StoreOptions::Kind::kMemory:
      refuse(kSqliteKeys,
             "only for kind sqlite; kind memory keeps nothing on disk (remove it, or use "
             "kind: sqlite)");
      refuse(kPostgresKeys,
             "only for kind postgres; kind memory keeps nothing anywhere (remove "
             "it, or use kind: postgres)");
      break;
    case StoreOptions::Kind::kPostgres:
      refuse(kSqliteKeys,
             "only for kind sqlite; kind postgres keeps jobs in the database that dsn names "
             "(remove it; docs/cluster.md has the PostgreSQL settings)");
      break;
  }
}

// ---------------------------------------------------------------- troupes

void read_actors(MapReader& troupe, core::TroupeOptions& t) {
  Diagnostics& diag = troupe.diag();
  const bool fixed = t.mode == core::TroupeMode::kFixed;
  if (fixed) t.min_actors = t.initial_actors = t.max_actors;
  const Field* f = troupe.find("actors");
  if (f == nullptr) return;
  if (f->node().IsScalar()) {
    if (!fixed) {
      diag.error(f->where(), f->path(),
                 "a single actor count needs mode: fixed; with mode: dynamic write "
                 "actors: {min: 1, initial: N, max: N}");
      return;
    }
    if (auto n = read_int(diag, *f, {1, kMaxActors})) {
      t.min_actors = t.initial_actors = t.max_actors = static_cast<std::uint32_t>(*n);
    }
    return;
  }
  MapReader m(diag, *f, {"min", "initial", "max"});
  if (!m.is_map()) return;
  if (fixed) {
    for (const std::string_view key : {"min", "initial"}) {
      if (m.has(key)) {
        diag.error(m.at(key), m.path(key),
                   "mode fixed runs exactly 'max' actors; remove '" + std::string(key) +
                       "' or use mode: dynamic");
      }
    }
    std::uint32_t n = t.max_actors;
    if (m.u32("max", n, {1, kMaxActors})) t.min_actors = t.initial_actors = t.max_actors = n;
    return;
  }
  bool valid = true;
  if (m.has("min") && !m.u32("min", t.min_actors, {1, kMaxActors})) valid = false;
  if (m.has("max") && !m.u32("max", t.max_actors, {1, kMaxActors})) valid = false;
  // An unset initial starts the troupe at its minimum.
  t.initial_actors = t.min_actors;
  if (m.has("initial") && !m.u32("initial", t.initial_actors, {1, kMaxActors})) valid = false;
  if (!valid) return;
  const std::string min = given_or_default(m, "min", std::to_string(t.min_actors));
  const std::string max = given_or_default(m, "max", std::to_string(t.max_actors));
  const std::string initial = std::to_string(t.initial_actors);
  if (t.min_actors > t.max_actors) {
    report_pair(m, "min", "max", "min (" + min + ") is greater than max (" + max + ")");
  } else if (t.initial_actors < t.min_actors) {
    report_pair(m, "initial", "min", "initial (" + initial + ") is less than min (" + min + ")");
  } else if (t.initial_actors > t.max_actors) {
    report_pair(m, "initial", "max", "initial (" + initial + ") is greater than max (" + max + ")");
  }
}

void read_supervisor(Diagnostics& diag, const Field& f, core::SupervisorOptions& s) {
  MapReader m(diag, f, {"strategy", "max_restarts", "window", "backoff_initial", "backoff_max"});
  if (!m.is_map()) return;
  using Strategy = core::SupervisorOptions::Strategy;
  m.choice<Strategy>(
      "strategy", s.strategy,
      {{"restart", Strategy::kRestart}, {"resume", Strategy::kResume}, {"stop", Strategy::kStop}});
  m.u32("max_restarts", s.max_restarts, {0, 1'000'000});
  m.duration("window", s.window, kPositive);
  const bool a =
      !m.has("backoff_initial") || m.duration("backoff_initial", s.backoff_initial, kPositive);
  const bool b = !m.has("backoff_max") || m.duration("backoff_max", s.backoff_max, kPositive);
  if (a && b && s.backoff_max < s.backoff_initial) {
    report_pair(
        m, "backoff_max", "backoff_initial",
        "backoff_max (" + given_or_default(m, "backoff_max", format_duration(s.backoff_max)) +
            ") is shorter than backoff_initial (" +
            given_or_default(m, "backoff_initial", format_duration(s.backoff_initial)) + ")");
  }
}

void read_autoscale(Diagnostics& diag, const Field& f, core::TroupeMode mode,
                    core::AutoscaleOptions& a) {
  if (mode == core::TroupeMode::kFixed) {
    diag.error(f.where(), f.path(),
               "mode fixed never scales; remove autoscale or use mode: dynamic");
    return;
  }
  MapReader m(diag, f,
              {"interval", "high_threshold", "low_threshold", "low_busy_ratio", "scale_up_step",
               "scale_down_step", "cooldown"});
  if (!m.is_map()) return;
  m.duration("interval", a.interval, kPositive);
  const bool high = !m.has("high_threshold") ||
                    m.real("high_threshold", a.high_threshold, {0.0, true, kInfinity, false});
  const bool low = !m.has("low_threshold") ||
                   m.real("low_threshold", a.low_threshold, {0.0, false, kInfinity, false});
  m.real("low_busy_ratio", a.low_busy_ratio, {0.0, false, 1.0, false});
  m.u32("scale_up_step", a.scale_up_step, {1, kMaxActors});
  m.u32("scale_down_step", a.scale_down_step, {1, kMaxActors});
  m.duration("cooldown", a.cooldown, kNonNegative);
  if (high && low && a.low_threshold >= a.high_threshold) {
    std::ostringstream message;
    message << "low_threshold (" << a.low_threshold << ") must be below high_threshold ("
            << a.high_threshold << (m.has("high_threshold") ? "" : ", the default")
            << "), or the troupe would grow and shrink at once";
    report_pair(m, "low_threshold", "high_threshold", message.str());
  }
}

void read_circuit_breaker(Diagnostics& diag, const Field& f, core::CircuitBreakerOptions& c) {
  MapReader m(
      diag, f,
      {"enabled", "consecutive_failures", "window_size", "minimum_calls", "failure_rate_threshold",
       "slow_call_rate_threshold", "slow_call_duration", "open_timeout", "open_timeout_multiplier",
       "max_open_timeout", "half_open_max_calls", "max_wait_in_half_open", "policy", "record"});
  if (!m.is_map()) return;
  m.boolean("enabled", c.enabled);
  m.u32("consecutive_failures", c.consecutive_failures, {0, 1'000'000});
  const bool window = !m.has("window_size") || m.u32("window_size", c.window_size, {1, 100'000});
  const bool minimum =
      !m.has("minimum_calls") || m.u32("minimum_calls", c.minimum_calls, {1, 100'000});
  m.real("failure_rate_threshold", c.failure_rate_threshold, kRatio);
  m.real("slow_call_rate_threshold", c.slow_call_rate_threshold, kRatio);
  m.duration("slow_call_duration", c.slow_call_duration, kPositive);
  const bool open = !m.has("open_timeout") || m.duration("open_timeout", c.open_timeout, kPositive);
  m.real("open_timeout_multiplier", c.open_timeout_multiplier, {1.0, false, 100.0, false});
  const bool max_open =
      !m.has("max_open_timeout") || m.duration("max_open_timeout", c.max_open_timeout, kPositive);
  m.u32("half_open_max_calls", c.half_open_max_calls, {1, 10'000});
  m.duration("max_wait_in_half_open", c.max_wait_in_half_open, kNonNegative);
  using Policy = core::CircuitBreakerOptions::OpenPolicy;
  m.choice<Policy>("policy", c.policy, {{"reject", Policy::kReject}, {"hold", Policy::kHold}});
  read_failure_classes(m, "record", c.record);

  if (window && minimum && c.minimum_calls > c.window_size) {
    report_pair(m, "minimum_calls", "window_size",
                "minimum_calls (" +
                    given_or_default(m, "minimum_calls", std::to_string(c.minimum_calls)) +
                    ") is larger than window_size (" +
                    given_or_default(m, "window_size", std::to_string(c.window_size)) +
                    "), so failure rates would never be judged");
  }
  if (open && max_open && c.max_open_timeout < c.open_timeout) {
    report_pair(m, "max_open_timeout", "open_timeout",
                "max_open_timeout (" +
                    given_or_default(m, "max_open_timeout", format_duration(c.max_open_timeout)) +
                    ") is shorter than open_timeout (" +
                    given_or_default(m, "open_timeout", format_duration(c.open_timeout)) + ")");
  }
  if (c.enabled && m.has("record") && c.record.empty()) {
    diag.error(m.at("record"), m.path("record"),
               "an empty record list means the breaker can never open; list failure classes "
               "(retryable, permanent, timeout, crash) or set enabled: false");
  }
}

void read_retry(Diagnostics& diag, const Field& f, core::RetryOptions& r) {
  MapReader m(
      diag, f,
      {"max_attempts", "initial_backoff", "max_backoff", "multiplier", "jitter", "non_retryable"});
  if (!m.is_map()) return;
  m.u32("max_attempts", r.max_attempts, {1, 100});
  const bool a =
      !m.has("initial_backoff") || m.duration("initial_backoff", r.initial_backoff, kPositive);
  const bool b = !m.has("max_backoff") || m.duration("max_backoff", r.max_backoff, kPositive);
  m.real("multiplier", r.multiplier, {1.0, false, 100.0, false});
  m.boolean("jitter", r.jitter);
  read_failure_classes(m, "non_retryable", r.non_retryable);
  if (a && b && r.max_backoff < r.initial_backoff) {
    report_pair(
        m, "max_backoff", "initial_backoff",
        "max_backoff (" + given_or_default(m, "max_backoff", format_duration(r.max_backoff)) +
            ") is shorter than initial_backoff (" +
            given_or_default(m, "initial_backoff", format_duration(r.initial_backoff)) + ")");
  }
}

void read_rate_limit(Diagnostics& diag, const Field& f, core::RateLimitOptions& r) {
  MapReader m(diag, f, {"enabled", "per_second", "burst"});
  if (!m.is_map()) return;
  r.enabled = true;  // the section's presence turns it on
  m.boolean("enabled", r.enabled);
  m.real("per_second", r.per_second, {0.0, true, 1e9, false});
  m.u32("burst", r.burst, {1, 1'000'000});
  if (r.enabled && !m.has("per_second")) {
    diag.error(f.where(), m.path("per_second"),
               "missing; set the dispatches allowed per second (e.g. per_second: 100), or remove "
               "rate_limit to disable it");
  }
}

void read_cluster(Diagnostics& diag, const Field& f, StoreOptions::Kind store,
                  core::ClusterOptions& c) {
  MapReader m(diag, f, {"singleton", "max_concurrency", "rate_limit"});
  if (!m.is_map()) return;
  m.boolean("singleton", c.singleton);
  m.u32("max_concurrency", c.max_concurrency, {1, 1'000'000});
  if (const Field* r = m.find("rate_limit")) {
    c.rate_limit.burst = 0;  // not given: two blocks of the rate (ClusterOptions)
    read_rate_limit(diag, *r, c.rate_limit);
    if (c.rate_limit.burst == 0) {
      c.rate_limit.burst = core::ClusterOptions::default_rate_burst(c.rate_limit.per_second);
    }
  }
  if (store != StoreOptions::Kind::kPostgres) {
    diag.error(f.where(), f.path(),
               "only with store kind postgres (several replicas on one database, "
               "docs/cluster.md); one trouped needs no cluster coordination (remove it, or use "
               "store: {kind: postgres})");
  }
}

struct TroupeRead {
  core::TroupeOptions options;
  std::optional<Field> name;  // present and valid
};

TroupeRead read_troupe(Diagnostics& diag, const Field& f, StoreOptions::Kind store) {
  TroupeRead result;
  core::TroupeOptions& t = result.options;
  MapReader m(diag, f,
              {"name", "mode", "actors", "mailbox", "dispatch", "timeout", "max_timeout",
               "dead_letter_capacity", "dead_letter_max_bytes", "supervisor", "autoscale",
               "circuit_breaker", "retry", "rate_limit", "handler", "cluster"});
  if (!m.is_map() || f.node().IsNull()) {
    if (f.node().IsNull()) {
      diag.error(f.where(), f.path(), "empty troupe; it needs at least a name and a handler");
    }
    return result;
  }
  if (const Field* name = m.find("name")) {
    if (m.string("name", t.name)) {
      if (is_troupe_name(t.name)) {
        result.name.emplace(*name);
      } else {
        diag.error(name->where(), name->path(),
                   "\"" + t.name +
                       "\" is not a valid troupe name; use 1 to 64 letters, digits, '_', '.' "
                       "or '-'");
      }
    }
  } else {
    diag.error(f.where(), m.path("name"), "missing; every troupe needs a name, e.g. name: echo");
  }
  m.choice<core::TroupeMode>(
      "mode", t.mode,
      {{"dynamic", core::TroupeMode::kDynamic}, {"fixed", core::TroupeMode::kFixed}});
  read_actors(m, t);
  m.u32("mailbox", t.mailbox_capacity, {1, 1'000'000});
  m.choice<core::DispatchStrategy>("dispatch", t.dispatch,
                                   {{"least_loaded", core::DispatchStrategy::kLeastLoaded},
                                    {"round_robin", core::DispatchStrategy::kRoundRobin},
                                    {"key", core::DispatchStrategy::kKey}});
  const bool timeout = !m.has("timeout") || m.duration("timeout", t.timeout, kPositive);
  if (m.has("max_timeout")) {
    core::Duration max_timeout{};
    if (m.duration("max_timeout", max_timeout, kPositive)) {
      t.max_timeout = max_timeout;
      if (timeout && max_timeout < t.timeout) {
        report_pair(m, "max_timeout", "timeout",
                    "max_timeout (" + format_duration(max_timeout) + ") is shorter than timeout (" +
                        given_or_default(m, "timeout", format_duration(t.timeout)) +
                        "); a job may ask for a timeout up to max_timeout");
      }
    }
  }
  m.count("dead_letter_capacity", t.dead_letter_capacity, {0, 10'000'000});
  m.size("dead_letter_max_bytes", t.dead_letter_max_bytes, 0, 64 * kGiB);
  if (const Field* s = m.find("supervisor")) read_supervisor(diag, *s, t.supervisor);
  if (const Field* a = m.find("autoscale")) read_autoscale(diag, *a, t.mode, t.autoscale);
  if (const Field* c = m.find("circuit_breaker")) read_circuit_breaker(diag, *c, t.circuit_breaker);
  if (const Field* r = m.find("retry")) read_retry(diag, *r, t.retry);
  if (const Field* r = m.find("rate_limit")) read_rate_limit(diag, *r, t.rate_limit);
  if (const Field* c = m.find("cluster")) read_cluster(diag, *c, store, t.cluster);
  if (const Field* h = m.find("handler")) {
    if (auto handler = handlers::read_handler(handlers::handler_registry(), diag, *h))
      t.handler = std::move(*handler);
  } else {
    diag.error(f.where(), m.path("handler"),
               "missing; every troupe needs a handler, e.g. handler: {kind: builtin, name: echo}");
  }
  return result;
}

void read_troupes(Diagnostics& diag, const Field& f, Config& config) {
  auto items = read_list(diag, f);
  if (!items) return;
  if (items->empty()) {
    diag.error(f.where(), f.path(),
               "no troupes defined; add at least one, e.g. "
               "- {name: echo, handler: {kind: builtin, name: echo}}");
    return;
  }
  std::map<std::string, const Field*> first_use;
  std::vector<TroupeRead> reads;
  reads.reserve(items->size());
  for (const Field& item : *items) reads.push_back(read_troupe(diag, item, config.store.kind));
  for (std::size_t i = 0; i < reads.size(); ++i) {
    const TroupeRead& read = reads[i];
    if (read.name) {
      const auto [it, inserted] = first_use.emplace(read.options.name, &*read.name);
      if (!inserted) {
        const Field& first = *it->second;
        diag.error(read.name->where(), read.name->path(),
                   "duplicate troupe name \"" + read.options.name + "\": " + first.path() +
                       " (line " + std::to_string(first.where().line) +
                       ") already uses it; names must be unique");
      }
    }
    config.troupes.push_back(read.options);
  }
}

Config read_config(Diagnostics& diag, const YAML::Node& root, Places& places) {
  Config config;
  const Field root_field(root, "", Location{1, 1});
  MapReader m(diag, root_field, {"server", "store", "auth", "logging", "troupes"});
  if (!m.is_map()) return config;
  // The server's exposure check needs auth, and auth's subjects need
  // server.tls: TLS first, then auth, then the rest of the server section.
  if (const Field* server = m.find("server")) read_server_tls(diag, *server, config);
  if (const Field* auth = m.find("auth")) read_auth(diag, *auth, config);
  if (const Field* server = m.find("server")) read_server(diag, *server, config);
  if (const Field* logging = m.find("logging")) read_logging(diag, *logging, config);
  if (const Field* store = m.find("store")) read_store(diag, *store, config, places);
  if (const Field* troupes = m.find("troupes")) {
    read_troupes(diag, *troupes, config);
  } else {
    diag.error(Location{1, 1}, "troupes",
               "missing; define at least one troupe under 'troupes:' (see config/trouped.yaml)");
  }
  return config;
}

}  // namespace

ConfigError LoadResult::error_at(const std::string& key, std::string message) const {
  ConfigError error{file, 0, 0, key, std::move(message)};
  if (auto it = places.find(key); it != places.end()) {
    error.line = it->second.first;
    error.column = it->second.second;
  }
  return error;
}

bool grpc_is_protected(const Config& config) {
  // mTLS authenticates every client by its certificate.
  const bool authenticated = config.auth.enabled() || config.server.tls.mutual();
  return config.server.tls.enabled() && authenticated;
}

LoadResult load_string(std::string_view yaml, const std::string& name) {
  Diagnostics diag(name);
  LoadResult result;
  result.file = name;
  try {
    const std::vector<YAML::Node> documents = YAML::LoadAll(std::string(yaml));
    const YAML::Node root = documents.empty() ? YAML::Node() : documents.front();
    if (documents.size() > 1) {
      diag.error(location_of(documents[1]), "",
                 "the file holds " + std::to_string(documents.size()) +
                     " YAML documents; trouped reads exactly one, so remove the extra '---'");
    } else if (root.IsNull()) {
      diag.error({}, "",
                 "the file is empty; it needs at least a 'troupes:' list (see "
                 "config/trouped.yaml)");
    } else if (!root.IsMap()) {
      diag.error(location_of(root), "",
                 "the top level must be a map with server, logging and troupes keys, got " +
                     describe(root));
    } else {
      Config config = read_config(diag, root, result.places);
      if (diag.empty()) result.config = std::move(config);
    }
  } catch (const YAML::Exception& e) {
    const Location at =
        e.mark.is_null() ? Location{} : Location{e.mark.line + 1, e.mark.column + 1};
    diag.error(at, "", "YAML syntax error: " + e.msg);
  }
  result.errors = diag.take();
  return result;
}

LoadResult load_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    LoadResult result;
    result.errors.push_back({path, 0, 0, "", "cannot read config file: it is a directory"});
    return result;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    LoadResult result;
    result.errors.push_back(
        {path, 0, 0, "", std::string("cannot read config file: ") + std::strerror(error)});
    return result;
  }
  std::ostringstream text;
  text << in.rdbuf();
  LoadResult result = load_string(text.str(), path);
  if (result.config) {
    result.config->store.path =
        resolve_store_path(result.config->store, path, std::getenv("STATE_DIRECTORY"));
  }
  return result;
}

std::string resolve_store_path(const StoreOptions& store, const std::string& config_path,
                               const char* state_directory) {
  namespace fs = std::filesystem;
  if (store.kind != StoreOptions::Kind::kSqlite) return {};
  std::error_code ec;
  fs::path config_dir = fs::absolute(fs::path(config_path), ec).parent_path();
  fs::path file;
  if (!store.path.empty()) {
    file = fs::path(store.path).is_absolute() ? fs::path(store.path) : config_dir / store.path;
  } else if (state_directory != nullptr && *state_directory != '\0') {
    // systemd may list several directories, separated by ':'.
    const std::string_view dirs(state_directory);
    file = fs::path(std::string(dirs.substr(0, dirs.find(':')))) / "jobs.db";
    if (file.is_relative()) file = config_dir / file;
  } else {
    file = config_dir / "trouped-data" / "jobs.db";
  }
  return file.lexically_normal().string();
}

}  // namespace troupe::config
