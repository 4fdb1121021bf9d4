// The cluster tests (issue 14, "Proof"; ctest label `cluster`): three real
// trouped replicas share one real PostgreSQL started by the test, and real
// gRPC clients talk to them as users would. What they check:
//   - jobs submitted round-robin (async, stream and wait=true; builtin and
//     exec troupes) while one replica is SIGKILLed mid-load: every acknowledged
//     job ends SUCCEEDED, in one terminal state every replica reports the
//     same; an exec job runs more than once only if the killed replica had
//     accepted it (a replica's jobs move only when its lease expires);
//   - GetJob and CancelJob answer from a replica that does not hold the job;
//   - a replica that drains hands its queued jobs to the others;
//   - GetCluster, `troupectl cluster` and the cluster gauges show every
//     replica and the queue of a backlog held by one of them; a SIGKILLed
//     replica stops counting as alive once its lease expires;
//   - GetCluster names a singleton's lease holder (the replica that runs it,
//     with the fencing term its requests carry; the new one after a kill)
//     and the max_concurrency permits per replica (never more than the cap);
//   - in a `dispatch: key` troupe, one key's jobs submitted to every replica
//     run one at a time in submission order, also across a SIGKILL of a
//     replica running them (only its cut-short attempt runs again);
//   - PostgreSQL stopped and started again mid-load: submits are refused
//     while it is down (never acknowledged, then lost), health says
//     NOT_SERVING, GetCluster says UNAVAILABLE, and so do GetJob, WatchJob,
//     CancelJob and ListDeadJobs of a job another replica holds (not
//     NOT_FOUND); the replicas come back by themselves with no acknowledged
//     job lost, and the lookups answer again.
// TROUPE_CLUSTER_JOBS=N submits N jobs in the kill test (default 3,000).
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
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
#include "tests/support/run_process.h"
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
                           const fs::path& runs_dir, const std::string& extra_troupes) {
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
       "  lease: 3s\n"
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
       "    actors: 4\n"
       "    mailbox: 4096\n"
       "    timeout: 60s\n"
       "    retry: {max_attempts: 3, initial_backoff: 20ms, max_backoff: 100ms}\n"
       "    circuit_breaker: {enabled: false}\n"
       "    handler: {kind: builtin, name: sleep, sleep: 5ms}\n"
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
       "          printf done\n"
    << extra_troupes;
  return y.str();
}

/// A plain HTTP/1.1 server on 127.0.0.1 (port 0) that an http troupe calls:
/// each request is held `hold` (the downstream's work), then answered 200.
/// It counts requests in progress (their most, and how long each level
/// lasted) and records each request's X-Troupe-Fence-Term and X-Replica,
/// flagging two requests in progress at once.
class CountingServer {
 public:
  struct Request {
    Clock::time_point start;
    std::int64_t term = 0;
    std::string replica;
    std::string body;       // the job's payload
    Clock::time_point end;  // answered (the epoch until then)
  };

  explicit CountingServer(std::chrono::milliseconds hold) : hold_(hold) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener_, 64) != 0) {
      ADD_FAILURE() << "cannot listen on 127.0.0.1";
    }
    socklen_t len = sizeof addr;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~CountingServer() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      for (int fd : connections_) ::shutdown(fd, SHUT_RDWR);
    }
    ::shutdown(listener_, SHUT_RDWR);
    ::close(listener_);
    acceptor_.join();
    for (auto& t : threads_) t.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/"; }

  std::size_t most() {
    std::lock_guard lock(mutex_);
    return most_;
  }
  /// The share of the time from the first request to the last answer spent
  /// with `level` requests in progress.
  double share_at(std::size_t level) {
    std::lock_guard lock(mutex_);
    Clock::duration total{};
    for (const auto& [l, d] : time_at_) total += d;
    return total.count() == 0 ? 0.0 : static_cast<double>(time_at_[level].count()) / total.count();
  }
  std::vector<Request> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  std::size_t overlapping() {
    std::lock_guard lock(mutex_);
    return overlapping_;
  }

 private:
  void accept_loop() {
    for (;;) {
      int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0) return;
      std::lock_guard lock(mutex_);
      if (stopping_) {
        ::close(fd);
        return;
      }
      connections_.push_back(fd);
      threads_.emplace_back([this, fd] { serve(fd); });
    }
  }

  /// Moves the level (under the lock), accounting the time spent at the old one.
  void level_locked(int delta) {
    const auto now = Clock::now();
    if (level_ > 0 || delta < 0) time_at_[level_] += now - since_;
    since_ = now;
    level_ = static_cast<std::size_t>(static_cast<long>(level_) + delta);
    most_ = std::max(most_, level_);
  }

  void serve(int fd) {
    std::string buffer;
    char chunk[4096];
    for (;;) {
      std::size_t end;
      while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
        const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) return;
        buffer.append(chunk, static_cast<std::size_t>(n));
      }
      std::string head = buffer.substr(0, end);
      for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      auto header = [&](const std::string& name) -> std::string {
        const auto at = head.find("\r\n" + name + ":");
        if (at == std::string::npos) return {};
        const auto from = at + name.size() + 3;
        std::string v = head.substr(from, head.find("\r\n", from) - from);
        v.erase(0, v.find_first_not_of(' '));
        return v;
      };
      const std::string length = header("content-length");
      const std::size_t body = length.empty() ? 0 : std::stoul(length);
      while (buffer.size() < end + 4 + body) {
        const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) return;
        buffer.append(chunk, static_cast<std::size_t>(n));
      }
      const std::string payload = buffer.substr(end + 4, body);
      buffer.erase(0, end + 4 + body);
      const std::string term = header("x-troupe-fence-term");
      std::size_t index;
      {
        std::lock_guard lock(mutex_);
        if (level_ > 0 && !term.empty()) ++overlapping_;
        level_locked(+1);
        index = requests_.size();
        requests_.push_back(Request{
            Clock::now(), term.empty() ? 0 : std::stoll(term), header("x-replica"), payload, {}});
      }
      std::this_thread::sleep_for(hold_);  // the downstream's work
      {
        std::lock_guard lock(mutex_);
        level_locked(-1);
        requests_[index].end = Clock::now();
      }
      const std::string answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
      if (::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL) < 0) return;
    }
  }

  const std::chrono::milliseconds hold_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::thread acceptor_;
  std::mutex mutex_;
  bool stopping_ = false;
  std::vector<int> connections_;
  std::vector<std::thread> threads_;
  std::size_t level_ = 0;
  std::size_t most_ = 0;
  std::size_t overlapping_ = 0;  // singleton requests that began while another was in progress
  Clock::time_point since_{};
  std::map<std::size_t, Clock::duration> time_at_;
  std::vector<Request> requests_;
};

/// Three replicas on one PostgreSQL, and the clients' view of them.
class Cluster {
 public:
  /// `extra_troupes(name)`: more troupes (YAML list items) for replica `name`.
  explicit Cluster(std::size_t replicas = 3,
                   std::function<std::string(const std::string&)> extra_troupes = {})
      : pg_(PostgresServer::start()), extra_troupes_(std::move(extra_troupes)) {
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
    const std::string name = "replica-" + std::to_string(i);
    o.config_yaml = replica_config(pg_->dsn(), name, runs_dir_,
                                   extra_troupes_ ? extra_troupes_(name) : std::string());
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

  /// Waits until replica `i` reports the job in a state `wanted` accepts
  /// (bounded); returns its last answer.
  template <class Wanted>
  std::optional<v1::Job> await_state(std::size_t i, const std::string& id, Wanted wanted,
                                     Clock::time_point until) {
    for (;;) {
      auto job = get(i, id);
      if (job && wanted(job->state())) return job;
      if (Clock::now() >= until) return job;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a client's view
    }
  }
  std::optional<v1::Job> await_terminal(std::size_t i, const std::string& id,
                                        Clock::time_point until) {
    return await_state(i, id, terminal, until);
  }
  std::optional<v1::Job> await_running(std::size_t i, const std::string& id,
                                       Clock::time_point until) {
    return await_state(
        i, id, [](v1::JobState s) { return s == v1::JOB_STATE_RUNNING; }, until);
  }

 private:
  std::unique_ptr<PostgresServer> pg_;
  std::function<std::string(const std::string&)> extra_troupes_;
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

/// The requests sent over one SubmitStream; their acks by request index
/// (a broken stream leaves the rest unacknowledged: not in the map).
std::map<std::size_t, v1::StreamSubmitAck> submit_stream(
    v1::JobService::Stub& stub, const std::vector<v1::SubmitRequest>& reqs) {
  std::map<std::size_t, v1::StreamSubmitAck> acks;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = stub.SubmitStream(&ctx);
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    v1::StreamSubmitRequest req;
    req.set_correlation_id(i);
    *req.mutable_request() = reqs[i];
    if (!stream->Write(req)) break;
  }
  stream->WritesDone();
  for (v1::StreamSubmitAck ack; acks.size() < reqs.size() && stream->Read(&ack);) {
    acks.emplace(static_cast<std::size_t>(ack.correlation_id()), ack);
  }
  ctx.TryCancel();
  (void)stream->Finish();
  return acks;
}

/// `n` copies of `req` as async unary calls, round-robin over the replicas;
/// the ids of those acknowledged (a refusal is a test failure).
std::vector<std::string> submit_round_robin(Cluster& cluster, const v1::SubmitRequest& req,
                                            std::size_t n) {
  std::vector<std::unique_ptr<AsyncSubmitter>> async;
  for (std::size_t r = 0; r < cluster.size(); ++r) {
    async.push_back(std::make_unique<AsyncSubmitter>(cluster.replica(r).channel()));
  }
  for (std::size_t i = 0; i < n; ++i) {
    async[i % cluster.size()]->submit(req, std::chrono::seconds(30));
  }
  std::vector<std::string> ids;
  for (auto& a : async) {
    for (const auto& outcome : a->collect(std::chrono::seconds(30))) {
      EXPECT_TRUE(outcome.status.ok()) << outcome.status.error_message();
      if (outcome.status.ok()) ids.push_back(outcome.response.job_id());
    }
  }
  return ids;
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

  // One client thread per replica, each submitting its share in chunks of
  // 32: a chunk goes over SubmitStream or as async unary calls (32 in
  // flight), and every 10th job is a wait=true call of its own; every 20th
  // job runs as an exec job, every 3rd as a sleep job. A refusal for a full
  // mailbox is back-pressure (counted, paced); any other refusal by a
  // survivor is an error.
  std::vector<std::thread> clients;
  for (std::size_t r = 0; r < cluster.size(); ++r) {
    clients.emplace_back([&, r] {
      auto record = [&](const std::string& troupe, grpc::StatusCode code, const std::string& id,
                        const std::string& message) {
        std::lock_guard lock(mutex);
        if (code == grpc::StatusCode::OK) {
          acked.emplace(id, Acked{troupe, r});
          if (r == kVictim) victim_acks.fetch_add(1);
          return;
        }
        refused.fetch_add(1);
        if (r != kVictim && code != grpc::StatusCode::RESOURCE_EXHAUSTED) {
          errors.push_back("replica " + std::to_string(r) + " refused a job of " + troupe + ": " +
                           message);
        }
      };
      std::size_t chunk = 0;
      for (std::size_t n = r; n < jobs; ++chunk) {
        std::vector<v1::SubmitRequest> batch;
        for (; n < jobs && batch.size() < 32; n += cluster.size()) {
          const std::string troupe = n % 20 == 0 ? "exec" : n % 3 == 0 ? "sleep" : "echo";
          auto req = request(troupe, troupe == "exec" ? "0.02" : "job-" + std::to_string(n));
          if (n % 10 != 0) {
            batch.push_back(std::move(req));
            continue;
          }
          req.set_wait(true);
          v1::SubmitResponse resp;
          const auto status = submit(cluster.stub(r), req, resp);
          record(troupe, status.error_code(), resp.job_id(), status.error_message());
          if (status.ok() && resp.job().state() != v1::JOB_STATE_SUCCEEDED) {
            std::lock_guard lock(mutex);
            errors.push_back("wait=true answered " + resp.job_id() + " in state " +
                             v1::JobState_Name(resp.job().state()));
          }
        }
        bool backed_off = false;
        if (chunk % 3 == 1) {
          for (const auto& [i, ack] : submit_stream(cluster.stub(r), batch)) {
            record(batch[i].troupe(), static_cast<grpc::StatusCode>(ack.code()), ack.job_id(),
                   ack.message());
            backed_off |= ack.code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
          }
        } else {
          AsyncSubmitter async(cluster.replica(r).channel());
          for (const auto& req : batch) async.submit(req, std::chrono::seconds(30));
          const auto outcomes = async.collect(std::chrono::seconds(60));
          for (std::size_t i = 0; i < outcomes.size(); ++i) {
            record(batch[i].troupe(), outcomes[i].status.error_code(),
                   outcomes[i].response.job_id(), outcomes[i].status.error_message());
            backed_off |= outcomes[i].status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
          }
        }
        // Pacing after a full mailbox, as a client honouring retry_after would.
        if (backed_off) std::this_thread::sleep_for(std::chrono::milliseconds(20));
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
  std::vector<std::string> backlog_exec, backlog_sleep;
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
      (i < 20 ? backlog_exec : backlog_sleep).push_back(id);
    }
  }
  // Kill it while it runs an exec and a sleep job of the backlog (so that
  // reruns and crashed attempts are bound to happen, whatever the load).
  const auto running_by = Clock::now() + std::chrono::seconds(60);
  auto runs_one_of = [&](const std::vector<std::string>& ids) {
    for (const auto& id : ids) {
      const auto job = cluster.get(kVictim, id);
      if (job && job->state() == v1::JOB_STATE_RUNNING) return true;
    }
    return false;
  };
  while (!(runs_one_of(backlog_exec) && runs_one_of(backlog_sleep)) && Clock::now() < running_by) {
  }
  cluster.replica(kVictim).send_signal(SIGKILL);
  ASSERT_TRUE(cluster.replica(kVictim).wait_exit(std::chrono::seconds(10)).has_value());
  for (auto& c : clients) c.join();
  for (const auto& e : errors) ADD_FAILURE() << e;

  // Every acknowledged job ends SUCCEEDED (a crashed attempt is retried),
  // and two survivors report the same terminal state and time.
  const auto until = Clock::now() + std::chrono::seconds(120 + jobs / 500);
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
    // The other survivor agrees once it has caught up (a replica that lost
    // a lease it did not yet know about still reports its own attempt).
    const auto again = cluster.await_terminal(asked == 0 ? 1 : 0, id, until);
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
  // The kill fell while the victim ran backlog jobs (2 exec + 4 sleep actors
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
  const auto seen = cluster.await_running(1, id, until);
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

/// Submits `req` to replica `i` as client `kind` does: 0 async Submit, 1
/// Submit with wait=true (the terminal job in `job`), 2 SubmitStream.
/// Returns the job id ("" when refused, with why in `error`).
std::string submit_as(Cluster& cluster, std::size_t i, int kind, v1::SubmitRequest req,
                      bool& duplicate, std::optional<v1::Job>& job, std::string& error) {
  if (kind == 2) {
    auto acks = submit_stream(cluster.stub(i), {req});
    if (acks.count(0) == 0) {
      error = "no ack";
      return {};
    }
    const auto& ack = acks.at(0);
    if (ack.code() != 0) error = ack.message();
    duplicate = ack.duplicate();
    return ack.job_id();
  }
  req.set_wait(kind == 1);
  v1::SubmitResponse resp;
  const grpc::Status status = submit(cluster.stub(i), req, resp);
  if (!status.ok()) {
    error = status.error_message();
    return {};
  }
  duplicate = resp.duplicate();
  if (resp.has_job()) job = resp.job();
  return resp.job_id();
}

TEST(Cluster, OneIdempotencyKeySentToEveryReplicaAtOnceMakesOneJob) {
  Cluster cluster(3);
  constexpr int kKeys = 6;
  std::vector<std::string> ids;
  for (int k = 0; k < kKeys; ++k) {
    v1::SubmitRequest req = request("exec", "0");
    req.set_idempotency_key("idem-" + std::to_string(k));
    // Every replica gets the key at the same moment, each through another
    // kind of submit (rotated per key): async, wait=true, stream.
    struct Answer {
      std::string id;
      bool duplicate = false;
      std::optional<v1::Job> job;
      std::string error;
    };
    std::vector<Answer> answers(cluster.size());
    std::atomic<std::size_t> ready{0};
    std::vector<std::thread> clients;
    for (std::size_t r = 0; r < cluster.size(); ++r) {
      clients.emplace_back([&, r] {
        ++ready;
        while (ready.load() < cluster.size()) std::this_thread::yield();  // a start line
        Answer& a = answers[r];
        a.id =
            submit_as(cluster, r, static_cast<int>((r + k) % 3), req, a.duplicate, a.job, a.error);
      });
    }
    for (auto& c : clients) c.join();
    int originals = 0;
    for (std::size_t r = 0; r < cluster.size(); ++r) {
      const Answer& a = answers[r];
      ASSERT_FALSE(a.id.empty()) << "replica " << r << " refused key " << k << ": " << a.error;
      EXPECT_EQ(a.id, answers[0].id) << "replica " << r << ", key " << k;
      originals += a.duplicate ? 0 : 1;
      if ((r + k) % 3 == 1) {  // wait=true: the job's end, wherever it ran
        ASSERT_TRUE(a.job.has_value()) << "replica " << r;
        EXPECT_EQ(a.job->state(), v1::JOB_STATE_SUCCEEDED);
        EXPECT_EQ(a.job->id(), a.id);
      }
    }
    EXPECT_EQ(originals, 1) << "key " << k;
    ids.push_back(answers[0].id);
  }
  // One job per key ran, once.
  for (const auto& id : ids) {
    auto job = cluster.await_terminal(0, id, Clock::now() + std::chrono::seconds(30));
    ASSERT_TRUE(job.has_value());
    EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED);
    EXPECT_EQ(runs_of(cluster.runs_dir() / id), 1u) << id;
  }
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& f : fs::directory_iterator(cluster.runs_dir())) ++files;
  EXPECT_EQ(files, ids.size());

  // Sent again after the job finished, to every replica by every kind of
  // submit: the same job, a duplicate, and nothing runs again.
  for (int k = 0; k < kKeys; ++k) {
    v1::SubmitRequest req = request("exec", "0");
    req.set_idempotency_key("idem-" + std::to_string(k));
    for (std::size_t r = 0; r < cluster.size(); ++r) {
      for (int kind = 0; kind < 3; ++kind) {
        bool duplicate = false;
        std::optional<v1::Job> job;
        std::string error;
        const std::string id = submit_as(cluster, r, kind, req, duplicate, job, error);
        EXPECT_EQ(id, ids[k]) << "replica " << r << ", kind " << kind << ": " << error;
        EXPECT_TRUE(duplicate);
        if (kind == 1) {
          ASSERT_TRUE(job.has_value());
          EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED);
        }
      }
    }
    EXPECT_EQ(runs_of(cluster.runs_dir() / ids[k]), 1u);
  }
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
  const auto seen = cluster.await_running(1, id, until);
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
  }
  // Both end with the new owner's outcome: the local one too, since a
  // terminal outcome is told once its write committed, and only if the
  // store kept it (a watch that reached replica 0 after its attempt ended
  // waits for that answer as well).
  EXPECT_GE(remote.attempts().back(), 2u);
  EXPECT_GE(local.attempts().back(), 2u)
      << "the local watch ended with replica 0's own attempt: states "
      << ::testing::PrintToString(local.states()) << ", attempts "
      << ::testing::PrintToString(local.attempts());
  const auto answered = cluster.await_state(
      0, id, [](v1::JobState s) { return s == v1::JOB_STATE_SUCCEEDED; },
      until + std::chrono::seconds(10));
  ASSERT_TRUE(answered.has_value());
  // Its first SUCCEEDED is the store's: GetJob, too, waits for the refusal.
  EXPECT_GE(answered->attempts(), 2u) << "replica 0 answered its own stale outcome";
}

TEST(Cluster, ADrainingReplicaHandsItsQueuedJobsToTheOthers) {
  Cluster cluster(2);
  // Replica 0 gets more sleep jobs than it can finish before its drain
  // deadline (4 actors, 40 x 1s, deadline 5s).
  std::vector<std::string> ids;
  for (int i = 0; i < 40; ++i) {
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

/// GetCluster from replica `i`; nullopt (with the status in `error`) when
/// the call fails.
std::optional<v1::GetClusterResponse> get_cluster(Cluster& cluster, std::size_t i,
                                                  std::string* error = nullptr) {
  auto stub = v1::AdminService::NewStub(cluster.replica(i).channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::GetClusterResponse resp;
  const auto status = stub->GetCluster(&ctx, v1::GetClusterRequest(), &resp);
  if (!status.ok()) {
    if (error != nullptr) *error = status.error_message();
    return std::nullopt;
  }
  return resp;
}

const v1::ClusterTroupe* troupe_in(const v1::GetClusterResponse& view, const std::string& name) {
  for (const auto& t : view.troupes()) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

const v1::ClusterReplica* replica_in(const v1::GetClusterResponse& view, const std::string& name) {
  for (const auto& r : view.replicas()) {
    if (r.name() == name) return &r;
  }
  return nullptr;
}

TEST(Cluster, GetClusterTroupectlAndTheGaugesShowReplicasAndTheClusterQueue) {
  Cluster cluster;
  // A backlog on replica 0: 4 actors run 4 jobs of 60 s, 16 wait in its
  // mailbox (owned by replica 0: the others do not claim them).
  const auto submitted = Clock::now();
  for (int i = 0; i < 20; ++i) {
    v1::SubmitResponse resp;
    ASSERT_TRUE(submit(cluster.stub(0), request("sleep", "60s"), resp).ok());
  }

  // Replica 1 never saw those submits: it answers from the store.
  const auto until = Clock::now() + std::chrono::seconds(30);
  std::optional<v1::GetClusterResponse> view;
  std::string error;
  for (;;) {
    view = get_cluster(cluster, 1, &error);
    const v1::ClusterTroupe* sleep = view ? troupe_in(*view, "sleep") : nullptr;
    if (sleep != nullptr && sleep->queue_depth() == 16 && sleep->running() == 4) break;
    ASSERT_LT(Clock::now(), until)
        << "GetCluster never showed the backlog: " << (view ? view->DebugString() : error);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling a client's view
  }
  ASSERT_EQ(view->replicas_size(), 3) << view->DebugString();
  for (int i = 0; i < 3; ++i) {
    const auto* r = replica_in(*view, "replica-" + std::to_string(i));
    ASSERT_NE(r, nullptr) << i << ": " << view->DebugString();
    EXPECT_TRUE(r->alive()) << r->DebugString();
    EXPECT_LT(r->heartbeat_age().seconds(), 2) << r->DebugString();  // within the lease
  }
  const auto* sleep = troupe_in(*view, "sleep");
  const double age_limit =
      std::chrono::duration<double>(Clock::now() - submitted).count() + 1;  // clock slack
  EXPECT_LE(sleep->oldest_queued_age().seconds(), age_limit) << sleep->DebugString();
  const auto* echo = troupe_in(*view, "echo");  // hosted, nothing unfinished
  ASSERT_NE(echo, nullptr) << view->DebugString();
  EXPECT_EQ(echo->queue_depth(), 0u);
  EXPECT_EQ(echo->running(), 0u);
  EXPECT_FALSE(echo->has_oldest_queued_age());
  EXPECT_EQ(sleep->holder(), "");  // not a singleton

  // troupectl against replica 2 prints the same.
  auto ctl = run_process(
      {.argv = {TROUPECTL_PATH, "--address", cluster.replica(2).grpc_address(), "cluster"},
       .time_limit = std::chrono::seconds(30)});
  ASSERT_EQ(ctl.exit_code, 0) << ctl;
  std::map<std::string, std::vector<std::string>> rows;  // first column -> the row's columns
  std::istringstream lines(ctl.out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::vector<std::string> columns;
    for (std::string w; words >> w;) columns.push_back(w);
    if (!columns.empty()) rows[columns[0]] = columns;
  }
  for (int i = 0; i < 3; ++i) {
    const auto& row = rows["replica-" + std::to_string(i)];
    ASSERT_GE(row.size(), 4u) << ctl.out;
    EXPECT_EQ(row[2], "yes") << ctl.out;  // REPLICA INCARNATION ALIVE HEARTBEAT
  }
  ASSERT_GE(rows["sleep"].size(), 3u) << ctl.out;
  EXPECT_EQ(rows["sleep"][1], "16") << ctl.out;  // TROUPE QUEUED RUNNING OLDEST HOLDER
  EXPECT_EQ(rows["sleep"][2], "4") << ctl.out;

  // The gauges of every replica: the cluster's numbers, refreshed each
  // heartbeat (500 ms here), not only the replica's own.
  auto gauges_show = [&](std::size_t i, double replicas) {
    const auto scrape = http_get(cluster.replica(i).metrics_address(), "/metrics");
    return scrape.status == 200 &&
           metric_value(scrape.body, "troupe_cluster_queue_depth{troupe=\"sleep\"}") == 16.0 &&
           metric_value(scrape.body, "troupe_cluster_queue_depth{troupe=\"echo\"}") == 0.0 &&
           metric_value(scrape.body, "troupe_cluster_oldest_queued_seconds{troupe=\"sleep\"}")
                   .value_or(0) > 0 &&
           metric_value(scrape.body, "troupe_cluster_replicas") == replicas;
  };
  for (std::size_t i = 0; i < 3; ++i) {
    const auto gauges_by = Clock::now() + std::chrono::seconds(30);
    while (!gauges_show(i, 3)) {
      ASSERT_LT(Clock::now(), gauges_by)
          << "replica " << i << ": "
          << http_get(cluster.replica(i).metrics_address(), "/metrics").body;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling a scrape
    }
  }

  // Replica 2 is SIGKILLed: once its lease (3 s) has expired it is no
  // longer alive (shown not alive until a survivor's heartbeat reaps its
  // row, then gone), and the gauge counts 2 replicas.
  const auto killed = Clock::now();
  cluster.replica(2).send_signal(SIGKILL);
  const auto dead_by = Clock::now() + std::chrono::seconds(30);
  bool seen_not_alive = false;
  for (;;) {
    view = get_cluster(cluster, 0, &error);
    ASSERT_TRUE(view.has_value()) << error;
    const auto* victim = replica_in(*view, "replica-2");
    if (victim != nullptr && !victim->alive()) seen_not_alive = true;
    if (victim == nullptr || !victim->alive()) break;
    ASSERT_LT(Clock::now(), dead_by) << view->DebugString();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a client's view
  }
  EXPECT_GE(Clock::now() - killed, std::chrono::milliseconds(2500))  // not before its lease
      << view->DebugString();
  std::cout << "replica-2 " << (seen_not_alive ? "shown not alive" : "already reaped") << " "
            << std::chrono::duration<double>(Clock::now() - killed).count() << " s after SIGKILL\n";
  EXPECT_TRUE(replica_in(*view, "replica-0")->alive());
  EXPECT_TRUE(replica_in(*view, "replica-1")->alive());
  const auto gauge_by = Clock::now() + std::chrono::seconds(30);
  for (;;) {
    const auto scrape = http_get(cluster.replica(1).metrics_address(), "/metrics");
    if (metric_value(scrape.body, "troupe_cluster_replicas") == 2.0) break;
    ASSERT_LT(Clock::now(), gauge_by) << scrape.body;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling a scrape
  }
}

TEST(Cluster, MaxConcurrencyCapsRunningAttemptsAcrossReplicas) {
  CountingServer server(std::chrono::milliseconds(100));
  // Each replica could run 5 at once: 15 without the cap.
  Cluster cluster(3, [&](const std::string&) {
    return "  - name: capped\n"
           "    mode: fixed\n"
           "    actors: 5\n"
           "    mailbox: 1024\n"
           "    cluster: {max_concurrency: 5}\n"
           "    handler: {kind: http, url: \"" +
           server.url() + "\"}\n";
  });
  // GetCluster from replica 0 while the load runs: the permits each
  // replica holds (every view's sum at most 5).
  std::atomic<bool> load_done{false};
  std::uint32_t most_permits = 0;
  std::size_t views = 0;
  std::vector<std::string> permit_errors;
  std::thread viewer([&] {
    while (!load_done.load()) {
      std::string error;
      auto view = get_cluster(cluster, 0, &error);
      const v1::ClusterTroupe* capped = view ? troupe_in(*view, "capped") : nullptr;
      if (capped == nullptr) {
        permit_errors.push_back("no capped troupe in the view: " + error);
      } else {
        ++views;
        std::uint32_t sum = 0;
        for (const auto& p : capped->permits()) {
          sum += p.permits();
          const auto* r = replica_in(*view, p.replica());
          if (r == nullptr || r->incarnation() != p.incarnation()) {
            permit_errors.push_back("permits of an unknown replica: " + p.DebugString());
          }
        }
        if (sum > 5 || capped->max_concurrency() != 5) {
          permit_errors.push_back("over the cap: " + capped->DebugString());
        }
        most_permits = std::max(most_permits, sum);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling a client's view
    }
  });
  struct StopViewer {  // also when an assertion below returns early
    std::atomic<bool>& done;
    std::thread& thread;
    ~StopViewer() {
      done = true;
      if (thread.joinable()) thread.join();
    }
  } stop_viewer{load_done, viewer};
  const auto began = Clock::now();
  const std::vector<std::string> ids = submit_round_robin(cluster, request("capped", "x"), 240);
  ASSERT_EQ(ids.size(), 240u);
  const auto until = Clock::now() + std::chrono::seconds(50);
  for (const auto& id : ids) {
    auto job = cluster.await_terminal(0, id, until);
    ASSERT_TRUE(job.has_value()) << id;
    ASSERT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED) << id << ": " << job->error();
  }
  load_done = true;
  viewer.join();
  EXPECT_TRUE(permit_errors.empty()) << permit_errors.front();
  EXPECT_GT(views, 0u);
  EXPECT_GT(most_permits, 0u) << "GetCluster never showed a permit held in " << views << " views";
  std::cout << "GetCluster during the load: " << views << " views, at most " << most_permits
            << " permits held\n";
  const double at_cap = server.share_at(5);
  std::cout << "max_concurrency 5 over 3 replicas: " << ids.size() << " jobs of 100 ms in "
            << std::chrono::duration<double>(Clock::now() - began).count() << " s, at most "
            << server.most() << " in progress, 5 in progress " << at_cap * 100 << "% of the time\n";
  EXPECT_LE(server.most(), 5u);
  EXPECT_GE(at_cap, 0.5) << "the cap is reached less than half of the time";
}

TEST(Cluster, ARateLimitHoldsAcrossReplicas) {
  CountingServer server(std::chrono::milliseconds(0));
  // Each replica alone could call the server thousands of times a second.
  Cluster cluster(3, [&](const std::string& name) {
    return "  - name: rated\n"
           "    mode: fixed\n"
           "    actors: 8\n"
           "    mailbox: 1024\n"
           "    circuit_breaker: {enabled: false}\n"
           "    cluster: {rate_limit: {per_second: 200}}\n"
           "    handler: {kind: http, url: \"" +
           server.url() + "\", headers: {X-Replica: " + name + "}}\n";
  });
  // A backlog for about 34 s at 200/s, submitted round-robin.
  constexpr std::size_t kJobs = 6800;
  ASSERT_EQ(submit_round_robin(cluster, request("rated", "x"), kJobs).size(), kJobs);
  // Calls in a 30 s window that starts 2 s after the first (past the
  // bucket's initial burst), while the backlog lasts: the record is read
  // once a call started after the window's end (tokens come in blocks, so
  // the moment the window ends may fall in a gap between calls).
  const auto window_end = [&] {
    std::vector<CountingServer::Request> seen;
    const auto until = Clock::now() + std::chrono::seconds(60);
    for (;;) {
      seen = server.requests();
      if (!seen.empty() && seen.back().start - seen.front().start >= std::chrono::seconds(32)) {
        break;
      }
      if (Clock::now() >= until) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the server's record
    }
    return seen;
  }();
  ASSERT_FALSE(window_end.empty());
  const auto from = window_end.front().start + std::chrono::seconds(2);
  const auto to = from + std::chrono::seconds(30);
  std::size_t in_window = 0;
  std::size_t first_two_seconds = 0;
  std::map<std::string, std::size_t> by_replica;
  for (const auto& r : window_end) {
    if (r.start < from) ++first_two_seconds;
    if (r.start >= from && r.start < to) {
      ++in_window;
      ++by_replica[r.replica];
    }
  }
  ASSERT_GE(window_end.back().start, to) << "the backlog ran out before the window ended";
  const double rate = static_cast<double>(in_window) / 30.0;
  std::cout << "cluster rate_limit 200/s over 3 replicas: " << in_window << " calls in 30 s ("
            << rate << "/s; " << first_two_seconds << " in the 2 s before); by replica:";
  for (const auto& [replica, n] : by_replica) std::cout << " " << replica << "=" << n;
  std::cout << "\n";
  EXPECT_GE(rate, 190.0);
  EXPECT_LE(rate, 210.0);
  EXPECT_EQ(by_replica.size(), 3u) << "every replica takes tokens";
}

/// The `dispatch: key` troupe "ordered" (4 actors, retried on a crash)
/// calling `server`, marked with the replica's name.
std::function<std::string(const std::string&)> ordered_troupe(CountingServer& server) {
  return [&server](const std::string& name) {
    return "  - name: ordered\n"
           "    mode: fixed\n"
           "    actors: 4\n"
           "    mailbox: 1024\n"
           "    dispatch: key\n"
           "    retry: {max_attempts: 5, initial_backoff: 20ms, max_backoff: 100ms}\n"
           "    circuit_breaker: {enabled: false}\n"
           "    handler: {kind: http, url: \"" +
           server.url() + "\", headers: {X-Replica: " + name + "}}\n";
  };
}

/// Keyed jobs of troupe "ordered", one client per key: key k's client
/// submits jobs 0, 1, ... (payload "k<k> <n>", key "k<k>", shaped by
/// `shape`) one after another, each after the previous one's ack, to
/// replica (k + n) % N first, then to the next ones while refused (a
/// replica `skip` names is passed over); `answered` may refuse an answer
/// (its reason). `meanwhile` runs on the calling thread while the clients
/// do. Returns the ids per key; a key's failure is in `errors`.
std::vector<std::vector<std::string>> submit_keyed_jobs(
    Cluster& cluster, int keys, int per_key, std::vector<std::string>& errors,
    const std::function<void(int k, int n, v1::SubmitRequest&)>& shape,
    const std::function<bool(std::size_t replica)>& skip,
    const std::function<std::string(int k, const v1::SubmitResponse&)>& answered,
    const std::function<void()>& meanwhile) {
  std::vector<std::vector<std::string>> ids(keys);
  errors.assign(keys, {});
  std::vector<std::thread> clients;
  for (int k = 0; k < keys; ++k) {
    clients.emplace_back([&, k] {
      const std::string key = "k" + std::to_string(k);
      for (int n = 0; n < per_key; ++n) {
        v1::SubmitRequest req = request("ordered", key + " " + std::to_string(n));
        req.set_key(key);
        shape(k, n, req);
        v1::SubmitResponse resp;
        grpc::Status status;
        for (std::size_t tried = 0, to = (k + n) % cluster.size(); tried < 2 * cluster.size();
             ++tried, to = (to + 1) % cluster.size()) {
          if (skip(to)) continue;
          status = submit(cluster.stub(to), req, resp);
          if (status.ok()) break;
        }
        if (!status.ok()) {
          errors[k] = status.error_message();
          return;
        }
        if (auto refused = answered(k, resp); !refused.empty()) {
          errors[k] = refused;
          return;
        }
        ids[k].push_back(resp.job_id());
      }
    });
  }
  meanwhile();
  for (auto& c : clients) c.join();
  return ids;
}

/// The server's calls by job key (a payload's first word), in its order.
std::map<std::string, std::vector<CountingServer::Request>> calls_by_key(CountingServer& server) {
  std::map<std::string, std::vector<CountingServer::Request>> by_key;
  for (const auto& r : server.requests()) by_key[r.body.substr(0, r.body.find(' '))].push_back(r);
  return by_key;
}

/// Every job of `ids` ends SUCCEEDED (asked of replica `asked`); `attempts`
/// gets each one's attempts, by key and job.
void expect_all_succeeded(Cluster& cluster, std::size_t asked,
                          const std::vector<std::vector<std::string>>& ids,
                          std::chrono::seconds within,
                          std::vector<std::vector<std::uint32_t>>* attempts = nullptr) {
  const auto until = Clock::now() + within;
  for (const auto& of_key : ids) {
    if (attempts != nullptr) attempts->emplace_back();
    for (const auto& id : of_key) {
      auto job = cluster.await_terminal(asked, id, until);
      ASSERT_TRUE(job.has_value()) << id;
      ASSERT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED) << id << ": " << job->error();
      if (attempts != nullptr) attempts->back().push_back(job->attempts());
    }
  }
}

TEST(Cluster, OneKeysJobsSubmittedToEveryReplicaRunOneAtATimeInOrder) {
  CountingServer server(std::chrono::milliseconds(20));
  Cluster cluster(3, ordered_troupe(server));
  // 6 keys x 20 jobs, the keys' clients at once. Key k0's client waits for
  // each result (wait=true: answered with the outcome wherever the job ran).
  constexpr int kKeys = 6;
  constexpr int kPerKey = 20;
  std::vector<std::string> errors;
  const auto ids = submit_keyed_jobs(
      cluster, kKeys, kPerKey, errors,
      [](int k, int, v1::SubmitRequest& req) { req.set_wait(k == 0); },
      [](std::size_t) { return false; },
      [](int k, const v1::SubmitResponse& resp) -> std::string {
        if (k != 0 ||
            (resp.job().id() == resp.job_id() && resp.job().state() == v1::JOB_STATE_SUCCEEDED)) {
          return {};
        }
        return "wait=true answered " + resp.DebugString();
      },
      [] {});
  for (int k = 0; k < kKeys; ++k) ASSERT_EQ(ids[k].size(), std::size_t{kPerKey}) << errors[k];
  expect_all_succeeded(cluster, 0, ids, std::chrono::seconds(60));
  // Per key, in the order the server saw them: 0, 1, 2, ..., each call
  // starting after the one before was answered.
  const auto by_key = calls_by_key(server);
  ASSERT_EQ(by_key.size(), std::size_t{kKeys});
  std::size_t moved = 0;
  std::cout << "key order over 3 replicas: " << kKeys << " keys x " << kPerKey
            << " jobs submitted round-robin; replicas per key:";
  for (const auto& [key, calls] : by_key) {
    ASSERT_EQ(calls.size(), std::size_t{kPerKey}) << key << ": each job called once";
    std::set<std::string> replicas;
    for (std::size_t n = 0; n < calls.size(); ++n) {
      replicas.insert(calls[n].replica);
      EXPECT_EQ(calls[n].body, key + " " + std::to_string(n)) << "out of order";
      if (n > 0) {
        EXPECT_GE(calls[n].start, calls[n - 1].end)
            << calls[n].body << " started before " << calls[n - 1].body << " was answered";
        if (calls[n].replica != calls[n - 1].replica) ++moved;
      }
    }
    std::cout << " " << key << "=" << replicas.size();
  }
  std::cout << "; the keys moved between replicas " << moved << " times\n";
}

TEST(Cluster, OneKeysJobsKeepTheirOrderWhenAReplicaRunningThemIsKilled) {
  CountingServer server(std::chrono::milliseconds(50));
  Cluster cluster(3, ordered_troupe(server));
  // 4 keys x 30 jobs of 50 ms, with an idempotency key per job so that a
  // client can resend a submit the killed replica did not answer to
  // another replica. Once the server has had 20 calls, the replica that
  // made the latest one is killed (it holds a key then, with an attempt in
  // progress and likely jobs queued).
  constexpr int kKeys = 4;
  constexpr int kPerKey = 30;
  std::atomic<std::size_t> victim{cluster.size()};  // none yet
  std::string victim_name;
  std::vector<std::string> errors;
  const auto ids = submit_keyed_jobs(
      cluster, kKeys, kPerKey, errors,
      [](int k, int n, v1::SubmitRequest& req) {
        req.set_idempotency_key("k" + std::to_string(k) + "-" + std::to_string(n));
      },
      [&](std::size_t replica) { return replica == victim.load(); },
      [](int, const v1::SubmitResponse&) { return std::string(); },
      [&] {
        const auto by = Clock::now() + std::chrono::seconds(30);
        std::vector<CountingServer::Request> seen;
        while ((seen = server.requests()).size() < 20 && Clock::now() < by) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the server's record
        }
        if (seen.empty()) return;
        victim_name = seen.back().replica;  // "replica-<i>"
        victim = std::stoul(victim_name.substr(victim_name.find('-') + 1));
        cluster.replica(victim).send_signal(SIGKILL);
      });
  ASSERT_FALSE(victim_name.empty()) << "no call within 30 s";
  for (int k = 0; k < kKeys; ++k) ASSERT_EQ(ids[k].size(), std::size_t{kPerKey}) << errors[k];
  std::vector<std::vector<std::uint32_t>> attempts;
  expect_all_succeeded(cluster, (victim + 1) % cluster.size(), ids, std::chrono::seconds(90),
                       &attempts);
  // Per key, in the server's order: the first calls of the jobs are 0, 1,
  // 2, ...; a job is called again only when its first call came from the
  // killed replica (the attempt it cut short: a CRASH, retried after its
  // backoff, during which the key's later jobs may run, as on one trouped);
  // never two calls of a key at once. The kill may also cut an attempt
  // short before its call reached the server: that job's first call then
  // comes after later jobs', and it ended on a second attempt.
  const auto by_key = calls_by_key(server);
  ASSERT_EQ(by_key.size(), std::size_t{kKeys});
  ASSERT_EQ(attempts.size(), std::size_t{kKeys});
  std::size_t again = 0;
  std::size_t late = 0;
  std::size_t victim_calls = 0;
  for (const auto& [key, calls] : by_key) {
    const auto& tries = attempts[std::stoul(key.substr(1))];  // "k<i>"
    std::map<int, std::string> first_by;  // job -> the replica of its first call
    std::set<int> passed;                 // jobs passed over by a later job's first call
    int expected = 0;
    for (std::size_t i = 0; i < calls.size(); ++i) {
      const int n = std::stoi(calls[i].body.substr(calls[i].body.find(' ') + 1));
      if (calls[i].replica == victim_name) ++victim_calls;
      if (auto seen = first_by.find(n); seen != first_by.end()) {
        ++again;
        EXPECT_EQ(seen->second, victim_name)
            << calls[i].body << " ran again after its first call from " << seen->second;
      } else {
        first_by.emplace(n, calls[i].replica);
        if (n < expected) {
          ++late;
          EXPECT_EQ(passed.erase(n), 1u) << calls[i].body << ": called twice first";
        } else {
          for (int m = expected; m < n; ++m) {
            passed.insert(m);
            EXPECT_GE(tries[m], 2u) << key << " " << m << " was passed over by " << calls[i].body
                                    << " though no attempt of it was cut short: out of order";
          }
          expected = n + 1;
        }
      }
      if (i > 0) {
        EXPECT_GE(calls[i].start, calls[i - 1].end)
            << calls[i].body << " started before " << calls[i - 1].body << " was answered";
      }
    }
    EXPECT_EQ(expected, kPerKey) << key;
    EXPECT_TRUE(passed.empty()) << key << ": a job passed over was never called";
  }
  EXPECT_GT(victim_calls, 0u);
  std::cout << "key order across a kill: " << kKeys << " keys x " << kPerKey << " jobs, "
            << victim_calls << " calls by the killed " << victim_name << ", " << again
            << " calls again after it was killed mid-call, " << late
            << " first calls after later jobs' (an attempt cut short before its call)\n";
}

TEST(Cluster, ASingletonTroupeRunsOnOneReplicaAndMovesWhenItIsKilled) {
  CountingServer server(std::chrono::milliseconds(30));
  Cluster cluster(3, [&](const std::string& name) {
    return "  - name: single\n"
           "    mode: fixed\n"
           "    actors: 1\n"
           "    mailbox: 1024\n"
           "    retry: {max_attempts: 3, initial_backoff: 20ms, max_backoff: 100ms}\n"
           "    circuit_breaker: {enabled: false}\n"
           "    cluster: {singleton: true}\n"
           "    handler: {kind: http, url: \"" +
           server.url() + "\", headers: {X-Replica: " + name + "}}\n";
  });
  auto submit_all = [&](int n, std::vector<std::string>& ids) {
    for (int i = 0; i < n; ++i) {
      v1::SubmitResponse resp;
      const auto status = submit(cluster.stub(i % cluster.size()), request("single", "x"), resp);
      ASSERT_TRUE(status.ok()) << status.error_message();
      ids.push_back(resp.job_id());
    }
  };
  std::vector<std::string> ids;
  submit_all(30, ids);
  const auto until = Clock::now() + std::chrono::seconds(30);
  for (const auto& id : ids) {
    auto job = cluster.await_terminal(1, id, until);
    ASSERT_TRUE(job.has_value()) << id;
    ASSERT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED) << id << ": " << job->error();
  }
  auto first = server.requests();
  ASSERT_FALSE(first.empty());
  const std::string holder = first.front().replica;
  const std::int64_t term = first.front().term;
  EXPECT_GT(term, 0);
  for (const auto& r : first) {
    EXPECT_EQ(r.replica, holder);  // submitted to all three, run by one
    EXPECT_EQ(r.term, term);
  }
  const std::size_t victim = static_cast<std::size_t>(holder.back() - '0');

  // GetCluster, from a replica that does not hold it, names the holder: the
  // replica that ran the jobs, with the term they carried.
  auto lease_shown = [&](std::size_t from,
                         const std::function<bool(const v1::ClusterTroupe&)>& ok) {
    const auto by = Clock::now() + std::chrono::seconds(20);
    std::optional<v1::GetClusterResponse> view;
    std::string error;
    for (;;) {
      view = get_cluster(cluster, from, &error);
      const v1::ClusterTroupe* single = view ? troupe_in(*view, "single") : nullptr;
      if (single != nullptr && ok(*single)) return *single;
      if (Clock::now() >= by) {
        ADD_FAILURE() << "GetCluster never showed the lease: "
                      << (view ? view->DebugString() : error);
        return v1::ClusterTroupe();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling a client's view
    }
  };
  {
    const auto single = lease_shown((victim + 1) % cluster.size(),
                                    [](const v1::ClusterTroupe& t) { return t.lease().held(); });
    EXPECT_EQ(single.holder(), holder) << single.DebugString();
    EXPECT_EQ(single.lease().replica(), holder);
    EXPECT_EQ(single.lease().term(), term);
    EXPECT_NE(single.lease().incarnation(), 0);
    EXPECT_TRUE(single.singleton());
    EXPECT_EQ(single.permits_size(), 0);
  }

  // wait=true on a replica that does not hold the lease: the holder runs
  // the job, and the caller gets its outcome from the store (docs/cluster.md).
  {
    const std::size_t follower = (victim + 1) % cluster.size();
    v1::SubmitResponse resp;
    const auto status = submit(cluster.stub(follower), request("single", "x", true), resp);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(resp.job().id(), resp.job_id());
    EXPECT_EQ(resp.job().state(), v1::JOB_STATE_SUCCEEDED);
    auto job =
        cluster.await_terminal(follower, resp.job_id(), Clock::now() + std::chrono::seconds(20));
    ASSERT_TRUE(job.has_value());
    EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED);
  }

  // A backlog (30 ms each, one at a time), then the holder is SIGKILLed.
  std::vector<std::string> more;
  submit_all(60, more);
  const auto kill_by = Clock::now() + std::chrono::seconds(20);
  while (server.requests().size() < first.size() + 10 && Clock::now() < kill_by) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // watching the load's progress
  }
  cluster.replica(victim).send_signal(SIGKILL);
  const auto killed = Clock::now();
  ASSERT_TRUE(cluster.replica(victim).wait_exit(std::chrono::seconds(10)).has_value());

  const std::size_t asked = victim == 0 ? 1 : 0;
  const auto later = Clock::now() + std::chrono::seconds(40);
  for (const auto& id : more) {
    auto job = cluster.await_terminal(asked, id, later);
    ASSERT_TRUE(job.has_value()) << id;
    ASSERT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED) << id << ": " << job->error();
  }
  const auto all = server.requests();
  std::optional<Clock::time_point> taken_over;
  std::int64_t last_term = 0;
  std::set<std::string> holders;
  for (const auto& r : all) {
    EXPECT_GE(r.term, last_term) << "a request with an older fencing term came later";
    last_term = std::max(last_term, r.term);
    holders.insert(r.replica);
    if (r.term > term && !taken_over) taken_over = r.start;
  }
  ASSERT_TRUE(taken_over.has_value()) << "no replica took the singleton over";
  EXPECT_GT(last_term, term);
  EXPECT_EQ(holders.size(), 2u);
  EXPECT_EQ(server.overlapping(), 0u) << "two attempts of the singleton ran at once";
  const double took = std::chrono::duration<double>(*taken_over - killed).count();
  std::cout << "singleton: " << all.size() << " requests, holder " << holder << " (term " << term
            << ") killed, the next holder's first request " << took
            << " s later (lease 2 s + heartbeat 0.5 s), term " << last_term << "\n";
  EXPECT_LT(took, 2.5 + 1.0);  // lease + heartbeat, plus the claim and the request

  // The view follows: the new holder, with the term its requests carried.
  std::string new_holder;
  for (const auto& r : all) {
    if (r.term == last_term) new_holder = r.replica;
  }
  const auto single = lease_shown(asked, [&](const v1::ClusterTroupe& t) {
    return t.lease().held() && t.lease().term() == last_term;
  });
  EXPECT_EQ(single.holder(), new_holder) << single.DebugString();
  EXPECT_NE(single.holder(), holder);
}

TEST(Cluster, ReplicasRideOutADatabaseOutage) {
  Cluster cluster(2);
  std::vector<std::string> before;
  for (int i = 0; i < 200; ++i) {
    v1::SubmitResponse resp;
    ASSERT_TRUE(submit(cluster.stub(i % 2), request("sleep", "50ms"), resp).ok());
    before.push_back(resp.job_id());
  }
  // before[0] went to replica 0, which holds it; replica 1 must ask the store.
  const std::string held_by_0 = before[0];
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
    // The cluster view says the store did not answer, not that it is empty.
    auto admin = v1::AdminService::NewStub(cluster.replica(r).channel());
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GetClusterResponse view;
    const auto cluster_status = admin->GetCluster(&ctx, v1::GetClusterRequest(), &view);
    EXPECT_EQ(cluster_status.error_code(), grpc::StatusCode::UNAVAILABLE)
        << cluster_status.error_message();
  }

  // Lookups of a job held by another replica: the store did not answer, so
  // UNAVAILABLE naming it, not NOT_FOUND; the holder answers from memory.
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GetJobRequest req;
    req.set_job_id(held_by_0);
    v1::Job job;
    const auto status = cluster.stub(1).GetJob(&ctx, req, &job);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
    EXPECT_NE(status.error_message().find("postgres store"), std::string::npos)
        << status.error_message();
    EXPECT_TRUE(cluster.get(0, held_by_0).has_value()) << "the holder does not answer";
  }
  {
    Watch watch(cluster.stub(1), held_by_0);
    const auto status = watch.finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
    EXPECT_TRUE(watch.states().empty());
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::CancelJobRequest req;
    req.set_job_id(held_by_0);
    v1::CancelJobResponse resp;
    const auto status = cluster.stub(1).CancelJob(&ctx, req, &resp);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  }
  {
    auto admin = v1::AdminService::NewStub(cluster.replica(1).channel());
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ListDeadJobsRequest req;
    req.set_troupe("sleep");
    v1::ListDeadJobsResponse resp;
    const auto status = admin->ListDeadJobs(&ctx, req, &resp);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  }

  cluster.postgres().restart();
  {
    // Replica 1 finds it in the store again.
    const auto until = Clock::now() + std::chrono::seconds(60);
    auto job = cluster.get(1, held_by_0);
    while (!job && Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling a client's view
      job = cluster.get(1, held_by_0);
    }
    ASSERT_TRUE(job.has_value()) << "replica 1 does not answer for " << held_by_0 << " again";
    EXPECT_EQ(job->id(), held_by_0);
  }
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
