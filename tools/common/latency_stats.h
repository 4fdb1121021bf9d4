#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

namespace troupe::tools {

/// Exact latency statistics from every recorded sample (no binning).
/// Not thread-safe: each load slot records into its own instance and the
/// report merges them once the load has stopped.
class LatencyStats {
 public:
  void record(std::chrono::nanoseconds latency) { samples_.push_back(latency.count()); }
  void merge(const LatencyStats& other);

  std::size_t count() const { return samples_.size(); }
  /// Nearest-rank percentile, q in [0, 100]: the smallest sample such that at
  /// least q% of the samples are <= it. Zero when there is no sample.
  /// Sorts on first use after a change (const: the order is not observable).
  std::chrono::nanoseconds percentile(double q) const;
  std::chrono::nanoseconds min() const { return percentile(0); }
  std::chrono::nanoseconds max() const { return percentile(100); }
  std::chrono::nanoseconds mean() const;

 private:
  void sort() const;

  mutable std::vector<std::int64_t> samples_;
  mutable std::size_t sorted_size_ = 0;
};

}  // namespace troupe::tools
