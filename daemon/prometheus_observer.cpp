#include "daemon/prometheus_observer.h"

#include <array>
#include <atomic>
#include <chrono>

namespace troupe::daemon {

struct PrometheusObserver::Families {
  prometheus::Family<prometheus::Counter>& submitted;
  prometheus::Family<prometheus::Counter>& rejected;
  prometheus::Family<prometheus::Counter>& completed;
  prometheus::Family<prometheus::Counter>& attempts;
  prometheus::Family<prometheus::Histogram>& run_seconds;
  prometheus::Family<prometheus::Histogram>& queue_wait_seconds;
  prometheus::Family<prometheus::Gauge>& mailbox_depth;
  prometheus::Family<prometheus::Gauge>& mailbox_capacity;
  prometheus::Family<prometheus::Gauge>& actors;
  prometheus::Family<prometheus::Gauge>& actors_busy;
  prometheus::Family<prometheus::Counter>& actor_restarts;
  prometheus::Family<prometheus::Gauge>& circuit_state;
  prometheus::Family<prometheus::Counter>& circuit_transitions;
  prometheus::Family<prometheus::Counter>& autoscale_events;
  prometheus::Family<prometheus::Gauge>& degraded;
  prometheus::Family<prometheus::Counter>& supervisor_events;
  prometheus::Family<prometheus::Counter>& illegal_transitions;
  prometheus::Family<prometheus::Gauge>& build_info;
};

namespace {

// A troupe's own reasons; kUnknownTroupe has one series for the daemon.
constexpr std::array kRejectReasons = {
    core::RejectReason::kFull,           core::RejectReason::kDraining,
    core::RejectReason::kCircuitOpen,    core::RejectReason::kRateLimited,
    core::RejectReason::kStoreFull,      core::RejectReason::kDegraded,
    core::RejectReason::kTimeoutOverMax, core::RejectReason::kStoreUnavailable};
// Indexed by the reason's value: every reason has a slot, unused ones stay null.
constexpr std::size_t kRejectSlots =
    static_cast<std::size_t>(core::RejectReason::kStoreUnavailable) + 1;
constexpr std::array kTerminalStates = {core::JobState::kSucceeded, core::JobState::kFailed,
                                        core::JobState::kDead, core::JobState::kCancelled,
                                        core::JobState::kAborted};
constexpr std::array kFailureClasses = {
    core::FailureClass::kNone,    core::FailureClass::kRetryable, core::FailureClass::kPermanent,
    core::FailureClass::kTimeout, core::FailureClass::kCrash,     core::FailureClass::kCancelled};
constexpr std::array kCircuitStates = {core::CircuitState::kClosed, core::CircuitState::kOpen,
                                       core::CircuitState::kHalfOpen};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string attempt_outcome(core::FailureClass c) {
  return c == core::FailureClass::kNone ? "success" : std::string(core::to_string(c));
}

/// The value of troupe_circuit_state, ordered by severity.
double circuit_value(core::CircuitState s) {
  switch (s) {
    case core::CircuitState::kClosed:
      return 0;
    case core::CircuitState::kHalfOpen:
      return 1;
    case core::CircuitState::kOpen:
      return 2;
  }
  return 0;
}

double seconds(core::Duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

/// One troupe name's series, resolved once, shared by the name's
/// generations. Thread-safe (prometheus-cpp metrics are).
class PrometheusObserver::TroupeMetrics final {
 public:
  TroupeMetrics(PrometheusObserver::Families& f, const std::string& troupe)
      : submitted_(f.submitted.Add({{"troupe", troupe}})),
        run_seconds_(
            f.run_seconds.Add({{"troupe", troupe}}, PrometheusObserver::duration_buckets())),
        queue_wait_seconds_(
            f.queue_wait_seconds.Add({{"troupe", troupe}}, PrometheusObserver::duration_buckets())),
        mailbox_depth_(f.mailbox_depth.Add({{"troupe", troupe}})),
        mailbox_capacity_(f.mailbox_capacity.Add({{"troupe", troupe}})),
        actors_(f.actors.Add({{"troupe", troupe}})),
        actors_busy_(f.actors_busy.Add({{"troupe", troupe}})),
        actor_restarts_(f.actor_restarts.Add({{"troupe", troupe}})),
        circuit_state_(f.circuit_state.Add({{"troupe", troupe}})),
        degraded_(f.degraded.Add({{"troupe", troupe}})),
        autoscale_up_(f.autoscale_events.Add({{"troupe", troupe}, {"direction", "up"}})),
        autoscale_down_(f.autoscale_events.Add({{"troupe", troupe}, {"direction", "down"}})),
        give_ups_(f.supervisor_events.Add({{"troupe", troupe}, {"event", "give_up"}})),
        recoveries_(f.supervisor_events.Add({{"troupe", troupe}, {"event", "recovery"}})),
        illegal_(f.illegal_transitions.Add({{"troupe", troupe}})) {
    for (auto r : kRejectReasons) {
      rejected_[static_cast<std::size_t>(r)] =
          &f.rejected.Add({{"troupe", troupe}, {"reason", std::string(core::to_string(r))}});
    }
    for (auto s : kTerminalStates) {
      completed_[index(s)] =
          &f.completed.Add({{"troupe", troupe}, {"outcome", lower(core::to_string(s))}});
    }
    for (auto c : kFailureClasses) {
      attempts_[static_cast<std::size_t>(c)] =
          &f.attempts.Add({{"troupe", troupe}, {"outcome", attempt_outcome(c)}});
    }
    for (auto s : kCircuitStates) {
      transitions_[static_cast<std::size_t>(s)] =
          &f.circuit_transitions.Add({{"troupe", troupe}, {"to", std::string(core::to_string(s))}});
    }
  }

  void job_submitted() { submitted_.Increment(); }
  void job_rejected(core::RejectReason reason) {
    // kUnknownTroupe never comes from a troupe (it has no slot here).
    if (auto* c = rejected_.at(static_cast<std::size_t>(reason))) c->Increment();
  }
  void job_completed(core::JobState terminal) {
    if (core::is_terminal(terminal)) completed_.at(index(terminal))->Increment();
  }
  void attempt_finished(core::FailureClass outcome, core::Duration run_time) {
    attempts_.at(static_cast<std::size_t>(outcome))->Increment();
    run_seconds_.Observe(seconds(run_time));
  }
  void queue_wait(core::Duration waited) { queue_wait_seconds_.Observe(seconds(waited)); }
  void mailbox(std::uint64_t depth, std::uint64_t capacity) {
    mailbox_depth_.Set(static_cast<double>(depth));
    mailbox_capacity_.Set(static_cast<double>(capacity));
  }
  void actors(std::uint32_t total, std::uint32_t busy) {
    actors_.Set(total);
    actors_busy_.Set(busy);
  }
  void actor_restarted() { actor_restarts_.Increment(); }
  void circuit_transition(core::CircuitState to) {
    transitions_.at(static_cast<std::size_t>(to))->Increment();
  }
  void circuit_state(core::CircuitState s) { circuit_state_.Set(circuit_value(s)); }
  void degraded_changed(bool degraded) { degraded_.Set(degraded ? 1 : 0); }
  void autoscaled(core::ScaleDirection direction) {
    (direction == core::ScaleDirection::kUp ? autoscale_up_ : autoscale_down_).Increment();
  }
  void actors_now(std::uint32_t actors) { actors_.Set(actors); }
  void actor_gave_up() { give_ups_.Increment(); }
  void actor_recovered() { recoveries_.Increment(); }
  void illegal_transition() { illegal_.Increment(); }

  /// The generation whose gauges these are: the newest added. An older one
  /// still draining after a reload re-added the name adds to the counters
  /// and histograms (they count the name's jobs) but no longer sets gauges.
  std::atomic<const core::TroupeObserver*> owner{nullptr};

 private:
  static std::size_t index(core::JobState terminal) {
    return static_cast<std::size_t>(terminal) -
           static_cast<std::size_t>(core::JobState::kSucceeded);
  }

  prometheus::Counter& submitted_;
  std::array<prometheus::Counter*, kRejectSlots> rejected_{};
  std::array<prometheus::Counter*, kTerminalStates.size()> completed_{};
  std::array<prometheus::Counter*, kFailureClasses.size()> attempts_{};
  prometheus::Histogram& run_seconds_;
  prometheus::Histogram& queue_wait_seconds_;
  prometheus::Gauge& mailbox_depth_;
  prometheus::Gauge& mailbox_capacity_;
  prometheus::Gauge& actors_;
  prometheus::Gauge& actors_busy_;
  prometheus::Counter& actor_restarts_;
  prometheus::Gauge& circuit_state_;
  prometheus::Gauge& degraded_;
  std::array<prometheus::Counter*, kCircuitStates.size()> transitions_{};
  prometheus::Counter& autoscale_up_;
  prometheus::Counter& autoscale_down_;
  prometheus::Counter& give_ups_;
  prometheus::Counter& recoveries_;
  prometheus::Counter& illegal_;
};

namespace {

/// One generation of a troupe: its events go to the name's series; its
/// gauges only while it is the name's newest generation.
class Generation final : public core::TroupeObserver {
 public:
  explicit Generation(std::shared_ptr<PrometheusObserver::TroupeMetrics> metrics)
      : m_(std::move(metrics)) {}

  void job_submitted() override { m_->job_submitted(); }
  void job_rejected(core::RejectReason reason) override { m_->job_rejected(reason); }
  void job_completed(core::JobState terminal) override { m_->job_completed(terminal); }
  void attempt_finished(core::FailureClass outcome, core::Duration run_time) override {
    m_->attempt_finished(outcome, run_time);
  }
  void queue_wait(core::Duration waited) override { m_->queue_wait(waited); }
  void mailbox(std::uint64_t depth, std::uint64_t capacity) override {
    if (current()) m_->mailbox(depth, capacity);
  }
  void actors(std::uint32_t total, std::uint32_t busy) override {
    if (current()) m_->actors(total, busy);
  }
  void actor_restarted() override { m_->actor_restarted(); }
  void circuit_changed(core::CircuitState to) override {
    m_->circuit_transition(to);
    if (current()) m_->circuit_state(to);
  }
  void degraded_changed(bool degraded) override {
    if (current()) m_->degraded_changed(degraded);
  }
  void autoscaled(core::ScaleDirection direction, std::uint32_t actors_now) override {
    m_->autoscaled(direction);
    if (current()) m_->actors_now(actors_now);
  }
  void actor_gave_up(std::uint32_t, std::string_view, core::Duration) override {
    m_->actor_gave_up();
  }
  void actor_recovered(std::uint32_t) override { m_->actor_recovered(); }
  void illegal_transition(core::JobId, core::JobState, core::JobState) override {
    m_->illegal_transition();
  }
  void removed() override {
    // The name's series stay (see PrometheusObserver); only a newer
    // generation may set its gauges from now on.
    const core::TroupeObserver* self = this;
    m_->owner.compare_exchange_strong(self, nullptr, std::memory_order_relaxed);
  }

 private:
  bool current() const { return m_->owner.load(std::memory_order_relaxed) == this; }

  std::shared_ptr<PrometheusObserver::TroupeMetrics> m_;
};

}  // namespace

const prometheus::Histogram::BucketBoundaries& PrometheusObserver::duration_buckets() {
  static const prometheus::Histogram::BucketBoundaries buckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
      0.25,   0.5,     1,      2.5,   5,      10,    30,   60,    120,  300};
  return buckets;
}

PrometheusObserver::PrometheusObserver(std::string_view version)
    : registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  auto& r = *registry_;
  families_ = std::unique_ptr<Families>(new Families{
      BuildCounter()
          .Name("troupe_jobs_submitted_total")
          .Help("Jobs accepted by a troupe (rejected submits are not counted).")
          .Register(r),
      BuildCounter()
          .Name("troupe_jobs_rejected_total")
          .Help("Submits a troupe refused, by reason (full, rate_limited, draining, ...).")
          .Register(r),
      BuildCounter()
          .Name("troupe_jobs_completed_total")
          .Help("Accepted jobs that reached a terminal state, by outcome.")
          .Register(r),
      BuildCounter()
          .Name("troupe_job_attempts_total")
          .Help("Handler attempts that finished, by outcome (success or failure class).")
          .Register(r),
      BuildHistogram()
          .Name("troupe_job_run_seconds")
          .Help("Run time of one handler attempt.")
          .Register(r),
      BuildHistogram()
          .Name("troupe_job_queue_wait_seconds")
          .Help("Time a job waited in a mailbox before an actor started it.")
          .Register(r),
      BuildGauge().Name("troupe_mailbox_depth").Help("Queued jobs, all actors.").Register(r),
      BuildGauge()
          .Name("troupe_mailbox_capacity")
          .Help("Mailbox capacity, all actors.")
          .Register(r),
      BuildGauge().Name("troupe_actors").Help("Actors running.").Register(r),
      BuildGauge().Name("troupe_actors_busy").Help("Actors running a job.").Register(r),
      BuildCounter()
          .Name("troupe_actor_restarts_total")
          .Help("Actor restarts by the supervisor.")
          .Register(r),
      BuildGauge()
          .Name("troupe_circuit_state")
          .Help("Circuit breaker state: 0 closed, 1 half-open, 2 open.")
          .Register(r),
      BuildCounter()
          .Name("troupe_circuit_transitions_total")
          .Help("Circuit breaker transitions, by target state.")
          .Register(r),
      BuildCounter()
          .Name("troupe_autoscale_events_total")
          .Help("Auto-scaler decisions that changed the actor count, by direction.")
          .Register(r),
      BuildGauge()
          .Name("troupe_degraded")
          .Help("1 while the supervisor has given up on an actor (paused or stopped), else 0.")
          .Register(r),
      BuildCounter()
          .Name("troupe_supervisor_events_total")
          .Help("Supervisor give-ups (restart limit exceeded, handler not rebuilt) and "
                "recoveries, by event.")
          .Register(r),
      BuildCounter()
          .Name("troupe_illegal_transitions_total")
          .Help("Job state transitions refused by the job lifecycle (a trouped bug when > 0).")
          .Register(r),
      BuildGauge()
          .Name("troupe_build_info")
          .Help("Always 1; the version label says which trouped is running.")
          .Register(r),
  });
  families_->build_info.Add({{"version", std::string(version)}}).Set(1);
  unknown_troupe_ = &families_->rejected.Add(
      {{"reason", std::string(core::to_string(core::RejectReason::kUnknownTroupe))}});
}

PrometheusObserver::~PrometheusObserver() = default;

std::shared_ptr<core::TroupeObserver> PrometheusObserver::troupe_added(std::string_view troupe) {
  std::lock_guard lock(mutex_);
  auto it = troupes_.find(troupe);
  if (it == troupes_.end()) {
    const std::string name(troupe);
    it = troupes_.emplace(name, std::make_shared<TroupeMetrics>(*families_, name)).first;
  }
  auto generation = std::make_shared<Generation>(it->second);
  it->second->owner.store(generation.get(), std::memory_order_relaxed);
  return generation;
}

void PrometheusObserver::unknown_troupe_rejected() {
  unknown_troupe_->Increment();
}

const prometheus::Histogram::BucketBoundaries& StoreMetrics::commit_buckets() {
  static const prometheus::Histogram::BucketBoundaries b = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
      0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5,   5};
  return b;
}

const prometheus::Histogram::BucketBoundaries& StoreMetrics::batch_buckets() {
  static const prometheus::Histogram::BucketBoundaries b = {1, 4, 16, 64, 256, 1024, 4096, 16384};
  return b;
}

StoreMetrics::StoreMetrics(prometheus::Registry& r)
    : commit_seconds_(prometheus::BuildHistogram()
                          .Name("troupe_store_commit_seconds")
                          .Help("Journal commits: from the first entry's arrival to the end of "
                                "the commit (fsync included).")
                          .Register(r)
                          .Add({}, commit_buckets())),
      jobs_per_commit_(prometheus::BuildHistogram()
                           .Name("troupe_store_jobs_per_commit")
                           .Help("Journal entries (job transitions) made durable per commit "
                                 "(group commit).")
                           .Register(r)
                           .Add({}, batch_buckets())),
      bytes_(prometheus::BuildGauge()
                 .Name("troupe_store_bytes")
                 .Help("Size of the store on disk (database plus write-ahead log).")
                 .Register(r)
                 .Add({})),
      rows_(prometheus::BuildGauge()
                .Name("troupe_store_rows")
                .Help("Jobs held by the store, by state (sampled).")
                .Register(r)),
      expired_(prometheus::BuildCounter()
                   .Name("troupe_store_expired_rows_total")
                   .Help("Terminal rows deleted after their result or idempotency TTL.")
                   .Register(r)
                   .Add({})),
      recovered_(prometheus::BuildGauge()
                     .Name("troupe_store_recovered_jobs")
                     .Help("Jobs read back from the store at start, by what became of them.")
                     .Register(r)),
      recovery_seconds_(prometheus::BuildGauge()
                            .Name("troupe_store_recovery_seconds")
                            .Help("How long recovery took at start.")
                            .Register(r)
                            .Add({})),
      orphaned_(prometheus::BuildGauge()
                    .Name("troupe_store_orphaned_jobs")
                    .Help("Rows of troupes the configuration no longer has (kept, not loaded).")
                    .Register(r)
                    .Add({})),
      failed_(prometheus::BuildGauge()
                  .Name("troupe_store_failed")
                  .Help("1 once the store failed (trouped drains and exits with status 75).")
                  .Register(r)
                  .Add({})),
      available_(prometheus::BuildGauge()
                     .Name("troupe_store_available")
                     .Help("1 while the store takes writes; 0 while a shared store (kind "
                           "postgres) is unreachable (submits get UNAVAILABLE) or once it failed.")
                     .Register(r)
                     .Add({})) {
  available_.Set(1);
}

void StoreMetrics::committed(std::chrono::nanoseconds latency, std::size_t entries,
                             std::size_t /*accepted*/) {
  commit_seconds_.Observe(std::chrono::duration<double>(latency).count());
  jobs_per_commit_.Observe(static_cast<double>(entries));
}

void StoreMetrics::store_bytes(std::uint64_t bytes) {
  bytes_.Set(static_cast<double>(bytes));
}

void StoreMetrics::rows(core::JobState state, std::uint64_t count) {
  rows_.Add({{"state", lower(core::to_string(state))}}).Set(static_cast<double>(count));
}

void StoreMetrics::expired(std::uint64_t rows) {
  expired_.Increment(static_cast<double>(rows));
}

void StoreMetrics::recovered(const core::RecoveryReport& report) {
  const auto set = [this](const char* state, std::uint64_t n) {
    recovered_.Add({{"state", state}}).Set(static_cast<double>(n));
  };
  set("queued", report.queued);
  set("retry_wait", report.retry_waiting);
  set("crashed", report.crashed);
  set("crashed_dead", report.crashed_dead);
  set("terminal", report.terminal);
  recovery_seconds_.Set(seconds(report.took));
  orphaned_.Set(static_cast<double>(report.orphaned_total()));
}

void StoreMetrics::failed() {
  failed_.Set(1);
  available_.Set(0);
}

void StoreMetrics::available(bool up) {
  available_.Set(up ? 1 : 0);
}

}  // namespace troupe::daemon
