#pragma once

/// Where job records live between submit and expiry.

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/cache_line.h"
#include "core/clock.h"
#include "core/job_entry.h"
#include "core/options.h"
#include "core/ring_queue.h"

namespace troupe::core {

/// What an idempotency key answers: the original job. Its record while the
/// store keeps it; after its result expired (or was evicted), for the rest of
/// the idempotency TTL, a tombstone: the original's final state.
struct IdempotentMatch {
  JobId id;
  /// The original job; null once its record is gone.
  detail::JobPtr job;
  /// When `job` is null: id, troupe, idempotency_key, state, failure class,
  /// attempts and timestamps of the original (no payload, result, error,
  /// key or metadata: those expired with the record).
  JobRecord final_state;
};

/// Keeps every accepted job findable by id until its result expires, and
/// the idempotency index. Thread-safe: every method may be called from any
/// thread concurrently.
///
/// Honest about durability: an implementation says what survives a crash.
/// InMemoryJobStore keeps nothing across a restart; a durable store (the
/// planned journal) must persist a job in add() before the submit is
/// acknowledged and the terminal state in finished(), and will need a
/// recovery entry point that this interface does not promise yet.
class JobStore {
 public:
  virtual ~JobStore() = default;
  /// False when the store is at its limits and no terminal record can make
  /// room: the submit must be refused. Cheap and approximate (a racing add
  /// may still go over by a few records).
  virtual bool has_room(std::size_t payload_bytes) = 0;
  /// Registers an accepted job (its enqueued_ns is taken as now). May evict terminal records (never
  /// an in-flight one) to stay within the limits. A record of the same id already held (a job
  /// lost to another replica and claimed back, shared store) is replaced.
  virtual void add(const detail::JobPtr& job) = 0;
  /// The job, or null when unknown or its result has expired.
  virtual detail::JobPtr find(JobId id) = 0;
  /// The job reached its terminal state: its result now expires after
  /// result_ttl and it may be evicted.
  /// `now` is the steady clock's reading at the end, in ns (the caller
  /// has it already).
  virtual void finished(const detail::JobPtr& job, std::int64_t now) = 0;
  /// The job registered under (troupe, key) within the idempotency TTL, also
  /// after its record expired: a key never answers "unknown" while its TTL
  /// runs (unless evicted to stay within the limits).
  virtual std::optional<IdempotentMatch> find_idempotent(std::string_view troupe,
                                                         std::string_view key) = 0;
  /// Registers `job` (accepted, added) under (troupe, key) for the
  /// idempotency TTL; its final state is kept with the key when it ends.
  virtual void remember_idempotent(std::string_view troupe, std::string_view key,
                                   const detail::JobPtr& job) = 0;
  /// What counts against max_jobs: records plus idempotency keys.
  virtual std::size_t size() const = 0;
  /// What counts against max_bytes: payloads, keys and results of records,
  /// plus the idempotency index's keys.
  virtual std::size_t bytes() const = 0;
  /// True when the records survive a restart of the process.
  virtual bool durable() const = 0;
};

/// The bounded in-memory JobStore: a sharded hash table by id (the id's low
/// bits pick the shard, one mutex each), a FIFO of terminal records per
/// shard for expiry and eviction (terminal ones go first; in-flight ones are
/// never evicted), and an idempotency index with its own TTL and FIFO. Expiry
/// is lazy: records past result_ttl are dropped on the next add() of their
/// shard and are invisible to find() at once. Index entries count against
/// the limits like records (one each, their key bytes); past the limits the
/// oldest go first, keys older than result_ttl before terminal records.
class InMemoryJobStore final : public JobStore {
 public:
  InMemoryJobStore(JobStoreOptions options, Clock& clock);
  ~InMemoryJobStore() override;

  bool has_room(std::size_t payload_bytes) override;
  void add(const detail::JobPtr& job) override;
  detail::JobPtr find(JobId id) override;
  void finished(const detail::JobPtr& job, std::int64_t now) override;
  std::optional<IdempotentMatch> find_idempotent(std::string_view troupe,
                                                 std::string_view key) override;
  void remember_idempotent(std::string_view troupe, std::string_view key,
                           const detail::JobPtr& job) override;
  std::size_t size() const override { return count_.load(std::memory_order_relaxed); }
  std::size_t bytes() const override { return bytes_.load(std::memory_order_relaxed); }
  /// Idempotency keys held (tombstones included); part of size().
  std::size_t idempotency_keys() const { return keys_.load(std::memory_order_relaxed); }
  bool durable() const override { return false; }

 private:
  static constexpr std::size_t kShards = 64;
  struct Terminal {
    std::uint64_t id;
    std::int64_t expires_ns;
  };
  struct ById {
    using is_transparent = void;
    std::size_t operator()(std::uint64_t id) const noexcept { return id / kShards; }
    std::size_t operator()(const detail::JobPtr& j) const noexcept { return j->id.value / kShards; }
    bool operator()(const detail::JobPtr& a, const detail::JobPtr& b) const noexcept {
      return a->id == b->id;
    }
    bool operator()(std::uint64_t a, const detail::JobPtr& b) const noexcept {
      return a == b->id.value;
    }
    bool operator()(const detail::JobPtr& a, std::uint64_t b) const noexcept {
      return a->id.value == b;
    }
  };
  struct alignas(detail::kCacheLine) Shard {
    std::mutex mutex;  // guards the table and the FIFO
    // A set keyed by the job's own id (heterogeneous lookup): its node is
    // one pointer smaller than a map's, which the per-job budget needs.
    std::unordered_set<detail::JobPtr, ById, ById> jobs;
    detail::RingQueue<Terminal> terminal;  // in finishing order
  };
  /// An idempotency key's answer. By id, not by pointer: the key outlives
  /// the record (result_ttl is usually the shorter) and must not pin it.
  struct IdempotencyEntry {
    std::uint64_t id = 0;
    std::int64_t expires_ns = 0;
    // The job's final state once it is terminal (`final`): the tombstone
    // the key answers with after the record is gone.
    bool final = false;
    JobState state = JobState::kQueued;
    FailureClass failure = FailureClass::kNone;
    std::uint32_t attempts = 0;
    std::int64_t submitted_ns = 0;  // wall clock, as in Job
    std::int64_t started_ns = 0;
    std::int64_t finished_ns = 0;
  };

  /// Bytes fixed at submit (payload, keys).
  static std::size_t request_bytes(const detail::Job& job);
  /// Those plus the output: only for a terminal record, whose output is final.
  static std::size_t record_bytes(const detail::Job& job);
  Shard& shard_of(std::uint64_t id) { return shards_[id % kShards]; }
  /// Drops expired records at the front of the shard's FIFO, then (when
  /// over the limits) the oldest terminal ones. Shard lock held.
  void trim_locked(Shard& shard, std::int64_t now_ns, bool over_limits);
  bool evict_front_locked(Shard& shard);
  /// While over the limits, one pass over the shards other than `id`'s:
  /// drops their expired records, and with `evict` their oldest terminal one.
  void trim_other_shards(std::uint64_t id, std::int64_t now_ns, bool evict);
  bool over_limits() const;
  /// Bytes an index entry is counted for.
  static std::size_t key_bytes(const std::string& index_key);
  /// Pops the index FIFO's front, dropping its entry. idempotency_mutex_ held.
  void drop_oldest_key_locked();
  void expire_keys_locked(std::int64_t now_ns);
  /// While over the limits, drops the oldest keys registered before
  /// `registered_before_ns` (steady clock). Takes idempotency_mutex_.
  void evict_keys(std::int64_t registered_before_ns);
  /// The index's key for (troupe, idempotency key).
  static std::string index_key(std::string_view troupe, std::string_view key);
  /// Copies a terminal job's final state into its idempotency entry, if it
  /// has one. Takes the job's lock and then idempotency_mutex_.
  void record_final(const detail::Job& job);
  static void copy_final(const detail::Job& job, IdempotencyEntry& entry);

  JobStoreOptions options_;
  Clock& clock_;
  std::unique_ptr<Shard[]> shards_;
  // Written by submitters (add) and by actors (finished): a line each, so
  // the two sides do not take turns owning one cache line per job.
  alignas(detail::kCacheLine) std::atomic<std::size_t> count_{0};
  std::atomic<std::size_t> bytes_{0};
  alignas(detail::kCacheLine) std::atomic<std::size_t> terminal_count_{0};

  std::atomic<std::size_t> keys_{0};  // idempotency entries, also in count_

  std::mutex idempotency_mutex_;  // guards the index and its FIFO
  std::unordered_map<std::string, IdempotencyEntry> idempotency_;
  detail::RingQueue<std::pair<std::string, std::int64_t>> idempotency_order_;
};

}  // namespace troupe::core
