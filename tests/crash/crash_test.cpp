// The crash test (issue 13, "Proof"; ctest label `crash`): the real trouped on
// a SQLite store, driven by real gRPC clients (async, wait and stream submits;
// keys and idempotency keys) against builtin, sleep, exec and failing troupes,
// SIGKILLed at random moments for TROUPE_CRASH_ROUNDS rounds (default 30) and
// restarted each time on the same config and store. The clients record every
// acknowledgement; the checks run against that record:
//   - every acknowledged job is known after each restart (GetJob), and at the
//     end every one is terminal, in one terminal state that never changes;
//   - no job runs after its terminal state, and a job runs more than once only
//     when a kill fell while it ran (exec jobs append a line per run to a file
//     named after the job: observable runs);
//   - idempotency keys answer the original job after the restarts;
//   - dead letters survive (ListDeadJobs has every acknowledged DEAD job).
// The seed is printed; TROUPE_CRASH_SEED=N reruns the same kill schedule (the
// daemon's timing still varies). TROUPE_CRASH_STORE=memory runs the same
// driver against the memory store, which must fail (a check of the checks).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/trouped_process.h"
#include "troupe/v1/troupe.grpc.pb.h"

namespace troupe::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t to_us(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1'000'000 + t.nanos() / 1'000;
}

bool terminal(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED || s == v1::JOB_STATE_DEAD ||
         s == v1::JOB_STATE_CANCELLED || s == v1::JOB_STATE_ABORTED;
}

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::stoull(v) : fallback;
}

/// The config every incarnation runs: the store in `store_dir`, the exec
/// troupe's runs recorded under `runs_dir`.
std::string crash_config(const fs::path& store_dir, const fs::path& runs_dir, bool memory) {
  std::ostringstream y;
  y << "server:\n"
       "  grpc_address: 127.0.0.1:0\n"
       "  metrics_address: 127.0.0.1:0\n"
       "  threads: 2\n"
       "  shutdown: {drain_timeout: 20s}\n"
       "  job_store: {result_ttl: 1h, idempotency_ttl: 24h}\n";
  if (memory) {
    y << "store: {kind: memory}\n";
  } else {
    y << "store:\n  kind: sqlite\n  path: " << (store_dir / "jobs.db").string()
      << "\n  sync: full\n";
  }
  y << "logging: {level: info}\n"
       "troupes:\n"
       "  - name: echo\n"
       "    mode: fixed\n"
       "    actors: 2\n"
       "    mailbox: 256\n"
       "    handler: {kind: builtin, name: echo}\n"
       "  - name: sleep\n"
       "    mode: fixed\n"
       "    actors: 4\n"
       "    mailbox: 32\n"
       "    retry: {max_attempts: 3, initial_backoff: 50ms, max_backoff: 200ms}\n"
       "    circuit_breaker: {enabled: false}\n"
       "    handler: {kind: builtin, name: sleep, sleep: 100ms}\n"
       "  - name: exec\n"
       "    mode: fixed\n"
       "    actors: 2\n"
       "    mailbox: 16\n"
       "    timeout: 10s\n"
       "    retry: {max_attempts: 3, initial_backoff: 50ms, max_backoff: 200ms}\n"
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
       "          f=\"$RUNS/$TROUPE_JOB_ID\"\n"
       "          printf 'start %s %s %s\\n' \"$EPOCHREALTIME\" \"$TROUPE_ATTEMPT\" \"$PPID\" "
       ">>\"$f\"\n"
       "          read -r d\n"
       "          sleep \"$d\"\n"
       "          printf 'end %s\\n' \"$EPOCHREALTIME\" >>\"$f\"\n"
       "          printf done\n"
       "  - name: fail\n"
       "    mode: fixed\n"
       "    actors: 1\n"
       "    mailbox: 64\n"
       "    retry: {max_attempts: 2, initial_backoff: 10ms, max_backoff: 20ms}\n"
       "    circuit_breaker: {enabled: false}\n"
       "    dead_letter_capacity: 10000\n"
       "    handler: {kind: builtin, name: fail, fail_mode: retryable, fail_every: 1}\n";
  return y.str();
}

/// One acknowledged submit, as the client saw it.
struct Ack {
  std::string troupe;
  std::string via;  // async, wait, stream
  std::string idempotency_key;
  int round = 0;
};

/// What the clients learn, shared by their threads.
class Ledger {
 public:
  void acked(const std::string& id, Ack ack) {
    std::lock_guard lock(mutex_);
    if (!ack.idempotency_key.empty() &&
        idempotency_.try_emplace(ack.idempotency_key, id, ack.troupe).second) {
      key_order_.push_back(ack.idempotency_key);
    }
    ++per_troupe_[ack.troupe];
    acks_.emplace(id, std::move(ack));
  }
  /// A terminal state seen for `id`; an error when it differs from one seen before.
  void saw_terminal(const std::string& id, const v1::Job& job, const std::string& where) {
    std::lock_guard lock(mutex_);
    const auto [it, fresh] = terminal_.try_emplace(id, job.state(), to_us(job.finished_at()));
    if (!fresh &&
        (it->second.first != job.state() || it->second.second != to_us(job.finished_at()))) {
      errors_.push_back("job " + id + " was " + v1::JobState_Name(it->second.first) + " at " +
                        std::to_string(it->second.second) + ", now (" + where + ") " +
                        v1::JobState_Name(job.state()) + " at " +
                        std::to_string(to_us(job.finished_at())));
    }
  }
  void error(std::string e) {
    std::lock_guard lock(mutex_);
    errors_.push_back(std::move(e));
  }
  struct Key {
    std::string key, id, troupe;
  };
  /// A previously acknowledged idempotency key, if any.
  std::optional<Key> some_key(std::mt19937_64& rng) {
    std::lock_guard lock(mutex_);
    if (key_order_.empty()) return std::nullopt;
    const auto& key = key_order_[rng() % key_order_.size()];
    const auto& job = idempotency_.at(key);
    return Key{key, job.first, job.second};
  }
  std::size_t count(const std::string& troupe) {
    std::lock_guard lock(mutex_);
    return per_troupe_[troupe];
  }
  std::map<std::string, Ack> acks() {
    std::lock_guard lock(mutex_);
    return acks_;
  }
  std::map<std::string, std::pair<std::string, std::string>> keys() {
    std::lock_guard lock(mutex_);
    return idempotency_;
  }
  std::vector<std::string> errors() {
    std::lock_guard lock(mutex_);
    return errors_;
  }
  std::optional<std::pair<v1::JobState, std::int64_t>> terminal(const std::string& id) {
    std::lock_guard lock(mutex_);
    const auto it = terminal_.find(id);
    if (it == terminal_.end()) return std::nullopt;
    return it->second;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, Ack> acks_;                                         // by job id
  std::map<std::string, std::pair<std::string, std::string>> idempotency_;  // key -> (id, troupe)
  std::vector<std::string> key_order_;                                      // idempotency_'s keys
  std::map<std::string, std::size_t> per_troupe_;                           // acks by troupe
  std::map<std::string, std::pair<v1::JobState, std::int64_t>>
      terminal_;  // id -> (state, finished)
  std::vector<std::string> errors_;
};

/// A request to one of the troupes, chosen at random (fail only while fewer
/// than kMaxDead are acknowledged, so every dead letter stays listable).
constexpr std::size_t kMaxDead = 600;

v1::SubmitRequest random_request(std::mt19937_64& rng, Ledger& ledger, bool allow_echo) {
  v1::SubmitRequest r;
  const auto roll = rng() % 100;
  if (allow_echo && roll < 30) {
    r.set_troupe("echo");
    r.set_payload("e" + std::to_string(rng() % 1000));
  } else if (roll < 60) {
    r.set_troupe("sleep");
    r.set_payload(std::to_string(20 + rng() % 380) + "ms");
  } else if (roll < 88 || ledger.count("fail") >= kMaxDead) {
    r.set_troupe("exec");
    char seconds[16];
    std::snprintf(seconds, sizeof seconds, "0.%03d", static_cast<int>(50 + rng() % 250));
    r.set_payload(seconds);  // 0.050 .. 0.299 s
  } else {
    r.set_troupe("fail");
    r.set_payload("f");
  }
  if (rng() % 3 == 0) r.set_key("k" + std::to_string(rng() % 8));
  return r;
}

std::atomic<std::uint64_t> g_key_counter{0};

/// Gives `r` a fresh idempotency key (1 in 4).
void maybe_new_key(std::mt19937_64& rng, std::uint64_t seed, v1::SubmitRequest& r) {
  if (rng() % 4 == 0) {
    r.set_idempotency_key("i" + std::to_string(seed) + "-" + std::to_string(++g_key_counter));
  }
}

/// Resubmits a known idempotency key (1 in 10); the answer must be the original job.
bool resubmit_known_key(std::mt19937_64& rng, Ledger& ledger, v1::JobService::Stub& stub,
                        const std::atomic<bool>& stop, std::size_t& duplicates) {
  if (rng() % 10 != 0) return false;
  const auto known = ledger.some_key(rng);
  if (!known) return false;
  v1::SubmitRequest r;
  r.set_troupe(known->troupe);
  r.set_payload("again");
  r.set_idempotency_key(known->key);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::SubmitResponse resp;
  const auto status = stub.Submit(&ctx, r, &resp);
  if (status.ok()) {
    ++duplicates;
    if (!resp.duplicate() || resp.job_id() != known->id) {
      ledger.error("idempotency key " + known->key + " of job " + known->id + " answered job " +
                   resp.job_id() + " (duplicate " + (resp.duplicate() ? "true" : "false") + ")");
    }
  } else if (!stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // pace against a dead server
  }
  return true;
}

struct ClientCounts {
  std::atomic<std::size_t> async{0}, wait{0}, stream{0}, duplicates{0}, rejected{0};
};

void async_client(std::uint64_t seed, int round, const std::shared_ptr<grpc::Channel>& channel,
                  Ledger& ledger, const std::atomic<bool>& stop, ClientCounts& counts) {
  std::mt19937_64 rng(seed * 1000 + static_cast<std::uint64_t>(round) * 10 + 1);
  auto stub = v1::JobService::NewStub(channel);
  std::size_t duplicates = 0;
  while (!stop) {
    if (resubmit_known_key(rng, ledger, *stub, stop, duplicates)) continue;
    auto r = random_request(rng, ledger, true);
    maybe_new_key(rng, seed, r);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::SubmitResponse resp;
    const auto status = stub->Submit(&ctx, r, &resp);
    if (status.ok()) {
      ledger.acked(resp.job_id(), {r.troupe(), "async", r.idempotency_key(), round});
      ++counts.async;
    } else {
      ++counts.rejected;
      std::this_thread::sleep_for(
          std::chrono::milliseconds(10));  // pace: full mailbox or dead server
    }
  }
  counts.duplicates += duplicates;
}

void wait_client(std::uint64_t seed, int round, const std::shared_ptr<grpc::Channel>& channel,
                 Ledger& ledger, const std::atomic<bool>& stop, ClientCounts& counts) {
  std::mt19937_64 rng(seed * 1000 + static_cast<std::uint64_t>(round) * 10 + 2);
  auto stub = v1::JobService::NewStub(channel);
  while (!stop) {
    // Half to echo, which answers before the next kill more often than not.
    auto r = random_request(rng, ledger, false);
    if (rng() % 2 == 0) {
      r.set_troupe("echo");
      r.set_payload("w");
    }
    maybe_new_key(rng, seed, r);
    r.set_wait(true);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::SubmitResponse resp;
    const auto status = stub->Submit(&ctx, r, &resp);
    if (status.ok()) {
      ledger.acked(resp.job_id(), {r.troupe(), "wait", r.idempotency_key(), round});
      ++counts.wait;
      if (!terminal(resp.job().state())) {
        ledger.error("wait=true answered job " + resp.job_id() + " in state " +
                     v1::JobState_Name(resp.job().state()));
      } else {
        ledger.saw_terminal(resp.job_id(), resp.job(), "wait reply");
      }
    } else {
      ++counts.rejected;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

void stream_client(std::uint64_t seed, int round, const std::shared_ptr<grpc::Channel>& channel,
                   Ledger& ledger, const std::atomic<bool>& stop, ClientCounts& counts) {
  std::mt19937_64 rng(seed * 1000 + static_cast<std::uint64_t>(round) * 10 + 3);
  auto stub = v1::JobService::NewStub(channel);
  constexpr std::uint64_t kBatch = 8;
  while (!stop) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    auto stream = stub->SubmitStream(&ctx);
    std::uint64_t next = 0;
    bool broken = false;
    while (!stop && !broken) {
      std::map<std::uint64_t, v1::SubmitRequest> sent;
      for (std::uint64_t i = 0; i < kBatch; ++i) {
        v1::StreamSubmitRequest req;
        req.set_correlation_id(++next);
        *req.mutable_request() = random_request(rng, ledger, true);
        maybe_new_key(rng, seed, *req.mutable_request());
        sent.emplace(next, req.request());
        if (!stream->Write(req)) {
          broken = true;
          break;
        }
      }
      v1::StreamSubmitAck ack;
      bool refused = false;
      while (!broken && !sent.empty()) {
        if (!stream->Read(&ack)) {
          broken = true;
          break;
        }
        const auto it = sent.find(ack.correlation_id());
        if (it == sent.end()) {
          ledger.error("stream ack for unknown correlation id " +
                       std::to_string(ack.correlation_id()));
          continue;
        }
        if (ack.code() == 0) {
          ledger.acked(ack.job_id(),
                       {it->second.troupe(), "stream", it->second.idempotency_key(), round});
          ++counts.stream;
        } else {
          ++counts.rejected;
          refused = true;
        }
        sent.erase(it);
      }
      if (refused)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));  // pace: full mailbox
    }
    ctx.TryCancel();
    (void)stream->Finish();
    if (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

/// GetJob on every id in `ids`: an error for each unknown one; terminal
/// states go to the ledger. Returns the ids not yet terminal.
std::vector<std::string> check_known(v1::JobService::Stub& stub, Ledger& ledger,
                                     const std::vector<std::string>& ids, const std::string& when) {
  std::vector<std::string> open;
  for (const auto& id : ids) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GetJobRequest req;
    req.set_job_id(id);
    v1::Job job;
    const auto status = stub.GetJob(&ctx, req, &job);
    if (!status.ok()) {
      ledger.error("acknowledged job " + id + " unknown " + when + ": " + status.error_message());
      continue;
    }
    if (terminal(job.state())) {
      ledger.saw_terminal(id, job, when);
    } else {
      open.push_back(id);
    }
  }
  return open;
}

/// One exec run: when bash started it, and the process that started it
/// (bash's $PPID when it started: trouped, or the reaper that adopted it
/// when trouped was killed between the spawn and that moment).
struct ExecRun {
  std::int64_t start_us;
  long parent;
};
/// The runs an exec job's process recorded, and the number of runs that got
/// to their end line.
struct Runs {
  std::vector<ExecRun> starts;
  std::size_t ends = 0;
};

std::int64_t parse_epoch_us(const std::string& text) {
  const auto dot = text.find('.');
  const std::int64_t s = std::stoll(text.substr(0, dot));
  std::string frac = dot == std::string::npos ? "" : text.substr(dot + 1);
  frac.resize(6, '0');
  return s * 1'000'000 + std::stoll(frac);
}

Runs read_runs(const fs::path& file) {
  Runs runs;
  std::ifstream in(file);
  std::string word, time;
  while (in >> word >> time) {
    if (word == "start") {
      std::string attempt;
      long parent = 0;
      in >> attempt >> parent;
      runs.starts.push_back({parse_epoch_us(time), parent});
    } else if (word == "end") {
      ++runs.ends;
    }
  }
  return runs;
}

struct Kill {
  std::int64_t before_us;  // just before SIGKILL was sent
  std::int64_t after_us;   // once the process was reaped
};

TEST(Crash, AcknowledgedJobsSurviveSigkill) {
  const std::uint64_t seed = env_number(
      "TROUPE_CRASH_SEED", static_cast<std::uint64_t>(std::random_device{}()) % 1'000'000);
  const int rounds = static_cast<int>(env_number("TROUPE_CRASH_ROUNDS", 30));
  const char* store_kind = std::getenv("TROUPE_CRASH_STORE");
  const bool memory = store_kind != nullptr && std::string(store_kind) == "memory";
  std::cout << "crash test: seed " << seed << " (rerun: TROUPE_CRASH_SEED=" << seed << "), rounds "
            << rounds << ", store " << (memory ? "memory" : "sqlite") << std::endl;

  std::string pattern = (fs::temp_directory_path() / "troupe-crash-XXXXXX").string();
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  const fs::path work = pattern;
  const fs::path runs_dir = work / "runs";
  fs::create_directories(runs_dir);
  const std::string yaml = crash_config(work / "store", runs_dir, memory);

  std::mt19937_64 rng(seed);
  Ledger ledger;
  ClientCounts counts;
  std::vector<Kill> kills;
  std::size_t killed_in_startup = 0;
  std::vector<std::string> previous_round;  // ids acked in the round before

  const auto start = [&]() {
    auto p = std::make_unique<TroupedProcess>(TroupedOptions{.config_yaml = yaml});
    return p;
  };

  for (int round = 1; round <= rounds; ++round) {
    auto p = start();
    // One round in ten kills trouped while it starts (recovering the store).
    if (rng() % 10 == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 150));
      const auto before = now_us();
      p->send_signal(SIGKILL);
      ASSERT_TRUE(p->wait_exit(30s).has_value());
      kills.push_back({before, now_us()});
      ++killed_in_startup;
      continue;
    }
    ASSERT_TRUE(p->wait_serving(60s)) << "round " << round << ": trouped did not start:\n"
                                      << p->log();
    auto stub = v1::JobService::NewStub(p->channel());
    // Every job acknowledged in the previous round, and a sample of older ones.
    auto sample = previous_round;
    const auto all = ledger.acks();
    for (int i = 0; i < 200 && !all.empty(); ++i) {
      auto it = all.begin();
      std::advance(it, static_cast<long>(rng() % all.size()));
      sample.push_back(it->first);
    }
    check_known(*stub, ledger, sample, "after restart " + std::to_string(round));

    std::atomic<bool> stop{false};
    const auto before_round = ledger.acks();
    std::vector<std::thread> clients;
    clients.emplace_back(async_client, seed, round, p->channel(), std::ref(ledger), std::cref(stop),
                         std::ref(counts));
    clients.emplace_back(async_client, seed + 500'000, round, p->channel(), std::ref(ledger),
                         std::cref(stop), std::ref(counts));
    clients.emplace_back(wait_client, seed, round, p->channel(), std::ref(ledger), std::cref(stop),
                         std::ref(counts));
    clients.emplace_back(wait_client, seed + 500'000, round, p->channel(), std::ref(ledger),
                         std::cref(stop), std::ref(counts));
    clients.emplace_back(stream_client, seed, round, p->channel(), std::ref(ledger),
                         std::cref(stop), std::ref(counts));
    // The random moment of the kill (not a synchronisation: any moment will do).
    const auto delay = rng() % 10 == 0 ? rng() % 50 : 150 + rng() % 1350;
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    const auto before = now_us();
    p->send_signal(SIGKILL);
    const auto code = p->wait_exit(30s);
    kills.push_back({before, now_us()});
    stop = true;
    for (auto& c : clients) c.join();
    ASSERT_TRUE(code.has_value());
    EXPECT_EQ(*code, 128 + SIGKILL) << p->log();
    previous_round.clear();
    for (const auto& [id, ack] : ledger.acks()) {
      if (!before_round.count(id)) previous_round.push_back(id);
    }
  }

  // The last start: everything acknowledged must finish.
  auto p = start();
  ASSERT_TRUE(p->wait_serving(60s)) << p->log();
  auto stub = v1::JobService::NewStub(p->channel());
  const auto acks = ledger.acks();
  std::vector<std::string> open;
  for (const auto& [id, ack] : acks) open.push_back(id);
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  open = check_known(*stub, ledger, open, "at the end");
  while (!open.empty() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    open = check_known(*stub, ledger, open, "at the end");
  }
  for (const auto& id : open) ledger.error("job " + id + " not terminal 120s after the last start");

  // Exec jobs: runs from the per-job files, against terminal times and kills.
  std::size_t exec_runs = 0, rerun_jobs = 0, exec_jobs = 0;
  for (const auto& [id, ack] : acks) {
    if (ack.troupe != "exec") continue;
    ++exec_jobs;
    const auto runs = read_runs(runs_dir / id);
    const auto term = ledger.terminal(id);
    exec_runs += runs.starts.size();
    if (term && term->first == v1::JOB_STATE_SUCCEEDED && runs.starts.empty()) {
      ledger.error("exec job " + id + " SUCCEEDED without running");
    }
    for (const auto& [t, parent] : runs.starts) {
      if (term && t > term->second) {
        ledger.error("exec job " + id + " started a run at " + std::to_string(t) +
                     ", after its terminal state at " + std::to_string(term->second));
      }
    }
    if (runs.starts.size() > 1) ++rerun_jobs;
    auto sorted = runs.starts;
    std::sort(sorted.begin(), sorted.end(),
              [](const ExecRun& a, const ExecRun& b) { return a.start_us < b.start_us; });
    for (std::size_t i = 0; i + 1 < sorted.size(); ++i) {
      const bool killed_while_running = std::any_of(kills.begin(), kills.end(), [&](const Kill& k) {
        return sorted[i].start_us < k.after_us && k.before_us < sorted[i + 1].start_us;
      });
      // A run whose bash started only after its trouped was killed (spawned
      // just before the kill: the process outlives it) was adopted by a
      // reaper; the restarted trouped runs the job again (at least once).
      const bool same_trouped = sorted[i].parent == sorted[i + 1].parent;
      if (!killed_while_running && same_trouped) {
        ledger.error("exec job " + id + " ran again at " + std::to_string(sorted[i + 1].start_us) +
                     " with no kill since its run at " + std::to_string(sorted[i].start_us) +
                     ", both started by process " + std::to_string(sorted[i].parent));
      }
    }
  }

  // Idempotency keys answer the original job.
  std::size_t keys_checked = 0;
  for (const auto& [key, job] : ledger.keys()) {
    v1::SubmitRequest r;
    r.set_troupe(job.second);
    r.set_payload("again");
    r.set_idempotency_key(key);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::SubmitResponse resp;
    const auto status = stub->Submit(&ctx, r, &resp);
    ++keys_checked;
    if (!status.ok() || !resp.duplicate() || resp.job_id() != job.first) {
      ledger.error("idempotency key " + key + " of job " + job.first + " answered '" +
                   resp.job_id() + "' (" + status.error_message() + ")");
    }
  }

  // Dead letters: every acknowledged job of `fail` is DEAD and listed.
  std::set<std::string> listed;
  {
    auto admin = v1::AdminService::NewStub(p->channel());
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ListDeadJobsRequest req;
    req.set_troupe("fail");
    req.set_limit(10'000);
    v1::ListDeadJobsResponse resp;
    const auto status = admin->ListDeadJobs(&ctx, req, &resp);
    if (!status.ok()) ledger.error("ListDeadJobs: " + status.error_message());
    for (const auto& j : resp.jobs()) listed.insert(j.id());
  }
  std::size_t dead_acked = 0;
  std::map<std::string, std::size_t> states;
  for (const auto& [id, ack] : acks) {
    const auto term = ledger.terminal(id);
    states[term ? v1::JobState_Name(term->first) : "not terminal"]++;
    if (ack.troupe != "fail") continue;
    ++dead_acked;
    if (!term || term->first != v1::JOB_STATE_DEAD) {
      ledger.error("job " + id + " of troupe fail is not DEAD");
    }
    if (!listed.count(id)) ledger.error("dead job " + id + " missing from ListDeadJobs");
  }

  p->send_signal(SIGTERM);
  const auto code = p->wait_exit(60s);
  EXPECT_EQ(code, std::optional<int>(0)) << p->log();

  std::cout << "crash test: seed " << seed << ", " << rounds << " kills (" << killed_in_startup
            << " while starting), " << acks.size() << " jobs acknowledged (async " << counts.async
            << ", wait " << counts.wait << ", stream " << counts.stream << "), " << counts.rejected
            << " submits refused or cut off by a kill\n"
            << "  terminal:";
  for (const auto& [state, n] : states) std::cout << " " << state << " " << n;
  std::cout << "\n  exec: " << exec_jobs << " jobs, " << exec_runs << " runs, " << rerun_jobs
            << " jobs ran again after a kill fell during their run\n"
            << "  idempotency: " << counts.duplicates << " resubmits during the rounds, "
            << keys_checked << " keys checked at the end\n"
            << "  dead letters: " << dead_acked << " acknowledged on troupe fail, " << listed.size()
            << " listed\n";
  const auto errors = ledger.errors();
  std::cout << "  problems: " << errors.size() << std::endl;
  for (std::size_t i = 0; i < errors.size() && i < 30; ++i) ADD_FAILURE() << errors[i];
  EXPECT_TRUE(errors.empty()) << errors.size() << " problems (first 30 above); seed " << seed;
  EXPECT_GT(counts.async + counts.wait + counts.stream, 0u);
  std::error_code ec;
  fs::remove_all(work, ec);
}

}  // namespace
}  // namespace troupe::test
