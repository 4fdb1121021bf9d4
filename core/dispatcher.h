#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/adaptive_mutex.h"
#include "core/job_entry.h"
#include "core/options.h"
#include "core/ring_queue.h"

namespace troupe::core::detail {

class Dispatcher;

/// What the dispatcher knows of an actor: its index and, private to the
/// dispatcher and guarded by its lock, the jobs pinned to it by key and
/// whether it is idle, woken or retiring. An Actor is a Worker; tests use
/// plain Workers.
class Worker : public std::enable_shared_from_this<Worker> {
 public:
  explicit Worker(std::uint32_t index) : index_(index) {}
  virtual ~Worker() = default;
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  std::uint32_t index() const { return index_; }

 private:
  friend class Dispatcher;
  const std::uint32_t index_;
  RingQueue<JobPtr> keyed_;  // jobs routed here by key, in submission order
  bool idle_ = false;        // in the idle list
  bool woken_ = false;       // woken, has not reached take() yet
  bool retiring_ = false;    // leaves once its current job is done
};

using WorkerPtr = std::shared_ptr<Worker>;

/// Where the dispatcher reports its gauges: under its lock, so that the
/// values arrive in the order of the changes (reported outside it, a stale
/// depth could be written last and stay). Must not block or call back.
class DispatchGauges {
 public:
  virtual ~DispatchGauges() = default;
  virtual void mailbox(std::uint64_t depth, std::uint64_t capacity) = 0;
  virtual void actors(std::uint32_t total, std::uint32_t busy) = 0;
};

/// A gate keeper's answer for the job at the head of a queue (breaker and
/// rate limiter, asked under the dispatcher's lock).
enum class Pass : std::uint8_t {
  kGo,
  kGoWithPermit,
  kBreakerRefused,
  kRateLimited,
  kCapped,
  kNoToken,
};
/// Why idle workers are parked with work queued (kCap: the troupe's cluster
/// cap on running attempts, `cluster: {max_concurrency}`, is reached;
/// kToken: the troupe holds no token of its cluster rate limit,
/// `cluster: {rate_limit}`).
enum class Park : std::uint8_t { kNone, kBreaker, kRateLimit, kCap, kToken };

/// A troupe's queues and idle actors: admission against capacity, key
/// pinning, least-loaded or round-robin choice of the actor to wake, one
/// wake in flight per burst, parking behind the breaker or the rate limiter.
///
/// Unkeyed jobs wait in one bounded queue (capacity = workers x
/// mailbox_capacity) that every worker pulls from, so no job waits behind a
/// slow one while another worker is idle. With `dispatch: key` a key is
/// pinned to one worker while it has jobs pending (queued, running or
/// backing off) and its jobs wait in that worker's queue, in order.
///
/// Thread-safe: one lock (`mutex_`), held for a few dozen instructions and
/// never across a call out except DispatchGauges and the gate keeper passed
/// to take(). No Asio, no observer: results are values; the caller wakes
/// the workers they name.
class Dispatcher {
 public:
  Dispatcher(DispatchStrategy strategy, std::uint32_t mailbox_capacity, DispatchGauges& gauges);

  struct Admission {
    bool queued = false;  // false: full (capacity reached, or the key's worker is full)
    WorkerPtr wake;       // an idle worker to wake, if any
    bool throttled = false;
    std::uint64_t depth = 0;  // jobs queued (at refusal: the facts for the client)
    std::uint64_t capacity = 0;
    std::uint32_t workers = 0;
  };
  /// A new job: queued unless the troupe is full (or, `force`, a recovered
  /// one: never refused for capacity). `on_queued`, when set, is called
  /// under the lock once the job is queued, before any worker can take it
  /// (the troupe journals the accept there).
  Admission admit(JobPtr job, const std::function<void()>& on_queued = {}, bool force = false);
  /// A recovered job that is running or backing off: pins its key (as
  /// admit() would) without queuing it.
  void pin(const Job& job);
  /// A job re-entering the queue (a retry): never refused for capacity.
  WorkerPtr requeue(JobPtr job);

  struct Take {
    JobPtr job;                    // null: the worker is idle now (or retired)
    bool breaker_permit = false;   // the attempt holds a breaker permit
    bool capped = false;           // ... and a place under the cluster cap (set by the troupe)
    WorkerPtr chain;               // another idle worker to wake for remaining work
    Park parked = Park::kNone;     // idle because the breaker or the limiter refused
    bool first_park = false;       // ... and nobody has asked to be woken for it yet
    WorkerPtr retired;             // the worker itself, when it retired (release it)
    std::vector<WorkerPtr> woken;  // workers to wake after a retirement moved keyed jobs
  };
  /// The worker's next job. `pass` decides for the job at the head of a
  /// queue: Pass(*) callable, called under the lock.
  template <class GateKeeper>
  Take take(Worker& worker, GateKeeper&& pass);

  /// The breaker or the limiter lets work through again: wakes parked workers.
  std::vector<WorkerPtr> unpark(Park which);
  bool parked_by_breaker() const;

  /// New workers; false (and nothing added: release them) once closed.
  bool add(const std::vector<WorkerPtr>& workers);
  /// The troupe shuts down: every worker leaves (release them), and from
  /// now on take() parks no one and add() is refused. Queued jobs stay.
  std::vector<WorkerPtr> close();
  struct Removal {
    std::uint32_t removed = 0;       // dropped at once or marked retiring
    std::vector<WorkerPtr> dropped;  // idle workers that left at once (release them)
  };
  /// Removes up to n workers, idle ones first; busy ones (unless idle_only)
  /// retire after their current job.
  Removal remove(std::uint32_t n, bool idle_only);
  struct Drop {
    WorkerPtr gone;
    std::vector<WorkerPtr> woken;
  };
  /// A worker that stops for good (supervisor): its keyed jobs move on.
  Drop drop(Worker& worker);

  /// New options (reload): wakes parked workers to re-check.
  std::vector<WorkerPtr> configure(DispatchStrategy strategy, std::uint32_t mailbox_capacity);
  /// Empties every queue (drain deadline, or no worker left); the jobs are
  /// returned in queue order.
  std::vector<JobPtr> take_all();
  /// A keyed job ended: its key's pin is released.
  void job_ended(const Job& job);

  struct Load {
    std::uint32_t workers = 0;
    std::uint32_t idle = 0;
    std::uint64_t queued = 0;
    std::uint64_t capacity = 0;
  };
  Load load() const;
  std::vector<WorkerPtr> workers() const;

 private:
  struct KeyOwner {
    Worker* worker = nullptr;
    std::uint32_t pending = 0;  // queued + running + backing off
  };

  Worker* route_key_locked(const std::string& key);
  void release_key_locked(const std::string& key);
  WorkerPtr pick_idle_locked();
  WorkerPtr claim_idle_locked(Worker& worker);
  /// Takes idle_[pos] out of the idle list (the last one moves into its
  /// place), marks it woken and reports the busy count.
  WorkerPtr wake_idle_at_locked(std::size_t pos);
  std::vector<WorkerPtr> wake_locked(std::uint64_t n);
  void go_idle_locked(Worker& worker);
  /// The worker parks behind gate `why` (`parked` its flag); `asked`, when
  /// the gate must be asked to wake the parked, notes that it was.
  void park_locked(Worker& worker, Take& t, Park why, bool& parked, bool* asked) {
    go_idle_locked(worker);
    parked = true;
    t.parked = why;
    if (asked != nullptr) {
      t.first_park = !*asked;
      *asked = true;
    }
  }
  /// Workers are parked behind a gate (a new job wakes none of them).
  bool parked_locked() const { return gated_ || throttled_ || capped_ || starved_; }
  void move_keyed_jobs_locked(Worker& from, std::vector<WorkerPtr>& woken);
  WorkerPtr drop_locked(Worker& worker);
  void update_capacity_locked();
  void report_mailbox_locked() { gauges_.mailbox(queued_, capacity_); }
  void report_actors_locked() {
    gauges_.actors(static_cast<std::uint32_t>(workers_.size()),
                   static_cast<std::uint32_t>(workers_.size() - idle_.size()));
  }

  DispatchGauges& gauges_;
  mutable AdaptiveMutex mutex_;  // guards everything below, and every Worker's private fields
  DispatchStrategy strategy_;
  std::uint32_t mailbox_capacity_;
  std::vector<WorkerPtr> workers_;  // live ones
  std::vector<Worker*> idle_;
  RingQueue<JobPtr> queue_;   // unkeyed jobs
  std::uint64_t queued_ = 0;  // queue_ + every keyed_, ended entries included
  std::uint64_t capacity_ = 0;
  std::uint32_t rr_cursor_ = 0;
  std::uint32_t waking_ = 0;  // workers woken that have not reached take() yet
  std::unordered_map<std::string, KeyOwner> keys_;
  bool gated_ = false;       // workers parked because the breaker refused a permit
  bool gate_asked_ = false;  // ... and the troupe was told to wait for it
  bool throttled_ = false;   // workers parked because the rate limiter had no token
  bool throttle_asked_ = false;
  bool capped_ = false;        // workers parked because the cluster cap was reached
  bool starved_ = false;       // workers parked for want of a cluster rate token
  bool starve_asked_ = false;  // ... and the troupe was told to ask for tokens
  bool closed_ = false;        // close(): no worker is kept any more
};

template <class GateKeeper>
Dispatcher::Take Dispatcher::take(Worker& worker, GateKeeper&& pass) {
  Take t;
  std::lock_guard lock(mutex_);
  if (worker.woken_) {
    worker.woken_ = false;
    --waking_;
  }
  // Closed: the worker is on its way out (idle_ must not point at it).
  if (closed_) return t;
  if (worker.retiring_) {
    move_keyed_jobs_locked(worker, t.woken);
    t.retired = drop_locked(worker);
    return t;
  }
  for (;;) {
    RingQueue<JobPtr>* q = !worker.keyed_.empty() ? &worker.keyed_
                           : !queue_.empty()      ? &queue_
                                                  : nullptr;
    if (q == nullptr) {
      go_idle_locked(worker);
      return t;
    }
    if (q->front()->state.load(std::memory_order_acquire) != JobState::kQueued) {
      q->pop_front();  // cancelled or aborted while queued: already ended
      --queued_;
      report_mailbox_locked();
      continue;
    }
    switch (pass()) {
      case Pass::kGo:
        break;
      case Pass::kGoWithPermit:
        t.breaker_permit = true;
        break;
      case Pass::kBreakerRefused:
        // Nothing runs and no attempt is used; the breaker's next
        // transition or a probe's result wakes the parked workers.
        park_locked(worker, t, Park::kBreaker, gated_, &gate_asked_);
        return t;
      case Pass::kRateLimited:
        park_locked(worker, t, Park::kRateLimit, throttled_, &throttle_asked_);
        return t;
      case Pass::kCapped:
        // Woken by unpark(Park::kCap) when a capped attempt ends or the
        // cap rises: nobody needs to be asked.
        park_locked(worker, t, Park::kCap, capped_, nullptr);
        return t;
      case Pass::kNoToken:
        // Woken by unpark(Park::kToken) when the store grants tokens.
        park_locked(worker, t, Park::kToken, starved_, &starve_asked_);
        return t;
    }
    t.job = q->pop_front();
    --queued_;
    report_mailbox_locked();
    // Chain wake: more shared work and an idle worker, and nobody on the way
    // to take it. This keeps "no job waits while a worker is idle" with one
    // wake in flight at a time.
    if (!queue_.empty() && waking_ == 0 && !idle_.empty()) t.chain = pick_idle_locked();
    return t;
  }
}

}  // namespace troupe::core::detail
