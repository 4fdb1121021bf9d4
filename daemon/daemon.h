#pragma once

/// trouped's composition root: config + core runtime + gRPC services +
/// metrics + health + signals + systemd notify.

#include <string>

#include "config/config.h"

namespace troupe::daemon {

/// run_daemon()'s exit code when a listener cannot be bound (0 otherwise;
/// the same value as cli.h's kExitRuntimeFailure).
inline constexpr int kExitListenFailed = 1;
/// run_daemon()'s exit code after the store failed (EX_TEMPFAIL): it drained
/// and stopped so that its supervisor restarts it and recovery runs.
inline constexpr int kExitStoreFailed = 75;

/// Runs trouped with an already validated `config` until SIGTERM/SIGINT has
/// drained it; returns the process exit code. `config_path` is re-read on
/// SIGHUP. Logs through spdlog's default logger (set it up before).
///
/// Start: runtime with the troupes, gRPC on server.grpc_address, /metrics on
/// server.metrics_address (port 0 picks a free port), READY=1 to systemd
/// (when NOTIFY_SOCKET is set), then one log line
///   "trouped <version> ready, serving grpc=<host:port> metrics=<host:port>"
/// with the bound addresses. A listener that cannot be bound is logged and
/// returns kExitListenFailed.
///
/// Before serving: the journal of `store:` is opened (a store that cannot be
/// opened throws: main logs it and exits 1) and recovered (one log line,
/// and one per troupe the store holds jobs of but the config lacks).
///
/// SIGTERM/SIGINT: health NOT_SERVING, STOPPING=1, new submits UNAVAILABLE,
/// accepted jobs finish up to server.drain_timeout (then, with the memory
/// store, ABORTED; with a durable one, running jobs are requeued and the
/// others left in the store for the next start), a summary line, gRPC
/// shutdown, 0. The store failing (a write or fsync error, a full disk):
/// one critical log line, the same drain, exit kExitStoreFailed. A second signal exits at once with
/// 128 + signal number. SIGHUP: reload `config_path` (invalid: every error
/// logged, the running config kept).
///
/// Threads: one io_context run by server.threads threads (0 = hardware
/// concurrency) carries core; gRPC runs its own threads; the calling thread
/// waits for the drain and then shuts the server down.
int run_daemon(const config::Config& config, const std::string& config_path);

}  // namespace troupe::daemon
