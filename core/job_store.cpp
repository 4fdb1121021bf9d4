#include "core/job_store.h"

#include <limits>

namespace troupe::core {

using detail::Job;
using detail::JobPtr;

namespace {
std::int64_t ns(Duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}
}  // namespace

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
  return !full || terminal_count_.load(std::memory_order_relaxed) > 0 ||
         keys_.load(std::memory_order_relaxed) > 0;
}

bool InMemoryJobStore::evict_front_locked(Shard& shard) {
  if (shard.terminal.empty()) return false;
  const Terminal t = shard.terminal.pop_front();
  auto it = shard.jobs.find(t.id);
  // Not when the id's record is a newer one (see add()): this entry was
  // the replaced record's.
  if (it != shard.jobs.end() && (*it)->finished_steady_ns == t.expires_ns) {
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
    if (auto [it, inserted] = shard.jobs.insert(job); !inserted) {
      // The same id again: with a shared store, a job this process lost to
      // another replica (its stale record left to expire) and now takes
      // back. The new record replaces the stale one.
      const Job& stale = **it;
      bytes_.fetch_sub(stale.finished_steady_ns != 0 ? record_bytes(stale) : request_bytes(stale),
                       std::memory_order_relaxed);
      shard.jobs.erase(it);
      shard.jobs.insert(job);
    } else {
      count_.fetch_add(1, std::memory_order_relaxed);
    }
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
  if (!over_limits()) return;
  // Still over: the oldest go first. Each step is one bounded pass.
  // Expired records of other shards (their expiry is lazy).
  trim_other_shards(job->id.value, now_ns, false);
  // Keys registered before every kept result finished (more than
  // result_ttl ago) are older than any terminal record.
  evict_keys(now_ns - ns(options_.result_ttl));
  // The oldest terminal records of other shards.
  trim_other_shards(job->id.value, now_ns, true);
  // The newer keys.
  evict_keys(std::numeric_limits<std::int64_t>::max());
}

void InMemoryJobStore::trim_other_shards(std::uint64_t id, std::int64_t now_ns, bool evict) {
  for (std::size_t i = 1;
       i < kShards && over_limits() && terminal_count_.load(std::memory_order_relaxed) > 0; ++i) {
    Shard& other = shards_[(id + i) % kShards];
    std::lock_guard lock(other.mutex);
    trim_locked(other, now_ns, evict);
  }
}

std::size_t InMemoryJobStore::key_bytes(const std::string& index_key) {
  return 2 * index_key.size();  // the index's key and its FIFO's copy
}

void InMemoryJobStore::drop_oldest_key_locked() {
  auto old = idempotency_order_.pop_front();
  auto it = idempotency_.find(old.first);
  // The FIFO item of a key registered again later is not that entry's.
  if (it == idempotency_.end() || it->second.expires_ns != old.second) return;
  idempotency_.erase(it);
  keys_.fetch_sub(1, std::memory_order_relaxed);
  count_.fetch_sub(1, std::memory_order_relaxed);
  bytes_.fetch_sub(key_bytes(old.first), std::memory_order_relaxed);
}

void InMemoryJobStore::expire_keys_locked(std::int64_t now_ns) {
  while (!idempotency_order_.empty() && idempotency_order_.front().second <= now_ns) {
    drop_oldest_key_locked();
  }
}

void InMemoryJobStore::evict_keys(std::int64_t registered_before_ns) {
  if (keys_.load(std::memory_order_relaxed) == 0) return;
  const std::int64_t ttl_ns = ns(options_.idempotency_ttl);
  std::lock_guard lock(idempotency_mutex_);
  while (over_limits() && !idempotency_order_.empty() &&
         idempotency_order_.front().second - ttl_ns < registered_before_ns) {
    drop_oldest_key_locked();
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
  // Before the expiry is set: once find() stops answering for the record,
  // its idempotency key must already hold the final state.
  record_final(*job);
  const std::int64_t expires_ns = now + ns(options_.result_ttl);
  Shard& shard = shard_of(job->id.value);
  std::lock_guard lock(shard.mutex);
  // finished_steady_ns holds the expiry; it is only touched under this lock.
  job->finished_steady_ns = expires_ns;
  if (!job->in_store) {
    job->finish_pending = true;
    return;
  }
  if (auto it = shard.jobs.find(job->id.value); it == shard.jobs.end() || it->get() != job.get()) {
    return;  // replaced by a newer record of its id (add()): nothing of it is counted
  }
  if (!job->output.empty()) bytes_.fetch_add(job->output.size(), std::memory_order_relaxed);
  shard.terminal.push_back(Terminal{job->id.value, expires_ns});
  terminal_count_.fetch_add(1, std::memory_order_relaxed);
}

std::string InMemoryJobStore::index_key(std::string_view troupe, std::string_view key) {
  std::string k;
  k.reserve(troupe.size() + 1 + key.size());
  k.append(troupe).push_back('\0');
  k.append(key);
  return k;
}

void InMemoryJobStore::copy_final(const Job& job, IdempotencyEntry& entry) {
  std::lock_guard lock(job.lock);
  entry.final = true;
  entry.state = job.state.load(std::memory_order_relaxed);
  entry.failure = job.failure;
  entry.attempts = job.attempts;
  entry.submitted_ns = job.submitted_ns;
  entry.started_ns = job.started_ns;
  entry.finished_ns = job.finished_ns;
}

void InMemoryJobStore::record_final(const Job& job) {
  if (!job.extras || job.extras->idempotency_key.empty()) return;
  // Read the job first, then take the index lock: the two are never nested
  // this way round.
  IdempotencyEntry final_state;
  copy_final(job, final_state);
  const std::string k = index_key(*job.troupe_name, job.extras->idempotency_key);
  std::lock_guard lock(idempotency_mutex_);
  auto it = idempotency_.find(k);
  // Not there yet: remember_idempotent() will find the job terminal and copy
  // it itself (the state is terminal before finished() is called).
  if (it == idempotency_.end() || it->second.id != job.id.value) return;
  final_state.id = it->second.id;
  final_state.expires_ns = it->second.expires_ns;
  it->second = final_state;
}

std::optional<IdempotentMatch> InMemoryJobStore::find_idempotent(std::string_view troupe,
                                                                 std::string_view key) {
  const std::int64_t now_ns = detail::to_ns(clock_.now());
  const std::string k = index_key(troupe, key);
  std::lock_guard lock(idempotency_mutex_);
  expire_keys_locked(now_ns);
  auto it = idempotency_.find(k);
  if (it == idempotency_.end() || it->second.expires_ns <= now_ns) return std::nullopt;
  const IdempotencyEntry& entry = it->second;
  IdempotentMatch match;
  match.id = JobId{entry.id};
  match.job = find(match.id);
  if (match.job) return match;
  // The record is gone: only a terminal one expires or is evicted, and
  // finished() copied its final state here before setting its expiry.
  if (!entry.final) return std::nullopt;
  JobRecord& r = match.final_state;
  r.id = match.id;
  r.troupe = troupe;
  r.idempotency_key = key;
  r.state = entry.state;
  r.failure_class = entry.failure;
  r.attempts = entry.attempts;
  r.submitted_at = detail::from_wall_ns(entry.submitted_ns);
  r.started_at = detail::from_wall_ns(entry.started_ns);
  r.finished_at = detail::from_wall_ns(entry.finished_ns);
  return match;
}

void InMemoryJobStore::remember_idempotent(std::string_view troupe, std::string_view key,
                                           const JobPtr& job) {
  const std::int64_t now_ns = detail::to_ns(clock_.now());
  const std::int64_t expires_ns = now_ns + ns(options_.idempotency_ttl);
  std::string k = index_key(troupe, key);
  std::lock_guard lock(idempotency_mutex_);
  expire_keys_locked(now_ns);
  IdempotencyEntry entry;
  // Already over: finished() ran before the entry existed and left the
  // copy to us.
  if (is_terminal(job->state.load(std::memory_order_acquire))) copy_final(*job, entry);
  entry.id = job->id.value;
  entry.expires_ns = expires_ns;
  // Counted in the store's limits like a record: the next add() evicts (the
  // oldest keys or terminal records) when this goes over.
  if (auto [it, added] = idempotency_.insert_or_assign(k, entry); added) {
    keys_.fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    bytes_.fetch_add(key_bytes(k), std::memory_order_relaxed);
  }
  idempotency_order_.push_back({std::move(k), expires_ns});
}

}  // namespace troupe::core
