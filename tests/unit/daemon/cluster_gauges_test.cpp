#include "daemon/cluster_gauges.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <sstream>
#include <string>

namespace troupe::daemon {
namespace {

std::string scrape(prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

/// The value of the sample `series` (name and labels as serialised); -1
/// when absent.
double sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

constexpr std::int64_t kSecond = 1'000'000'000;

core::ClusterLookup view(std::vector<core::ClusterTroupe> troupes, int alive, int dead) {
  core::ClusterLookup lookup;
  lookup.status = core::ClusterLookup::Status::kOk;
  lookup.view.now_ns = 1000 * kSecond;
  for (int i = 0; i < alive + dead; ++i) {
    lookup.view.replicas.push_back(core::ClusterReplica{
        .name = "r" + std::to_string(i), .incarnation = i + 1, .alive = i < alive});
  }
  lookup.view.troupes = std::move(troupes);
  return lookup;
}

TEST(ClusterGauges, SetFromTheViewAndDropTroupesThatLeftIt) {
  prometheus::Registry registry;
  ClusterGauges gauges(registry);
  gauges.update(view({{.name = "mail",
                       .queue_depth = 42,
                       .running = 3,
                       .oldest_queued_ns = 1000 * kSecond - 7 * kSecond / 2},
                      {.name = "pdf", .queue_depth = 0, .running = 1}},
                     2, 1));
  std::string text = scrape(registry);
  EXPECT_EQ(sample(text, "troupe_cluster_queue_depth{troupe=\"mail\"}"), 42);
  EXPECT_EQ(sample(text, "troupe_cluster_oldest_queued_seconds{troupe=\"mail\"}"), 3.5);
  EXPECT_EQ(sample(text, "troupe_cluster_queue_depth{troupe=\"pdf\"}"), 0);
  EXPECT_EQ(sample(text, "troupe_cluster_oldest_queued_seconds{troupe=\"pdf\"}"), 0);
  EXPECT_EQ(sample(text, "troupe_cluster_replicas"), 2);  // the expired one is not counted

  // The store did not answer: the last values stay.
  core::ClusterLookup down;
  down.status = core::ClusterLookup::Status::kUnavailable;
  down.error = "down";
  gauges.update(down);
  EXPECT_EQ(scrape(registry), text);

  // pdf has nothing left and is not hosted here: its series go.
  gauges.update(view({{.name = "mail", .queue_depth = 5}}, 3, 0));
  text = scrape(registry);
  EXPECT_EQ(sample(text, "troupe_cluster_queue_depth{troupe=\"mail\"}"), 5);
  EXPECT_EQ(sample(text, "troupe_cluster_oldest_queued_seconds{troupe=\"mail\"}"), 0);
  EXPECT_EQ(sample(text, "troupe_cluster_queue_depth{troupe=\"pdf\"}"), -1);
  EXPECT_EQ(sample(text, "troupe_cluster_oldest_queued_seconds{troupe=\"pdf\"}"), -1);
  EXPECT_EQ(sample(text, "troupe_cluster_replicas"), 3);
}

}  // namespace
}  // namespace troupe::daemon
