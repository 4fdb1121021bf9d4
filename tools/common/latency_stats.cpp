#include "tools/common/latency_stats.h"

#include <algorithm>
#include <cmath>

namespace troupe::tools {

void LatencyStats::merge(const LatencyStats& other) {
  samples_.insert(samples_.end(), other.samples_.begin(), other.samples_.end());
}

void LatencyStats::sort() const {
  if (sorted_size_ == samples_.size()) return;
  std::sort(samples_.begin(), samples_.end());
  sorted_size_ = samples_.size();
}

std::chrono::nanoseconds LatencyStats::percentile(double q) const {
  if (samples_.empty()) return std::chrono::nanoseconds{0};
  sort();
  q = std::clamp(q, 0.0, 100.0);
  // Nearest rank: ceil(q/100 * n), 1-based; q = 0 is the minimum. The epsilon
  // keeps binary rounding (99.9 / 100 * 1000 = 999.0000001) from adding a rank.
  const auto n = static_cast<double>(samples_.size());
  auto rank = static_cast<std::size_t>(std::ceil(q * n / 100.0 - 1e-9));
  if (rank == 0) rank = 1;
  return std::chrono::nanoseconds{samples_[rank - 1]};
}

std::chrono::nanoseconds LatencyStats::mean() const {
  if (samples_.empty()) return std::chrono::nanoseconds{0};
  long double sum = 0;
  for (const auto s : samples_) sum += static_cast<long double>(s);
  return std::chrono::nanoseconds{
      static_cast<std::int64_t>(sum / static_cast<long double>(samples_.size()))};
}

}  // namespace troupe::tools
