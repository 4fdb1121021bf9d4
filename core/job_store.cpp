#include "core/job_store.h"

namespace troupe::core {

using detail::Job;
using detail::JobPtr;

InMemoryJobStore::InMemoryJobStore(JobStoreOptions options, Clock& clock)
    : options_(options), clock_(clock), shards_(std::make_unique<Shard[]>(kShards)) {
  // Start each shard's table at a useful size: rehashing a growing table is
  // a visible cost on the submit path. Bounded so a large max_jobs does not
  // reserve memory up front.
  const std::size_t per_shard = std::min<std::size_t>(options_.max_jobs / kShards + 1, 4096);
  for (std::size_t i = 0; i < kShards; ++i) shards_[i].jobs.reserve(per_shard);
}

InMemoryJobStore::~InMemoryJobStore() = default;

std::size_t InMemoryJobStore::request_bytes(const Job& job) {
  std::size_t n = job.payload.size();
  if (job.extras) n += job.extras->key.size() + job.extras->idempotency_key.size();
  return n;
}

std::size_t InMemoryJobStore::record_bytes(const Job& job) {
  return request_bytes(job) + job.output.size();
}

bool InMemoryJobStore::over_limits() const {
  return count_.load(std::memory_order_relaxed) > options_.max_jobs ||
         bytes_.load(std::memory_order_relaxed) > options_.max_bytes;
}

bool InMemoryJobStore::has_room(std::size_t payload_bytes) {
  const bool full = count_.load(std::memory_order_relaxed) >= options_.max_jobs ||
                    bytes_.load(std::memory_order_relaxed) + payload_bytes > options_.max_bytes;
  return !full || terminal_count_.load(std::memory_order_relaxed) > 0;
}

bool InMemoryJobStore::evict_front_locked(Shard& shard) {
  if (shard.terminal.empty()) return false;
  const Terminal t = shard.terminal.pop_front();
  auto it = shard.jobs.find(t.id);
  if (it != shard.jobs.end()) {
    // Only terminal records are ever in the FIFO; the record's own lock is
    // not needed because a terminal job's fields no longer change.
    bytes_.fetch_sub(record_bytes(**it), std::memory_order_relaxed);
    shard.jobs.erase(it);
    count_.fetch_sub(1, std::memory_order_relaxed);
  }
  terminal_count_.fetch_sub(1, std::memory_order_relaxed);
  return true;
}

void InMemoryJobStore::trim_locked(Shard& shard, std::int64_t now_ns, bool over) {
  while (!shard.terminal.empty() && shard.terminal.front().expires_ns <= now_ns) {
    evict_front_locked(shard);
  }
  if (over) evict_front_locked(shard);
}

void InMemoryJobStore::add(const JobPtr& job) {
  std::int64_t now_ns;
  {
    // The job is already queued when it is added: a retry may be stamping it.
    std::lock_guard lock(job->lock);
    now_ns = job->enqueued_ns;
  }
  Shard& shard = shard_of(job->id.value);
  {
    std::lock_guard lock(shard.mutex);
    shard.jobs.insert(job);
    count_.fetch_add(1, std::memory_order_relaxed);
    // The output is counted by finished(): it may still be changing now.
    // (Adding 0 would still take the shared line from whoever had it.)
    if (const std::size_t n = request_bytes(*job); n != 0) {
      bytes_.fetch_add(n, std::memory_order_relaxed);
    }
    job->in_store = true;
    if (job->finish_pending) {
      // The job finished before it was registered (an actor was quicker than
      // the submitting thread): account for it now.
      job->finish_pending = false;
      bytes_.fetch_add(job->output.size(), std::memory_order_relaxed);
      shard.terminal.push_back(Terminal{job->id.value, job->finished_steady_ns});
      terminal_count_.fetch_add(1, std::memory_order_relaxed);
    }
    trim_locked(shard, now_ns, over_limits());
  }
  // Still over: evict the oldest terminal records of other shards. Bounded:
  // one pass over the shards per add.
  for (std::size_t i = 1;
       i < kShards && over_limits() && terminal_count_.load(std::memory_order_relaxed) > 0; ++i) {
    Shard& other = shards_[(job->id.value + i) % kShards];
    std::lock_guard lock(other.mutex);
    trim_locked(other, now_ns, true);
  }
}

JobPtr InMemoryJobStore::find(JobId id) {
  const std::int64_t now_ns = detail::to_ns(clock_.now());
  Shard& shard = shard_of(id.value);
  std::lock_guard lock(shard.mutex);
  auto it = shard.jobs.find(id.value);
  if (it == shard.jobs.end()) return nullptr;
  const JobPtr& job = *it;
  if (job->finished_steady_ns != 0 && job->finished_steady_ns <= now_ns) return nullptr;
  return job;
}

void InMemoryJobStore::finished(const JobPtr& job, std::int64_t now) {
  const std::int64_t expires_ns =
      now + std::chrono::duration_cast<std::chrono::nanoseconds>(options_.result_ttl).count();
  Shard& shard = shard_of(job->id.value);
  std::lock_guard lock(shard.mutex);
  // finished_steady_ns holds the expiry; it is only touched under this lock.
  job->finished_steady_ns = expires_ns;
  if (!job->in_store) {
    job->finish_pending = true;
    return;
  }
  if (!job->output.empty()) bytes_.fetch_add(job->output.size(), std::memory_order_relaxed);
  shard.terminal.push_back(Terminal{job->id.value, expires_ns});
  terminal_count_.fetch_add(1, std::memory_order_relaxed);
}

JobPtr InMemoryJobStore::find_idempotent(std::string_view troupe, std::string_view key) {
  const std::int64_t now_ns = detail::to_ns(clock_.now());
  std::string k;
  k.reserve(troupe.size() + 1 + key.size());
  k.append(troupe).push_back('\0');
  k.append(key);
  std::lock_guard lock(idempotency_mutex_);
  while (!idempotency_order_.empty() && idempotency_order_.front().second <= now_ns) {
    auto old = idempotency_order_.pop_front();
    auto it = idempotency_.find(old.first);
    if (it != idempotency_.end() && it->second.expires_ns <= now_ns) idempotency_.erase(it);
  }
  auto it = idempotency_.find(k);
  if (it == idempotency_.end() || it->second.expires_ns <= now_ns) return nullptr;
  JobPtr job = it->second.job.lock();
  if (!job) return nullptr;
  // An expired (or evicted) record no longer answers for its key.
  Shard& shard = shard_of(job->id.value);
  std::lock_guard shard_lock(shard.mutex);
  if (job->finished_steady_ns != 0 && job->finished_steady_ns <= now_ns) return nullptr;
  if (!shard.jobs.contains(job->id.value)) return nullptr;
  return job;
}

void InMemoryJobStore::remember_idempotent(std::string_view troupe, std::string_view key,
                                           const JobPtr& job) {
  const std::int64_t expires_ns =
      detail::to_ns(clock_.now()) +
      std::chrono::duration_cast<std::chrono::nanoseconds>(options_.idempotency_ttl).count();
  std::string k;
  k.reserve(troupe.size() + 1 + key.size());
  k.append(troupe).push_back('\0');
  k.append(key);
  std::lock_guard lock(idempotency_mutex_);
  idempotency_[k] = IdempotencyEntry{job, expires_ns};
  idempotency_order_.push_back({std::move(k), expires_ns});
}

}  // namespace troupe::core
