#include "core/job_entry.h"

namespace troupe::core::detail {

std::unique_ptr<JobExtras> make_extras(std::string key, std::string idempotency_key,
                                       Metadata metadata, std::optional<Duration> attempt_timeout,
                                       std::optional<WallTime> deadline) {
  if (key.empty() && idempotency_key.empty() && metadata.empty() && !attempt_timeout && !deadline) {
    return nullptr;
  }
  auto extras = std::make_unique<JobExtras>();
  extras->key = std::move(key);
  extras->idempotency_key = std::move(idempotency_key);
  extras->metadata = std::move(metadata);
  extras->attempt_timeout = attempt_timeout;
  extras->deadline = deadline;
  return extras;
}

JobRecord Job::snapshot() const {
  JobRecord r;
  copy_request(r);
  std::lock_guard guard(lock);
  copy_progress_locked(r);
  return r;
}

JobRecord Job::snapshot_locked() const {
  JobRecord r;
  copy_request(r);
  copy_progress_locked(r);
  return r;
}

void Job::copy_request(JobRecord& r) const {
  // Immutable after submit: copied without the lock, so the spin lock is
  // held only for what changes.
  r.id = id;
  r.troupe = *troupe_name;
  if (extras) {
    r.key = extras->key;
    r.idempotency_key = extras->idempotency_key;
    r.metadata = extras->metadata;
  }
}

void Job::copy_progress_locked(JobRecord& r) const {
  r.state = state.load(std::memory_order_relaxed);
  r.attempts = attempts;
  if (r.state == JobState::kSucceeded) {
    r.result = output;
  } else {
    r.error = output;
  }
  r.failure_class = failure;
  r.submitted_at = from_wall_ns(submitted_ns);
  r.started_at = from_wall_ns(started_ns);
  r.finished_at = from_wall_ns(finished_ns);
}

}  // namespace troupe::core::detail
