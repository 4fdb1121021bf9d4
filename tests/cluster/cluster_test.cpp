// The cluster tests (issue 14, "Proof"; ctest label `cluster`): three real
// trouped replicas share one real PostgreSQL started by the test, and real
// gRPC clients talk to them as users would. What they check:
//   - jobs submitted round-robin (async and wait=true; builtin and exec
//     troupes) while one replica is SIGKILLed mid-load: every acknowledged
//     job ends SUCCEEDED, in one terminal state every replica reports the
//     same; an exec job runs more than once only if the killed replica had
//     accepted it (a replica's jobs move only when its lease expires);
//   - GetJob and CancelJob answer from a replica that does not hold the job;
//   - a replica that drains hands its queued jobs to the others;
//   - PostgreSQL stopped and started again mid-load: submits are refused
//     while it is down (never acknowledged, then lost), health says
//     NOT_SERVING, and the replicas come back by themselves with no
//     acknowledged job lost.
// TROUPE_CLUSTER_JOBS=N submits N jobs in the kill test (default 3,000).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/async_submitter.h"
#include "support/trouped_process.h"
#include "tests/support/postgres_server.h"
#include "troupe/v1/troupe.grpc.pb.h"

namespace troupe::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::stoull(v) : fallback;
}

bool terminal(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED || s == v1::JOB_STATE_DEAD ||
         s == v1::JOB_STATE_CANCELLED || s == v1::JOB_STATE_ABORTED;
}

/// One replica's config: the shared store with short leases (so that a
/// killed replica's jobs move within seconds), an echo troupe, a sleep
/// troupe (payload: how long) and an exec troupe that records each run in
/// `runs_dir/<job id>` and sleeps for its payload (seconds).
std::string replica_config(const std::string& dsn, const std::string& name,
                           const fs::path& runs_dir) {
  std::ostringstream y;
  y << "server:\n"
       "  grpc_address: 127.0.0.1:0\n"
       "  metrics_address: 127.0.0.1:0\n"
       "  threads: 2\n"
       "  shutdown: {drain_timeout: 5s}\n"
       "  job_store: {result_ttl: 1h, idempotency_ttl: 1h}\n"
       "store:\n"
       "  kind: postgres\n"
       "  dsn: \""
    << dsn
    << "\"\n"
       "  replica: "
    << name
    << "\n"
       "  lease: 2s\n"
       "  heartbeat: 500ms\n"
       "  poll: 200ms\n"
       "logging: {level: info}\n"
       "troupes:\n"
       "  - name: echo\n"
       "    mode: fixed\n"
       "    actors: 2\n"
       "    mailbox: 4096\n"
       "    retry: {max_attempts: 3, initial_backoff: 20ms, max_backoff: 100ms}\n"
       "    handler: {kind: builtin, name: echo}\n"
       "  - name: sleep\n"
       "    mode: fixed\n"
       "    actors: 2\n"
       "    mailbox: 4096\n"
       "    timeout: 60s\n"
       "    retry: {max_attempts: 3, initial_backoff: 20ms, max_backoff: 100ms}\n"
       "    circuit_breaker: {enabled: false}\n"
       "    handler: {kind: builtin, name: sleep, sleep: 20ms}\n"
       "  - name: exec\n"
       "    mode: fixed\n"
       "    actors: 2\n"
       "    mailbox: 1024\n"
       "    timeout: 10s\n"
       "    retry: {max_attempts: 3, initial_backoff: 20ms, max_backoff: 100ms}\n"
       "    circuit_breaker: {enabled: false}\n"
       "    handler:\n"
       "      kind: exec\n"
       "      env: {RUNS: \""
    << runs_dir.string()
    << "\"}\n"
       "      argv:\n"
       "        - /bin/bash\n"
       "        - -c\n"
       "        - |\n"
       "          printf 'start %s\\n' \"$TROUPE_ATTEMPT\" >>\"$RUNS/$TROUPE_JOB_ID\"\n"
       "          read -r d\n"
       "          sleep \"$d\"\n"
       "          printf done\n";
  return y.str();
}

/// Three replicas on one PostgreSQL, and the clients' view of them.
class Cluster {
 public:
  explicit Cluster(std::size_t replicas = 3) : pg_(PostgresServer::start()) {
    runs_dir_ =
        fs::temp_directory_path() / ("troupe-cluster-runs-" + std::to_string(::getpid()) + "-" +
                                     std::to_string(Clock::now().time_since_epoch().count()));
    fs::create_directories(runs_dir_);
    for (std::size_t i = 0; i < replicas; ++i) start(i);
  }
  ~Cluster() {
    replicas_.clear();  // SIGKILLs any left, before the server goes
    std::error_code ec;
    fs::remove_all(runs_dir_, ec);
  }

  void start(std::size_t i) {
    if (replicas_.size() <= i) replicas_.resize(i + 1);
    replicas_[i].reset();
    TroupedOptions o;
    o.config_yaml = replica_config(pg_->dsn(), "replica-" + std::to_string(i), runs_dir_);
    replicas_[i] = start_trouped(std::move(o));
    ASSERT_NE(replicas_[i], nullptr) << "replica " << i << " did not start";
    stubs_.resize(replicas_.size());
    stubs_[i] = v1::JobService::NewStub(replicas_[i]->channel());
  }

  TroupedProcess& replica(std::size_t i) { return *replicas_[i]; }
  v1::JobService::Stub& stub(std::size_t i) { return *stubs_[i]; }
  std::size_t size() const { return replicas_.size(); }
  PostgresServer& postgres() { return *pg_; }
  const fs::path& runs_dir() const { return runs_dir_; }

  /// The job as replica `i` reports it; nullopt when the call fails.
  std::optional<v1::Job> get(std::size_t i, const std::string& id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GetJobRequest req;
    req.set_job_id(id);
    v1::Job job;
    if (!stub(i).GetJob(&ctx, req, &job).ok()) return std::nullopt;
    return job;
  }

  /// Waits until replica `i` reports the job terminal (bounded).
  std::optional<v1::Job> await_terminal(std::size_t i, const std::string& id,
                                        Clock::time_point until) {
    for (;;) {
      auto job = get(i, id);
      if (job && terminal(job->state())) return job;
      if (Clock::now() >= until) return job;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a client's view
    }
  }

 private:
  std::unique_ptr<PostgresServer> pg_;
  fs::path runs_dir_;
  std::vector<std::unique_ptr<TroupedProcess>> replicas_;
  std::vector<std::unique_ptr<v1::JobService::Stub>> stubs_;
};

grpc::Status submit(v1::JobService::Stub& stub, const v1::SubmitRequest& req,
                    v1::SubmitResponse& resp) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return stub.Submit(&ctx, req, &resp);
}

v1::SubmitRequest request(const std::string& troupe, const std::string& payload,
                          bool wait = false) {
  v1::SubmitRequest r;
  r.set_troupe(troupe);
  r.set_payload(payload);
  r.set_wait(wait);
  return r;
}

std::size_t runs_of(const fs::path& file) {
  std::ifstream in(file);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) n += line.rfind("start", 0) == 0 ? 1 : 0;
  return n;
}

TEST(Cluster, EveryAcknowledgedJobEndsOnceWhenAReplicaIsKilled) {
  Cluster cluster;
  const std::size_t jobs = env_number("TROUPE_CLUSTER_JOBS", 3000);
  constexpr std::size_t kVictim = 2;

  struct Acked {
    std::string troupe;
    std::size_t replica;
  };
  std::mutex mutex;
  std::map<std::string, Acked> acked;
  std::atomic<std::size_t> victim_acks{0};
  std::atomic<std::size_t> refused{0};
  std::vector<std::string> errors;

  // One client thread per replica, each submitting its share; every 10th
  // job waits for its result, every 20th runs as an exec job.
  std::vector<std::thread> clients;
  for (std::size_t r = 0; r < cluster.size(); ++r) {
    clients.emplace_back([&, r] {
      for (std::size_t n = r; n < jobs; n += cluster.size()) {
        const std::string troupe = n % 20 == 0 ? "exec" : n % 3 == 0 ? "sleep" : "echo";
        const bool wait = n % 10 == 0;
        const std::string payload = troupe == "exec" ? "0.02" : "job-" + std::to_string(n);
        v1::SubmitResponse resp;
        const auto status = submit(cluster.stub(r), request(troupe, payload, wait), resp);
        if (!status.ok()) {
          if (r != kVictim) {
            std::lock_guard lock(mutex);
            errors.push_back("replica " + std::to_string(r) + " refused job " + std::to_string(n) +
                             ": " + status.error_message());
          }
          refused.fetch_add(1);
          continue;
        }
        std::lock_guard lock(mutex);
        acked.emplace(resp.job_id(), Acked{troupe, r});
        if (r == kVictim) victim_acks.fetch_add(1);
        if (wait && resp.job().state() != v1::JOB_STATE_SUCCEEDED) {
          errors.push_back("wait=true answered " + resp.job_id() + " in state " +
                           v1::JobState_Name(resp.job().state()));
        }
      }
    });
  }
  // Kill the victim once it has acknowledged a third of its share (bounded).
  const auto kill_by = Clock::now() + std::chrono::seconds(60);
  while (victim_acks.load() < jobs / cluster.size() / 3 && Clock::now() < kill_by) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // watching the load's progress
  }
  // A backlog on the victim that it cannot have finished when it dies: exec
  // jobs of 0.5 s (2 actors) and sleep jobs of 200 ms, acknowledged before
  // the kill. The survivors must take them over once its lease expires.
  std::set<std::string> backlog;
  {
    AsyncSubmitter async(cluster.replica(kVictim).channel());
    for (int i = 0; i < 20; ++i) async.submit(request("exec", "0.5"), std::chrono::seconds(30));
    for (int i = 0; i < 100; ++i) async.submit(request("sleep", "200ms"), std::chrono::seconds(30));
    const auto outcomes = async.collect(std::chrono::seconds(60));
    std::lock_guard lock(mutex);
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
      ASSERT_TRUE(outcomes[i].status.ok()) << outcomes[i].status.error_message();
      const std::string& id = outcomes[i].response.job_id();
      acked.emplace(id, Acked{i < 20 ? "exec" : "sleep", kVictim});
      backlog.insert(id);
    }
  }
  cluster.replica(kVictim).send_signal(SIGKILL);
  ASSERT_TRUE(cluster.replica(kVictim).wait_exit(std::chrono::seconds(10)).has_value());
  for (auto& c : clients) c.join();
  for (const auto& e : errors) ADD_FAILURE() << e;

  // Every acknowledged job ends SUCCEEDED (a crashed attempt is retried),
  // and two survivors report the same terminal state and time.
  const auto until = Clock::now() + std::chrono::seconds(120);
  std::size_t succeeded = 0, rerun = 0, moved = 0, exec_jobs = 0, taken_over = 0;
  for (const auto& [id, a] : acked) {
    const std::size_t asked = a.replica == 0 ? 1 : 0;  // a survivor, not always the acceptor
    auto job = cluster.await_terminal(asked, id, until);
    ASSERT_TRUE(job.has_value()) << "job " << id << " (accepted by replica " << a.replica
                                 << ") unknown to replica " << asked;
    ASSERT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED)
        << "job " << id << " of " << a.troupe << ", accepted by replica " << a.replica << ": "
        << job->error();
    ++succeeded;
    const auto again = cluster.get(asked == 0 ? 1 : 0, id);
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(again->state(), job->state()) << id;
    EXPECT_EQ(again->finished_at().seconds(), job->finished_at().seconds()) << id;
    EXPECT_EQ(again->finished_at().nanos(), job->finished_at().nanos()) << id;
    if (a.replica == kVictim) ++moved;
    // A backlog job that ran more than once, or that a crashed attempt
    // marks, was finished by a survivor.
    if (backlog.contains(id) && job->attempts() > 1) ++taken_over;
    if (a.troupe == "exec") {
      ++exec_jobs;
      const std::size_t runs = runs_of(cluster.runs_dir() / id);
      EXPECT_GE(runs, 1u) << "exec job " << id << " never ran";
      if (runs > 1) {
        ++rerun;
        EXPECT_EQ(a.replica, kVictim)
            << "exec job " << id << " ran " << runs << " times but its replica " << a.replica
            << " was never killed";
      }
    }
  }
  std::cout << "cluster kill test: " << jobs << " submitted, " << acked.size() << " acknowledged ("
            << moved << " by the killed replica, " << backlog.size() << " of them its backlog), "
            << refused.load() << " refused, " << succeeded << " succeeded, " << exec_jobs
            << " exec jobs, " << rerun << " of them run twice, " << taken_over
            << " backlog jobs with a crashed attempt\n";
  // The kill fell while the victim ran backlog jobs (2 exec + 2 sleep actors
  // busy for seconds): their attempts count as crashed where they finished.
  EXPECT_GT(taken_over, 0u);
  EXPECT_GT(rerun, 0u);
}

TEST(Cluster, AnyReplicaAnswersGetJobAndCancelsAJobRunningElsewhere) {
  Cluster cluster(2);
  v1::SubmitResponse resp;
  ASSERT_TRUE(submit(cluster.stub(0), request("sleep", "60s"), resp).ok());
  const std::string id = resp.job_id();

  // Replica 1 never saw the submit; it finds the job in the store.
  const auto until = Clock::now() + std::chrono::seconds(20);
  std::optional<v1::Job> seen;
  while (Clock::now() < until) {
    seen = cluster.get(1, id);
    if (seen && seen->state() == v1::JOB_STATE_RUNNING) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(seen.has_value()) << "replica 1 does not know job " << id;
  ASSERT_EQ(seen->state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(seen->troupe(), "sleep");

  // Cancelled through replica 1; replica 0 stops the attempt it runs.
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::CancelJobRequest creq;
  creq.set_job_id(id);
  v1::CancelJobResponse cresp;
  const auto status = cluster.stub(1).CancelJob(&ctx, creq, &cresp);
  ASSERT_TRUE(status.ok()) << status.error_message();
  auto job = cluster.await_terminal(0, id, Clock::now() + std::chrono::seconds(20));
  ASSERT_TRUE(job.has_value());
  EXPECT_EQ(job->state(), v1::JOB_STATE_CANCELLED);

  // An unknown id stays NOT_FOUND on every replica.
  grpc::ClientContext nctx;
  v1::GetJobRequest nreq;
  nreq.set_job_id("0000000000000001");
  v1::Job none;
  EXPECT_EQ(cluster.stub(1).GetJob(&nctx, nreq, &none).error_code(), grpc::StatusCode::NOT_FOUND);
}

/// Watches job `id` on `stub` in a thread of its own: the states it
/// streams, and the stream's status.
class Watch {
 public:
  Watch(v1::JobService::Stub& stub, const std::string& id) {
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    thread_ = std::thread([this, &stub, id] {
      v1::WatchJobRequest req;
      req.set_job_id(id);
      auto reader = stub.WatchJob(&ctx_, req);
      v1::Job job;
      while (reader->Read(&job)) {
        std::lock_guard lock(mutex_);
        states_.push_back(job.state());
        attempts_.push_back(job.attempts());
      }
      status_ = reader->Finish();
    });
  }
  ~Watch() {
    ctx_.TryCancel();
    if (thread_.joinable()) thread_.join();
  }
  /// Waits for the stream to end (bounded by its deadline).
  grpc::Status finish() {
    thread_.join();
    return status_;
  }
  std::vector<v1::JobState> states() {
    std::lock_guard lock(mutex_);
    return states_;
  }
  std::vector<std::uint32_t> attempts() {
    std::lock_guard lock(mutex_);
    return attempts_;
  }

 private:
  grpc::ClientContext ctx_;
  std::mutex mutex_;
  std::vector<v1::JobState> states_;
  std::vector<std::uint32_t> attempts_;
  grpc::Status status_;
  std::thread thread_;
};

TEST(Cluster, WatchJobOnAnotherReplicaStreamsEveryStateToTheEnd) {
  Cluster cluster(2);
  v1::SubmitResponse resp;
  ASSERT_TRUE(submit(cluster.stub(0), request("sleep", "1s"), resp).ok());
  const std::string id = resp.job_id();

  // Replica 1 never saw the submit: it watches the job through the store.
  Watch watch(cluster.stub(1), id);
  const auto status = watch.finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  const auto states = watch.states();
  ASSERT_FALSE(states.empty());
  EXPECT_EQ(states.back(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_NE(std::find(states.begin(), states.end(), v1::JOB_STATE_RUNNING), states.end())
      << "the 1 s attempt was never streamed as running";
  for (std::size_t i = 1; i < states.size(); ++i) {
    EXPECT_FALSE(states[i] == states[i - 1] && watch.attempts()[i] == watch.attempts()[i - 1])
        << "a state streamed twice: only changes are delivered";
  }

  // An unknown id is NOT_FOUND on a replica that does not hold it either.
  Watch none(cluster.stub(1), "0000000000000001");
  EXPECT_EQ(none.finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST(Cluster, AWatchEndsWithTheTerminalStateOfWhoeverFinishesTheJob) {
  Cluster cluster(3);
  v1::SubmitResponse resp;
  ASSERT_TRUE(submit(cluster.stub(0), request("sleep", "3s"), resp).ok());
  const std::string id = resp.job_id();
  const auto until = Clock::now() + std::chrono::seconds(20);
  std::optional<v1::Job> seen;
  while (Clock::now() < until) {
    seen = cluster.get(1, id);
    if (seen && seen->state() == v1::JOB_STATE_RUNNING) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a client's view
  }
  ASSERT_TRUE(seen && seen->state() == v1::JOB_STATE_RUNNING);

  // Watched where it runs (a local watch) and elsewhere (through the store).
  Watch local(cluster.stub(0), id);
  Watch remote(cluster.stub(1), id);
  // Replica 0 pauses past its lease: another replica takes the job over
  // (the interrupted attempt counts as a crash) and finishes it; replica 0
  // wakes up, finds it lost, and its watch follows the job in the store.
  cluster.replica(0).send_signal(SIGSTOP);
  std::optional<v1::Job> taken;
  while (Clock::now() < until + std::chrono::seconds(10)) {
    taken = cluster.get(1, id);
    if (taken && taken->attempts() >= 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a client's view
  }
  cluster.replica(0).send_signal(SIGCONT);
  ASSERT_TRUE(taken && taken->attempts() >= 2) << "no replica took the job over";

  for (Watch* w : {&local, &remote}) {
    const auto status = w->finish();
    ASSERT_TRUE(status.ok()) << status.error_message();
    const auto states = w->states();
    ASSERT_FALSE(states.empty());
    EXPECT_EQ(states.back(), v1::JOB_STATE_SUCCEEDED);
    EXPECT_GE(w->attempts().back(), 2u);
  }
}

TEST(Cluster, ADrainingReplicaHandsItsQueuedJobsToTheOthers) {
  Cluster cluster(2);
  // Replica 0 gets more sleep jobs than it can finish before its drain
  // deadline (2 actors, 20 x 1s, deadline 5s).
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    v1::SubmitResponse resp;
    ASSERT_TRUE(submit(cluster.stub(0), request("sleep", "1s"), resp).ok());
    ids.push_back(resp.job_id());
  }
  cluster.replica(0).send_signal(SIGTERM);
  const auto code = cluster.replica(0).wait_exit(std::chrono::seconds(30));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << cluster.replica(0).log();

  // Replica 1 finishes every one of them.
  const auto until = Clock::now() + std::chrono::seconds(60);
  for (const auto& id : ids) {
    auto job = cluster.await_terminal(1, id, until);
    ASSERT_TRUE(job.has_value()) << id;
    EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED) << id << ": " << job->error();
  }
}

TEST(Cluster, ReplicasRideOutADatabaseOutage) {
  Cluster cluster(2);
  std::vector<std::string> before;
  for (int i = 0; i < 200; ++i) {
    v1::SubmitResponse resp;
    ASSERT_TRUE(submit(cluster.stub(i % 2), request("sleep", "50ms"), resp).ok());
    before.push_back(resp.job_id());
  }
  cluster.postgres().stop();

  // Both replicas notice and refuse submits; health says NOT_SERVING.
  for (std::size_t r = 0; r < cluster.size(); ++r) {
    const auto until = Clock::now() + std::chrono::seconds(30);
    while (health(cluster.replica(r)) != grpc::health::v1::HealthCheckResponse::NOT_SERVING &&
           Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_EQ(health(cluster.replica(r)), grpc::health::v1::HealthCheckResponse::NOT_SERVING)
        << "replica " << r;
    v1::SubmitResponse resp;
    const auto status = submit(cluster.stub(r), request("echo", "during"), resp);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  }

  cluster.postgres().restart();
  for (std::size_t r = 0; r < cluster.size(); ++r) {
    const auto until = Clock::now() + std::chrono::seconds(60);
    while (health(cluster.replica(r)) != grpc::health::v1::HealthCheckResponse::SERVING &&
           Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_EQ(health(cluster.replica(r)), grpc::health::v1::HealthCheckResponse::SERVING)
        << "replica " << r << " did not come back:\n"
        << cluster.replica(r).log();
  }
  // Every job acknowledged before the outage ends, and new submits work.
  const auto until = Clock::now() + std::chrono::seconds(60);
  for (const auto& id : before) {
    auto job = cluster.await_terminal(1, id, until);
    ASSERT_TRUE(job.has_value()) << id;
    EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED) << id << ": " << job->error();
  }
  v1::SubmitResponse resp;
  EXPECT_TRUE(submit(cluster.stub(0), request("echo", "after", true), resp).ok());
  EXPECT_EQ(resp.job().state(), v1::JOB_STATE_SUCCEEDED);
}

}  // namespace
}  // namespace troupe::test
