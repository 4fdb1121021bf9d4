#pragma once

/// core::Observer backed by prometheus-cpp: the troupe_* metric families of
/// DESIGN.md, one series set per troupe (label `troupe`).

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "core/journal.h"
#include "core/observer.h"
#include "core/runtime.h"

namespace troupe::daemon {

/// Publishes core's events as Prometheus metrics in `registry()`. Every
/// metric of a troupe is resolved once in troupe_added(), so the hot-path
/// calls are an atomic add (histograms: prometheus-cpp's per-series lock).
/// Thread-safe. A removed troupe's series stay (counters keep their totals,
/// as Prometheus expects of counters) and are reused if it is added again:
/// its draining old generation and the new one then add to the same
/// counters, and the gauges (actors, mailbox, circuit, degraded) follow the
/// new one only.
class PrometheusObserver final : public core::Observer {
 public:
  /// Run-time and queue-wait buckets, seconds: 100us .. 5min.
  static const prometheus::Histogram::BucketBoundaries& duration_buckets();

  explicit PrometheusObserver(std::string_view version);
  ~PrometheusObserver() override;

  /// A new generation of `troupe`: counters and histograms continue the
  /// name's series; the gauges are this generation's from now on.
  std::shared_ptr<core::TroupeObserver> troupe_added(std::string_view troupe) override;
  /// troupe_jobs_rejected_total{reason="unknown_troupe"}, without a troupe
  /// label (the one series of that reason).
  void unknown_troupe_rejected() override;

  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

  /// The families, for TroupeMetrics. Owned by registry_.
  struct Families;
  /// One troupe name's series.
  class TroupeMetrics;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Families> families_;
  prometheus::Counter* unknown_troupe_ = nullptr;  // owned by registry_
  std::mutex mutex_;                               // guards troupes_
  std::map<std::string, std::shared_ptr<TroupeMetrics>, std::less<>> troupes_;
};

/// The store's metrics, troupe_store_* (docs/metrics.md), in `registry`:
/// what the journal reports (commit latency, entries per commit, bytes on
/// disk, rows by state, expired rows; called on its writer thread), what
/// recovery found (once, at start) and whether the journal failed.
/// Thread-safe (prometheus-cpp metrics are); never blocks.
class StoreMetrics final : public core::JournalObserver {
 public:
  /// Commit latency buckets, seconds: 50us .. 5s.
  static const prometheus::Histogram::BucketBoundaries& commit_buckets();
  /// Entries per commit: 1 .. 16384, powers of 4.
  static const prometheus::Histogram::BucketBoundaries& batch_buckets();

  explicit StoreMetrics(prometheus::Registry& registry);

  void committed(std::chrono::nanoseconds latency, std::size_t entries,
                 std::size_t accepted) override;
  void store_bytes(std::uint64_t bytes) override;
  void rows(core::JobState state, std::uint64_t count) override;
  void expired(std::uint64_t rows) override;

  /// What Runtime::recover() did (troupe_store_recovered_jobs{state},
  /// troupe_store_recovery_seconds, troupe_store_orphaned_jobs).
  void recovered(const core::RecoveryReport& report);
  /// troupe_store_failed 1: the journal failed (the process stops); the
  /// store is no longer available either.
  void failed();
  /// troupe_store_available: 1 while the store takes writes (always, for a
  /// store of one process until it fails); 0 while a shared store
  /// (kind postgres) is unreachable.
  void available(bool up);

 private:
  prometheus::Histogram& commit_seconds_;
  prometheus::Histogram& jobs_per_commit_;
  prometheus::Gauge& bytes_;
  prometheus::Family<prometheus::Gauge>& rows_;
  prometheus::Counter& expired_;
  prometheus::Family<prometheus::Gauge>& recovered_;
  prometheus::Gauge& recovery_seconds_;
  prometheus::Gauge& orphaned_;
  prometheus::Gauge& failed_;
  prometheus::Gauge& available_;
};

}  // namespace troupe::daemon
