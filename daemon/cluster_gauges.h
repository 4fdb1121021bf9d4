#pragma once

/// The cluster gauges, troupe_cluster_* (docs/metrics.md, docs/cluster.md):
/// what a shared store says about the whole cluster, for autoscaling on
/// queue depth rather than on one replica's view.

#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <map>
#include <mutex>
#include <string>

#include "core/journal.h"

namespace troupe::daemon {

/// troupe_cluster_queue_depth{troupe}, troupe_cluster_oldest_queued_seconds
/// {troupe} and troupe_cluster_replicas, set from a cluster view
/// (Runtime::cluster(), which the daemon asks every store.heartbeat; never
/// per scrape or per job). Every replica exports the same values: aggregate
/// them with max, not sum. Registered only with a shared store (kind
/// postgres). Thread-safe (update() takes a mutex; prometheus-cpp metrics
/// are thread-safe); never blocks on I/O. Owner: the daemon; `registry`
/// must outlive it.
class ClusterGauges {
 public:
  explicit ClusterGauges(prometheus::Registry& registry);

  /// A kOk lookup sets every gauge: the troupes of the view (those with
  /// unfinished jobs in the store and those hosted here), and removes the
  /// series of a troupe no longer in it; the replicas alive. Any other
  /// answer (the store did not answer) leaves the last values: see
  /// troupe_store_available.
  void update(const core::ClusterLookup& lookup);

 private:
  prometheus::Family<prometheus::Gauge>& queue_depth_;
  prometheus::Family<prometheus::Gauge>& oldest_queued_;
  prometheus::Gauge& replicas_;
  struct Series {
    prometheus::Gauge* queue_depth;
    prometheus::Gauge* oldest_queued;
  };
  std::mutex mutex_;
  std::map<std::string, Series> series_;  // the troupes with series; guarded by mutex_
};

}  // namespace troupe::daemon
