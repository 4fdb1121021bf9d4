#pragma once

/// Process figures (CPU seconds, memory, open fds) read from /proc/self on
/// every scrape, under the conventional process_* names.

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <vector>

namespace troupe::daemon {

/// A prometheus Collectable that reads /proc/self when scraped: no thread,
/// no timer. Collect() is thread-safe (it keeps no state). Figures it cannot
/// read (no /proc) are left out rather than reported as zero.
class ProcessCollector final : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace troupe::daemon
