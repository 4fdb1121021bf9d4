#include "core/job_entry.h"

namespace troupe::core::detail {

JobRecord Job::snapshot() const {
  std::lock_guard guard(lock);
  return snapshot_locked();
}

JobRecord Job::snapshot_locked() const {
  JobRecord r;
  r.id = id;
  r.troupe = *troupe_name;
  r.state = state.load(std::memory_order_relaxed);
  r.attempts = attempts;
  r.payload = payload;
  if (r.state == JobState::kSucceeded) {
    r.result = output;
  } else {
    r.error = output;
  }
  r.failure_class = failure;
  if (extras) {
    r.key = extras->key;
    r.idempotency_key = extras->idempotency_key;
    r.metadata = extras->metadata;
  }
  r.submitted_at = from_wall_ns(submitted_ns);
  r.started_at = from_wall_ns(started_ns);
  r.finished_at = from_wall_ns(finished_ns);
  return r;
}

}  // namespace troupe::core::detail
