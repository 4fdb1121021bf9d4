#include "daemon/cluster_gauges.h"

#include <algorithm>
#include <cstdint>

namespace troupe::daemon {

ClusterGauges::ClusterGauges(prometheus::Registry& r)
    : queue_depth_(prometheus::BuildGauge()
                       .Name("troupe_cluster_queue_depth")
                       .Help("QUEUED and RETRY_WAIT jobs of the troupe across every replica, from "
                             "the shared store (the same on every replica: aggregate with max).")
                       .Register(r)),
      oldest_queued_(prometheus::BuildGauge()
                         .Name("troupe_cluster_oldest_queued_seconds")
                         .Help("Age of the troupe's oldest QUEUED job across every replica, since "
                               "its submit; 0 when none is queued.")
                         .Register(r)),
      replicas_(prometheus::BuildGauge()
                    .Name("troupe_cluster_replicas")
                    .Help("Replicas whose lease in the shared store has not expired.")
                    .Register(r)
                    .Add({})) {}

void ClusterGauges::update(const core::ClusterLookup& lookup) {
  if (lookup.status != core::ClusterLookup::Status::kOk) return;
  const core::ClusterView& view = lookup.view;
  std::lock_guard lock(mutex_);
  std::map<std::string, Series> now;
  for (const auto& t : view.troupes) {
    auto it = series_.find(t.name);
    Series series = it != series_.end() ? it->second
                                        : Series{&queue_depth_.Add({{"troupe", t.name}}),
                                                 &oldest_queued_.Add({{"troupe", t.name}})};
    series.queue_depth->Set(static_cast<double>(t.queue_depth));
    const std::int64_t age_ns =
        t.oldest_queued_ns == 0 ? 0 : std::max<std::int64_t>(0, view.now_ns - t.oldest_queued_ns);
    series.oldest_queued->Set(static_cast<double>(age_ns) / 1e9);
    now.emplace(t.name, series);
  }
  for (const auto& [name, series] : series_) {
    if (now.contains(name)) continue;
    queue_depth_.Remove(series.queue_depth);
    oldest_queued_.Remove(series.oldest_queued);
  }
  series_ = std::move(now);
  replicas_.Set(static_cast<double>(std::count_if(view.replicas.begin(), view.replicas.end(),
                                                  [](const auto& r) { return r.alive; })));
}

}  // namespace troupe::daemon
