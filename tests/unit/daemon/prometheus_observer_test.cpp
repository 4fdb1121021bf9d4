#include "daemon/prometheus_observer.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <string>

#include "daemon/cluster_gauges.h"
#include "daemon/process_collector.h"

namespace troupe::daemon {
namespace {

using namespace std::chrono_literals;

std::string scrape(const PrometheusObserver& observer, bool with_process = false) {
  auto families = observer.registry()->Collect();
  if (with_process) {
    auto process = ProcessCollector().Collect();
    families.insert(families.end(), process.begin(), process.end());
  }
  return prometheus::TextSerializer().Serialize(families);
}

/// The value of the one sample whose line starts with `series` (name and
/// labels exactly as serialised); -1 when absent.
double sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

TEST(PrometheusObserver, CountsEventsPerTroupe) {
  PrometheusObserver observer("1.2.3");
  auto a = observer.troupe_added("alpha");
  auto b = observer.troupe_added("beta");
  for (int i = 0; i < 5; ++i) a->job_submitted();
  b->job_submitted();
  a->job_rejected(core::RejectReason::kFull);
  a->job_rejected(core::RejectReason::kFull);
  a->job_rejected(core::RejectReason::kRateLimited);
  a->job_completed(core::JobState::kSucceeded);
  a->job_completed(core::JobState::kSucceeded);
  a->job_completed(core::JobState::kAborted);
  a->attempt_finished(core::FailureClass::kNone, 2ms);
  a->attempt_finished(core::FailureClass::kTimeout, 30s);
  a->queue_wait(150us);
  a->mailbox(7, 400);
  a->actors(4, 3);
  a->actor_restarted();
  a->circuit_changed(core::CircuitState::kOpen);
  a->autoscaled(core::ScaleDirection::kUp, 5);
  a->degraded_changed(true);

  const auto text = scrape(observer);
  EXPECT_EQ(sample(text, R"(troupe_jobs_submitted_total{troupe="alpha"})"), 5);
  EXPECT_EQ(sample(text, R"(troupe_jobs_submitted_total{troupe="beta"})"), 1);
  EXPECT_EQ(sample(text, R"(troupe_jobs_rejected_total{reason="full",troupe="alpha"})"), 2);
  EXPECT_EQ(sample(text, R"(troupe_jobs_rejected_total{reason="rate_limited",troupe="alpha"})"), 1);
  EXPECT_EQ(sample(text, R"(troupe_jobs_completed_total{outcome="succeeded",troupe="alpha"})"), 2);
  EXPECT_EQ(sample(text, R"(troupe_jobs_completed_total{outcome="aborted",troupe="alpha"})"), 1);
  EXPECT_EQ(sample(text, R"(troupe_jobs_completed_total{outcome="dead",troupe="alpha"})"), 0);
  EXPECT_EQ(sample(text, R"(troupe_job_attempts_total{outcome="success",troupe="alpha"})"), 1);
  EXPECT_EQ(sample(text, R"(troupe_job_attempts_total{outcome="timeout",troupe="alpha"})"), 1);
  EXPECT_EQ(sample(text, R"(troupe_job_run_seconds_count{troupe="alpha"})"), 2);
  EXPECT_EQ(sample(text, R"(troupe_job_run_seconds_bucket{troupe="alpha",le="0.0025"})"), 1);
  EXPECT_EQ(sample(text, R"(troupe_job_run_seconds_bucket{troupe="alpha",le="+Inf"})"), 2);
  EXPECT_EQ(sample(text, R"(troupe_job_queue_wait_seconds_bucket{troupe="alpha",le="0.0001"})"), 0);
  EXPECT_EQ(sample(text, R"(troupe_job_queue_wait_seconds_bucket{troupe="alpha",le="0.00025"})"),
            1);
  EXPECT_EQ(sample(text, R"(troupe_mailbox_depth{troupe="alpha"})"), 7);
  EXPECT_EQ(sample(text, R"(troupe_mailbox_capacity{troupe="alpha"})"), 400);
  EXPECT_EQ(sample(text, R"(troupe_actors{troupe="alpha"})"), 5);  // autoscaled after actors()
  EXPECT_EQ(sample(text, R"(troupe_actors_busy{troupe="alpha"})"), 3);
  EXPECT_EQ(sample(text, R"(troupe_actor_restarts_total{troupe="alpha"})"), 1);
  EXPECT_EQ(sample(text, R"(troupe_circuit_state{troupe="alpha"})"), 2);
  EXPECT_EQ(sample(text, R"(troupe_circuit_transitions_total{to="open",troupe="alpha"})"), 1);
  EXPECT_EQ(sample(text, R"(troupe_autoscale_events_total{direction="up",troupe="alpha"})"), 1);
  EXPECT_EQ(sample(text, R"(troupe_autoscale_events_total{direction="down",troupe="alpha"})"), 0);
  EXPECT_EQ(sample(text, R"(troupe_degraded{troupe="alpha"})"), 1);
  EXPECT_EQ(sample(text, R"(troupe_build_info{version="1.2.3"})"), 1);
}

TEST(PrometheusObserver, ReaddedTroupeContinuesItsCounters) {
  PrometheusObserver observer("x");
  auto first = observer.troupe_added("t");
  first->job_submitted();
  first->job_submitted();  // a removed troupe still drains: its events count
  auto second = observer.troupe_added("t");
  second->job_submitted();
  first->removed();
  EXPECT_EQ(sample(scrape(observer), R"(troupe_jobs_submitted_total{troupe="t"})"), 3);
}

TEST(PrometheusObserver, GaugesFollowTheNewestGenerationOfATroupe) {
  PrometheusObserver observer("x");
  auto old = observer.troupe_added("t");
  old->actors(4, 1);
  auto fresh = observer.troupe_added("t");  // removed, then added again while it drains
  fresh->actors(2, 0);
  fresh->mailbox(0, 32);
  old->actors(4, 4);
  old->mailbox(9, 64);
  old->circuit_changed(core::CircuitState::kOpen);
  old->degraded_changed(true);
  old->autoscaled(core::ScaleDirection::kDown, 3);
  auto text = scrape(observer);
  EXPECT_EQ(sample(text, R"(troupe_actors{troupe="t"})"), 2);
  EXPECT_EQ(sample(text, R"(troupe_actors_busy{troupe="t"})"), 0);
  EXPECT_EQ(sample(text, R"(troupe_mailbox_capacity{troupe="t"})"), 32);
  EXPECT_EQ(sample(text, R"(troupe_circuit_state{troupe="t"})"), 0);
  EXPECT_EQ(sample(text, R"(troupe_degraded{troupe="t"})"), 0);
  // Its events still count.
  EXPECT_EQ(sample(text, R"(troupe_circuit_transitions_total{to="open",troupe="t"})"), 1);
  EXPECT_EQ(sample(text, R"(troupe_autoscale_events_total{direction="down",troupe="t"})"), 1);
  old->removed();  // the old generation drained: the new one keeps the gauges
  fresh->actors(3, 1);
  EXPECT_EQ(sample(scrape(observer), R"(troupe_actors{troupe="t"})"), 3);
}

TEST(PrometheusObserver, CountsUnknownTroupesInOneSeriesWithoutATroupeLabel) {
  PrometheusObserver observer("1.2.3");
  observer.troupe_added("alpha");
  observer.unknown_troupe_rejected();
  observer.unknown_troupe_rejected();
  const auto text = scrape(observer);
  EXPECT_EQ(sample(text, R"(troupe_jobs_rejected_total{reason="unknown_troupe"})"), 2);
  // A hosted troupe never rejects for that reason: no series that cannot move.
  EXPECT_EQ(sample(text, R"(troupe_jobs_rejected_total{reason="unknown_troupe",troupe="alpha"})"),
            -1);
  EXPECT_EQ(sample(text, R"(troupe_jobs_rejected_total{reason="full",troupe="alpha"})"), 0);
}

TEST(StoreMetrics, PublishesWhatTheJournalAndRecoveryReport) {
  PrometheusObserver observer("1.2.3");
  StoreMetrics store(*observer.registry());
  store.committed(2ms, 40, 10);
  store.committed(4ms, 8, 8);
  store.store_bytes(1 << 20);
  store.rows(core::JobState::kQueued, 7);
  store.rows(core::JobState::kDead, 2);
  store.expired(5);
  store.expired(1);
  core::RecoveryReport report;
  report.queued = 3;
  report.retry_waiting = 2;
  report.crashed = 1;
  report.terminal = 9;
  report.orphaned = {{"gone", 4}, {"old", 1}};
  report.took = 250ms;
  store.recovered(report);
  std::string text = scrape(observer);
  EXPECT_EQ(sample(text, "troupe_store_commit_seconds_count"), 2);
  EXPECT_DOUBLE_EQ(sample(text, "troupe_store_commit_seconds_sum"), 0.006);
  EXPECT_EQ(sample(text, "troupe_store_jobs_per_commit_sum"), 48);
  EXPECT_EQ(sample(text, "troupe_store_bytes"), 1 << 20);
  EXPECT_EQ(sample(text, "troupe_store_rows{state=\"queued\"}"), 7);
  EXPECT_EQ(sample(text, "troupe_store_rows{state=\"dead\"}"), 2);
  EXPECT_EQ(sample(text, "troupe_store_expired_rows_total"), 6);
  EXPECT_EQ(sample(text, "troupe_store_recovered_jobs{state=\"queued\"}"), 3);
  EXPECT_EQ(sample(text, "troupe_store_recovered_jobs{state=\"retry_wait\"}"), 2);
  EXPECT_EQ(sample(text, "troupe_store_recovered_jobs{state=\"crashed\"}"), 1);
  EXPECT_EQ(sample(text, "troupe_store_recovered_jobs{state=\"terminal\"}"), 9);
  EXPECT_DOUBLE_EQ(sample(text, "troupe_store_recovery_seconds"), 0.25);
  EXPECT_EQ(sample(text, "troupe_store_orphaned_jobs"), 5);
  EXPECT_EQ(sample(text, "troupe_store_failed"), 0);
  EXPECT_EQ(sample(text, "troupe_store_available"), 1);
  store.available(false);
  EXPECT_EQ(sample(scrape(observer), "troupe_store_available"), 0);
  store.available(true);
  EXPECT_EQ(sample(scrape(observer), "troupe_store_available"), 1);
  store.failed();
  text = scrape(observer);
  EXPECT_EQ(sample(text, "troupe_store_failed"), 1);
  EXPECT_EQ(sample(text, "troupe_store_available"), 0);
}

TEST(PrometheusObserver, HistogramBucketsSpanSubMillisecondToMinutes) {
  const auto& b = PrometheusObserver::duration_buckets();
  ASSERT_FALSE(b.empty());
  EXPECT_LE(b.front(), 0.0001);
  EXPECT_GE(b.back(), 120.0);
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
}

TEST(ProcessCollector, ReportsProcessFigures) {
  const auto families = ProcessCollector().Collect();
  std::map<std::string, double> values;
  for (const auto& f : families) {
    ASSERT_EQ(f.metric.size(), 1u);
    values[f.name] = f.type == prometheus::MetricType::Counter ? f.metric[0].counter.value
                                                               : f.metric[0].gauge.value;
  }
  EXPECT_GT(values["process_resident_memory_bytes"], 1e5);
  EXPECT_GE(values["process_open_fds"], 3);  // stdin, stdout, stderr at least
  EXPECT_TRUE(values.contains("process_cpu_seconds_total"));
  EXPECT_GT(values["process_start_time_seconds"], 1.6e9);
}

TEST(PrometheusObserver, ExpositionPassesPromtool) {
#ifndef TROUPE_PROMTOOL
  GTEST_SKIP() << "promtool not found at configure time";
#else
  PrometheusObserver observer("0.1.0");
  auto t = observer.troupe_added("t");
  t->job_submitted();
  t->attempt_finished(core::FailureClass::kNone, 1ms);
  t->job_completed(core::JobState::kSucceeded);
  observer.unknown_troupe_rejected();
  const auto path = ::testing::TempDir() + "/metrics.txt";
  std::ofstream(path) << scrape(observer, true);
  const std::string command = std::string(TROUPE_PROMTOOL) + " check metrics < " + path + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[256];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) output += buf;
  const int status = pclose(pipe);
  EXPECT_EQ(status, 0) << output;
  EXPECT_EQ(output, "") << output;  // not even lint warnings
#endif
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
  PrometheusObserver observer("1.2.3");
  ClusterGauges gauges(*observer.registry());
  gauges.update(view({{.name = "mail",
                       .queue_depth = 42,
                       .running = 3,
                       .oldest_queued_ns = 1000 * kSecond - 7 * kSecond / 2},
                      {.name = "pdf", .queue_depth = 0, .running = 1}},
                     2, 1));
  std::string text = scrape(observer);
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
  EXPECT_EQ(scrape(observer), text);

  // pdf has nothing left and is not hosted here: its series go.
  gauges.update(view({{.name = "mail", .queue_depth = 5}}, 3, 0));
  text = scrape(observer);
  EXPECT_EQ(sample(text, "troupe_cluster_queue_depth{troupe=\"mail\"}"), 5);
  EXPECT_EQ(sample(text, "troupe_cluster_oldest_queued_seconds{troupe=\"mail\"}"), 0);
  EXPECT_EQ(sample(text, "troupe_cluster_queue_depth{troupe=\"pdf\"}"), -1);
  EXPECT_EQ(sample(text, "troupe_cluster_oldest_queued_seconds{troupe=\"pdf\"}"), -1);
  EXPECT_EQ(sample(text, "troupe_cluster_replicas"), 3);
}

}  // namespace
}  // namespace troupe::daemon
