#include "daemon/daemon.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <prometheus/exposer.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "config/crypto.h"
#include "config/value_parsers.h"
#include "core/clock.h"
#include "core/runtime.h"
#include "daemon/admin_service.h"
#include "daemon/authorizer.h"
#include "daemon/cluster_gauges.h"
#include "daemon/grpc_runtime.h"
#include "daemon/health_observer.h"
#include "daemon/job_service.h"
#include "daemon/journal_factory.h"
#include "daemon/observer_fanout.h"
#include "daemon/process_collector.h"
#include "daemon/prometheus_observer.h"
#include "daemon/server_credentials.h"
#include "daemon/translation.h"
#include "daemon/version.h"
#include "handlers/exec/exec_handler.h"

namespace troupe::daemon {
namespace {

using namespace std::chrono_literals;

// How long gRPC may take to finish calls still open after the drain (idle
// SubmitStream clients, say) before they are cancelled.
constexpr auto kGrpcShutdownGrace = 1s;

int milliseconds(core::Duration d) {
  return static_cast<int>(std::min<std::int64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(d).count(), INT32_MAX));
}

/// server.grpc: streams per connection, keepalive, and a memory quota.
void apply_grpc_limits(const config::GrpcOptions& grpc, grpc::ServerBuilder& builder) {
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             static_cast<int>(grpc.max_concurrent_streams));
  // Ping a quiet connection (an idle WatchJob stream, a stopped client) and
  // close it when the ping goes unanswered; keep pinging while no data flows.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, milliseconds(grpc.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, milliseconds(grpc.keepalive_timeout));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // A client that pings more often than this is sent GOAWAY.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             milliseconds(grpc.min_client_ping_interval));
  grpc::ResourceQuota quota("trouped");
  quota.Resize(grpc.max_memory);
  builder.SetResourceQuota(quota);
}

std::string with_port(const std::string& address, int port) {
  const auto colon = address.rfind(':');
  return (colon == std::string::npos ? address : address.substr(0, colon)) + ":" +
         std::to_string(port);
}

std::string signal_name(int signo) {
  switch (signo) {
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGHUP:
      return "SIGHUP";
    default:
      return "signal " + std::to_string(signo);
  }
}

std::set<std::string> names(const std::vector<core::TroupeOptions>& troupes) {
  std::set<std::string> out;
  for (const auto& t : troupes) out.insert(t.name);
  return out;
}

std::string join(const std::vector<std::string>& items) {
  if (items.empty()) return "none";
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

/// server.insecure lets trouped listen off loopback without TLS and
/// authentication; say so loudly, once per listener exposed without them, at
/// start (not for a gRPC port that has TLS and authentication anyway).
void warn_if_exposed(const config::Config& config) {
  const config::ServerOptions& server = config.server;
  if (!server.insecure) return;
  const auto exposed = [](const std::string& address) {
    const auto parsed = config::parse_address(address).value;
    return parsed && !config::is_loopback(*parsed);
  };
  if (exposed(server.grpc_address) && !config::grpc_is_protected(config)) {
    spdlog::warn(
        "INSECURE (server.insecure: true): gRPC on {} is reachable from other machines without "
        "TLS and authentication; anyone who reaches it can submit, read and cancel jobs "
        "(docs/security.md)",
        server.grpc_address);
  }
  if (exposed(server.metrics_address)) {
    spdlog::warn(
        "INSECURE (server.insecure: true): /metrics on {} is reachable from other machines "
        "without TLS and basic auth (docs/security.md)",
        server.metrics_address);
  }
}

double as_seconds(core::Duration d) {
  return std::chrono::duration<double>(d).count();
}

/// Shuts down this process's listening TCP sockets on `ports`, so that a
/// thread waiting in poll() on one of them wakes at once.
// civetweb 1.15 (under prometheus::Exposer) has no wake-up for its accept
// loop: mg_stop() sets a flag and joins a thread that polls the listening
// socket with a 2 s timeout, so an idle trouped took up to 2 s to exit.
// civetweb does not expose the descriptor; it is found by its port.
void shut_listeners(const std::vector<int>& ports) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    const std::string name = entry.path().filename().string();
    int fd = -1;
    if (std::from_chars(name.data(), name.data() + name.size(), fd).ec != std::errc{}) continue;
    int listening = 0;
    socklen_t size = sizeof listening;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 || listening == 0) {
      continue;
    }
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) continue;
    int port = 0;
    if (address.ss_family == AF_INET) {
      port = ntohs(reinterpret_cast<const sockaddr_in&>(address).sin_port);
    } else if (address.ss_family == AF_INET6) {
      port = ntohs(reinterpret_cast<const sockaddr_in6&>(address).sin6_port);
    }
    if (port != 0 && std::find(ports.begin(), ports.end(), port) != ports.end()) {
      ::shutdown(fd, SHUT_RDWR);
    }
  }
}

/// Owns every long-lived object of the process, in construction order.
/// Signals are handled on the io_context; the thread that calls run() waits
/// for the drain to finish and then shuts gRPC down (never from an io thread:
/// Shutdown waits for callbacks that may need those threads).
class Daemon {
 public:
  Daemon(const config::Config& config, std::string config_path)
      : config_(config),
        config_path_(std::move(config_path)),
        clock_(core::make_steady_clock()),
        metrics_(kVersion),
        observer_(metrics_, health_),
        authorizer_(config.auth, *metrics_.registry()),
        signals_(io_, SIGTERM, SIGINT, SIGHUP) {}

  // A start that threw (the store's recovery, say) never reached stop(): the
  // writer stops before the runtime its failure handler calls into goes.
  ~Daemon() {
    if (journal_) journal_->close();
  }
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  int run() {
    journal_ = open_journal(config_, &store_metrics_);
    if (journal_->durable()) {
      spdlog::info("{}", describe_store(config_.store));
    } else {
      spdlog::warn("{}", describe_store(config_.store));
    }
    runtime_ = core::make_runtime(io_, *clock_, observer_, config_.runtime, *journal_);
    // On the journal's writer thread: the rest happens on an io thread.
    runtime_->on_journal_failure([this](const core::JournalFailure& failure) {
      boost::asio::post(io_, [this, message = failure.message] { on_store_failure(message); });
    });
    // On the journal's thread, inline: posting could reorder a quick
    // down/up pair across io threads.
    runtime_->on_store_availability(
        [this](bool up, const std::string& why) { on_store_availability(up, why); });
    runtime_->apply(config_.troupes);
    log_recovery(runtime_->recover());
    if (journal_->shared()) {
      cluster_gauges_ = std::make_unique<ClusterGauges>(*metrics_.registry());
      refresh_cluster_gauges();
    }

    const std::uint32_t threads = config_.server.threads != 0
                                      ? config_.server.threads
                                      : std::max(1u, std::thread::hardware_concurrency());
    auto work = boost::asio::make_work_guard(io_);
    wait_for_signal();
    threads_.reserve(threads);
    for (std::uint32_t i = 0; i < threads; ++i) threads_.emplace_back([this] { io_.run(); });

    warn_if_exposed(config_);
    const bool started = start_listeners();
    if (started) {
      sd_notify(0, "READY=1\nSTATUS=serving");
      spdlog::info("trouped {} ready, serving grpc={} metrics={} ({} troupes, {} core threads)",
                   kVersion, grpc_address_, metrics_address_, config_.troupes.size(), threads);
      stopped_.get_future().wait();
    }
    stop(work);
    return started ? exit_code_.load() : kExitListenFailed;
  }

 private:
  bool start_listeners() {
    grpc::EnableDefaultHealthCheckService(true);
    if (config_.server.reflection) grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    job_service_ = std::make_unique<JobServiceImpl>(
        *runtime_, config_.server.limits, config_.runtime.max_listeners_per_job, authorizer_);
    admin_service_ = std::make_unique<AdminServiceImpl>(*runtime_, authorizer_);

    grpc::ServerBuilder builder;
    int grpc_port = 0;
    builder.AddListeningPort(config_.server.grpc_address,
                             make_server_credentials(config_.server.tls), &grpc_port);
    // Without this a port taken by another SO_REUSEPORT socket binds
    // silently and the two servers split the traffic.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.SetMaxReceiveMessageSize(max_receive_message_bytes(config_.server.limits));
    apply_grpc_limits(config_.server.grpc, builder);
    builder.RegisterService(job_service_.get());
    builder.RegisterService(admin_service_.get());
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || grpc_port == 0) {
      spdlog::error(
          "cannot listen for gRPC on {} (server.grpc_address): the port is taken or the "
          "address is not local; free it or choose another address",
          config_.server.grpc_address);
      return false;
    }
    grpc_address_ = with_port(config_.server.grpc_address, grpc_port);
    health_.attach(*server_->GetHealthCheckService());

    try {
      exposer_ = std::make_unique<prometheus::Exposer>(config_.server.metrics_address);
    } catch (const std::exception& e) {
      spdlog::error(
          "cannot serve metrics on {} (server.metrics_address): {}; free the port or choose "
          "another address",
          config_.server.metrics_address, e.what());
      return false;
    }
    if (const auto& auth = config_.server.metrics_auth; auth.enabled()) {
      // Called on civetweb's threads; owns copies of what it compares.
      exposer_->RegisterAuth(
          [username = auth.username, hash = *auth.password_sha256](const std::string& user,
                                                                   const std::string& password) {
            const auto presented = config::sha256(password);
            const bool password_ok = CRYPTO_memcmp(presented.data(), hash.data(), hash.size()) == 0;
            return password_ok && user == username;
          },
          "trouped", "/metrics");
    }
    exposer_->RegisterCollectable(metrics_.registry());
    exposer_->RegisterCollectable(process_);
    const auto ports = exposer_->GetListeningPorts();
    metrics_address_ = with_port(config_.server.metrics_address, ports.empty() ? 0 : ports.front());
    return true;
  }

  // The cluster gauges from the shared store: now, then every heartbeat
  // (docs/cluster.md); the answer arrives on the journal's thread.
  void refresh_cluster_gauges() {
    runtime_->cluster(
        [gauges = cluster_gauges_.get()](core::ClusterLookup lookup) { gauges->update(lookup); });
    cluster_timer_.expires_after(config_.store.postgres.heartbeat);
    cluster_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) refresh_cluster_gauges();
    });
  }

  void wait_for_signal() {
    signals_.async_wait([this](const boost::system::error_code& ec, int signo) {
      if (ec) return;  // cancelled at shutdown
      on_signal(signo);
      wait_for_signal();
    });
  }

  void log_recovery(const core::RecoveryReport& r) {
    store_metrics_.recovered(r);
    if (!journal_->durable()) return;
    spdlog::info(
        "recovered from the store in {:.3f}s: {} queued, {} waiting to retry ({} of them were "
        "running: counted as a crash), {} ended DEAD after a crash, {} finished jobs kept for "
        "GetJob and idempotency keys",
        as_seconds(r.took), r.queued, r.retry_waiting, r.crashed - r.crashed_dead, r.crashed_dead,
        r.terminal);
    for (const auto& [troupe, count] : r.orphaned) {
      spdlog::warn(
          "the store holds {} jobs of troupe {}, which the configuration no longer has: kept in "
          "the store, not loaded (add the troupe back to run them)",
          count, troupe);
    }
  }

  // Runs on an io thread: the journal failed for good.
  void on_store_failure(const std::string& message) {
    store_metrics_.failed();
    exit_code_ = kExitStoreFailed;
    spdlog::critical(
        "the job store failed: {}; no job can be made durable any more: new submits get "
        "UNAVAILABLE, trouped drains (up to {}s) and exits with status {} so that its supervisor "
        "restarts it and recovery runs",
        message, as_seconds(config_.server.drain_timeout), kExitStoreFailed);
    if (draining_.exchange(true)) return;  // already draining: it exits with the status above
    begin_drain();
  }

  // Runs on the journal's thread: a shared store went away or came back
  // (transient, unlike on_store_failure). Logged once per change.
  void on_store_availability(bool up, const std::string& why) {
    store_metrics_.available(up);
    if (!health_.store_available(up)) return;
    if (up) {
      spdlog::info("the job store is reachable again: submits are accepted, health is SERVING");
    } else {
      spdlog::warn(
          "the job store is unreachable: {}; new submits get UNAVAILABLE and health is "
          "NOT_SERVING until it is back; trouped reconnects by itself, running jobs keep running "
          "and their results are written once it is back",
          why);
    }
  }

  // Runs on an io thread; signal handlers are serialised by the wait chain.
  void on_signal(int signo) {
    if (signo == SIGHUP) {
      if (draining_) {
        spdlog::warn("SIGHUP ignored: trouped is draining");
      } else {
        reload();
      }
      return;
    }
    if (draining_.exchange(true)) {
      // Job processes run in process groups of their own: kill them first,
      // or they outlive trouped.
      const std::size_t killed = core::kill_exec_process_groups();
      spdlog::warn("second {} while draining: stopping at once ({} running job processes killed)",
                   signal_name(signo), killed);
      spdlog::default_logger()->flush();
      std::_Exit(128 + signo);
    }
    spdlog::info(
        "{}: stopping; draining for up to {}s, new submits get UNAVAILABLE; send it again to "
        "stop at once",
        signal_name(signo), as_seconds(config_.server.drain_timeout));
    begin_drain();
  }

  void begin_drain() {
    health_.set_draining();
    sd_notify(0, "STOPPING=1\nSTATUS=draining");
    runtime_->drain(config_.server.drain_timeout, [this](core::DrainReport report) {
      if (report.deadline_reached && journal_->durable()) {
        spdlog::warn(
            "drain deadline reached: {} jobs finished, {} running jobs cancelled and requeued; "
            "{} jobs left in the store for the next start (they run again after a restart)",
            report.finished, report.cancelled, report.left);
      } else if (report.deadline_reached) {
        spdlog::warn(
            "drain deadline reached: {} jobs finished, {} running jobs cancelled and {} waiting "
            "jobs aborted (ABORTED: {} in total)",
            report.finished, report.cancelled, report.aborted, report.cancelled + report.aborted);
      } else {
        spdlog::info("drained: {} jobs finished, none aborted", report.finished);
      }
      stopped_.set_value();
    });
  }

  void reload() {
    spdlog::info("SIGHUP: reloading {}", config_path_);
    auto loaded = config::load_file(config_path_);
    if (!loaded.config) {
      spdlog::error("reload refused: {} has {} error(s); the running config stays", config_path_,
                    loaded.errors.size());
      for (const auto& error : loaded.errors) spdlog::error("  {}", error.to_string());
      return;
    }
    const auto& next = *loaded.config;
    if (next.store != config_.store) {
      spdlog::error(
          "reload refused: store: changed ({} -> {}); the store is opened only at start, so "
          "restart trouped to use another one; the running config stays",
          describe_store(config_.store), describe_store(next.store));
      return;
    }
    const auto& now = config_.server;
    // Every server setting but drain_timeout applies only at start.
    config::ServerOptions at_start = next.server;
    at_start.drain_timeout = now.drain_timeout;
    if (at_start != now ||
        next.runtime.max_listeners_per_job != config_.runtime.max_listeners_per_job) {
      spdlog::warn(
          "reload: server addresses, insecure, tls, metrics_auth, reflection, threads, limits and "
          "grpc settings apply only at start; restart trouped to change them "
          "(server.drain_timeout, auth and troupes apply now)");
    }
    if (now.tls.enabled()) {
      spdlog::info(
          "reload: {} and {} hold a matching certificate and key; gRPC serves new connections "
          "with them within {}s (server.tls.refresh_interval), open connections keep theirs",
          now.tls.cert_file, now.tls.key_file, as_seconds(now.tls.refresh_interval));
    }
    const auto before = names(config_.troupes);
    const auto after = names(next.troupes);
    std::vector<std::string> added;
    std::vector<std::string> removed;
    std::set_difference(after.begin(), after.end(), before.begin(), before.end(),
                        std::back_inserter(added));
    std::set_difference(before.begin(), before.end(), after.begin(), after.end(),
                        std::back_inserter(removed));
    warn_unchanged_at_creation(next.troupes);
    runtime_->apply(next.troupes);
    if (next.auth != config_.auth) {
      authorizer_.update(next.auth);
      config_.auth = next.auth;
      spdlog::info("reload: auth now has {} identities (new calls are checked against them)",
                   next.auth.identities.size());
    }
    // A removed troupe refuses new jobs at once, though core reports it gone
    // only once it has drained: health says so now.
    for (const auto& name : removed) health_.troupe_removed(name);
    config_.troupes = next.troupes;
    config_.server.drain_timeout = next.server.drain_timeout;
    spdlog::info("reloaded {}: {} troupes; added: {}; removed (draining): {}", config_path_,
                 next.troupes.size(), join(added), join(removed));
  }

  /// A troupe's `dispatch` and `cluster:` are read when it is created (its
  /// dispatcher, its coordination in a shared store): a reload that changes
  /// them for a troupe that stays says so rather than ignoring them quietly.
  void warn_unchanged_at_creation(const std::vector<core::TroupeOptions>& next) const {
    for (const auto& t : next) {
      auto was = std::find_if(config_.troupes.begin(), config_.troupes.end(),
                              [&](const core::TroupeOptions& o) { return o.name == t.name; });
      if (was == config_.troupes.end()) continue;
      if (was->dispatch != t.dispatch || was->cluster != t.cluster) {
        spdlog::warn(
            "reload: troupe {}: dispatch and cluster are read when the troupe is created and stay "
            "as they were; remove the troupe and add it back (two reloads), or restart trouped, "
            "to change them (the rest of its settings apply now)",
            t.name);
      }
    }
  }

  void stop(boost::asio::executor_work_guard<boost::asio::io_context::executor_type>& work) {
    health_.detach();
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + kGrpcShutdownGrace);
    if (exposer_) {
      shut_listeners(exposer_->GetListeningPorts());
      exposer_.reset();
    }
    boost::system::error_code ignored;
    signals_.cancel(ignored);
    cluster_timer_.cancel();
    work.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
    server_.reset();
    // Commits what is pending (terminal states, requeues) and stops the
    // writer, before the runtime its failure handler calls into goes.
    journal_->close();
    runtime_.reset();
    journal_.reset();
    spdlog::info("trouped stopped");
  }

  config::Config config_;
  const std::string config_path_;
  boost::asio::io_context io_;
  std::unique_ptr<core::Clock> clock_;
  PrometheusObserver metrics_;
  HealthObserver health_;
  ObserverFanout observer_;
  StoreMetrics store_metrics_{*metrics_.registry()};
  Authorizer authorizer_;
  std::shared_ptr<ProcessCollector> process_ = std::make_shared<ProcessCollector>();
  std::unique_ptr<ClusterGauges> cluster_gauges_;  // shared store only; outlives the journal
  std::unique_ptr<core::Journal> journal_;         // outlives the runtime
  std::unique_ptr<core::Runtime> runtime_;
  std::unique_ptr<JobServiceImpl> job_service_;
  std::unique_ptr<AdminServiceImpl> admin_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer cluster_timer_{io_};
  std::vector<std::thread> threads_;
  std::promise<void> stopped_;
  std::atomic<bool> draining_{false};  // set by the first signal or the store's failure
  std::atomic<int> exit_code_{0};      // kExitStoreFailed once the store failed
  std::string grpc_address_;
  std::string metrics_address_;
};

}  // namespace

int run_daemon(const config::Config& config, const std::string& config_path) {
  configure_grpc_process();
  Daemon daemon(config, config_path);
  return daemon.run();
}

}  // namespace troupe::daemon
