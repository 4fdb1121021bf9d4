#include "core/runtime_impl.h"

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <limits>
#include <system_error>
#include <utility>

namespace troupe::core {

using detail::Job;
using detail::JobPtr;
using detail::Troupe;

namespace {

// How long a caller refused for too many listeners is told to wait: they
// leave when the job ends.
constexpr std::chrono::milliseconds kTooManyListenersRetry{1000};

/// 64 bits from the kernel's CSPRNG, read a page at a time per thread (one
/// getrandom() per 512 ids): ids cannot be guessed from others a client saw,
/// so knowing the endpoint does not give other clients' results.
std::uint64_t random_id_bits() {
  struct Pool {
    std::array<std::uint64_t, 512> bits;
    std::size_t next = 512;
  };
  thread_local Pool pool;
  if (pool.next == pool.bits.size()) {
    auto* out = reinterpret_cast<char*>(pool.bits.data());
    std::size_t filled = 0;
    while (filled < sizeof pool.bits) {
      const ssize_t n = ::getrandom(out + filled, sizeof pool.bits - filled, 0);
      if (n > 0) {
        filled += static_cast<std::size_t>(n);
      } else if (n < 0 && errno != EINTR) {
        throw std::system_error(errno, std::generic_category(), "getrandom");
      }
    }
    pool.next = 0;
  }
  return pool.bits[pool.next++];
}

/// The id the next next_id() on this thread returns instead of a new one
/// (0: none): submit_keyed() accepts a job under the id its store row was
/// committed with; Troupe::submit() draws the id from next_id() once.
thread_local std::uint64_t forced_next_id = 0;

/// A job as a store row has it (recovery, a claim, or a lookup of a job held
/// elsewhere); `troupe_name` must outlive it. The one conversion from
/// RecoveredJob: adopt() runs the job, to_record() snapshots it.
JobPtr job_from_row(RecoveredJob&& r, const std::string* troupe_name) {
  auto job = std::make_shared<Job>();
  auto& q = r.request;
  job->id = q.id;
  job->troupe_name = troupe_name;
  job->payload = std::move(q.payload);
  job->extras = detail::make_extras(
      std::move(q.key), q.idempotency_key, std::move(q.metadata),
      q.attempt_timeout_ns != 0 ? std::optional<Duration>(q.attempt_timeout_ns) : std::nullopt,
      q.deadline_ns != 0 ? std::optional<WallTime>(detail::from_wall_ns(q.deadline_ns))
                         : std::nullopt);
  job->state.store(r.state, std::memory_order_relaxed);
  job->failure = r.failure;
  job->attempts = r.attempts;
  job->output = std::move(r.output);
  job->submitted_ns = q.submitted_ns;
  job->started_ns = r.started_ns;
  job->finished_ns = r.finished_ns;
  return job;
}

/// The record GetJob shows for a store row.
JobRecord to_record(RecoveredJob&& r) {
  const std::string troupe = r.request.troupe;
  return job_from_row(std::move(r), &troupe)->snapshot();
}

}  // namespace

RuntimeImpl::RuntimeImpl(boost::asio::io_context& io, Clock& clock, Observer& observer,
                         RuntimeOptions options, Journal* journal)
    : io_(io),
      clock_(clock),
      observer_(observer),
      options_(options),
      store_(std::make_unique<InMemoryJobStore>(options.job_store, clock)),
      own_journal_(journal == nullptr ? make_memory_journal() : nullptr),
      journal_(journal == nullptr ? *own_journal_ : *journal),
      control_(boost::asio::make_strand(io.get_executor())) {
  journal_.journal.on_failure([this](const JournalFailure& failure) {
    journal_.note_failure(failure);
    journal_.failed.store(true, std::memory_order_relaxed);
    std::function<void(const JournalFailure&)> handler;
    {
      std::lock_guard lock(failure_mutex_);
      handler = on_failure_;
    }
    if (handler) handler(failure);
  });
  if (journal_.journal.shared()) journal_.journal.set_cluster_hooks(cluster_hooks());
}

void RuntimeImpl::after_durable(DurableCallback done) {
  journal_.journal.after_durable(std::move(done));
}

void RuntimeImpl::on_journal_failure(std::function<void(const JournalFailure&)> handler) {
  std::lock_guard lock(failure_mutex_);
  on_failure_ = std::move(handler);
}

RecoveryReport RuntimeImpl::recover() {
  RecoveryReport report;
  const auto began = clock_.now();
  std::map<std::string, std::shared_ptr<Troupe>, std::less<>> troupes;
  {
    std::shared_lock lock(troupes_mutex_);
    troupes = troupes_;
  }
  const std::int64_t wall_now_ns = detail::to_ns(clock_.wall_now());
  journal_.journal.recover([&](RecoveredJob&& r) {
    auto it = troupes.find(r.request.troupe);
    if (it == troupes.end()) {
      ++report.orphaned[r.request.troupe];
      return;
    }
    adopt(std::move(r), *it->second, wall_now_ns, report);
  });
  report.took = clock_.now() - began;
  return report;
}

bool RuntimeImpl::adopt(RecoveredJob&& r, Troupe& troupe, std::int64_t wall_now_ns,
                        RecoveryReport& report) {
  const std::string idempotency_key = r.request.idempotency_key;
  const std::int64_t next_run_ns = r.next_run_ns != 0 ? r.next_run_ns : wall_now_ns;
  JobPtr job = job_from_row(std::move(r), &troupe.name());  // interned
  job->troupe = &troupe;
  // Queue wait is measured from the adoption, not from the first accept.
  job->enqueued_ns = detail::to_ns(clock_.now());
  const JobState state = job->state.load(std::memory_order_relaxed);
  if (is_terminal(state)) {
    ++report.terminal;
    if (state == JobState::kDead) ++report.dead_letters;
    job->troupe = nullptr;  // a terminal job's troupe is never used
    troupe.lifecycle().recovered_terminal(job);
  } else if (!troupe.recover(job, next_run_ns, report)) {
    return false;
  }
  if (!idempotency_key.empty()) store_->remember_idempotent(troupe.name(), idempotency_key, job);
  return true;
}

ClusterHooks RuntimeImpl::cluster_hooks() {
  ClusterHooks hooks;
  hooks.room = [this](std::string_view name) -> std::size_t {
    auto t = find_troupe(name);
    return t ? t->room() : 0;
  };
  hooks.claimed = [this](RecoveredJob&& row) { claimed(std::move(row)); };
  hooks.lost = [this](JobId id) { lost(id); };
  hooks.cancel = [this](JobId id) { cancel(id); };
  hooks.availability = [this](bool up, const std::string& why) { availability(up, why); };
  hooks.leadership = [this](std::string_view name, std::int64_t term) {
    if (auto t = find_troupe(name)) t->set_leadership(term);
  };
  hooks.permits = [this](std::string_view name, std::uint32_t permits) -> std::uint32_t {
    auto t = find_troupe(name);
    return t ? t->set_permits(permits) : 0;
  };
  hooks.demand = [this](std::string_view name) -> std::size_t {
    auto t = find_troupe(name);
    return t ? t->demand() : 0;
  };
  hooks.tokens = [this](std::string_view name, std::uint32_t tokens) {
    if (auto t = find_troupe(name)) t->grant_tokens(tokens);
  };
  hooks.token_demand = [this](std::string_view name) -> std::size_t {
    auto t = find_troupe(name);
    return t ? t->token_demand() : 0;
  };
  return hooks;
}

void RuntimeImpl::claimed(RecoveredJob&& row) {
  if (is_terminal(row.state)) return;  // nothing to run; the store answers for it
  const JobId id = row.request.id;
  const std::uint32_t attempts = row.attempts;
  auto t = find_troupe(row.request.troupe);
  RecoveryReport ignored;  // a claim is not part of the start's recovery report
  if (t && adopt(std::move(row), *t, detail::to_ns(clock_.wall_now()), ignored)) {
    hasten_remote_watches(id);
    return;
  }
  // Not hosted here, or its gate closed (drain, removal) since the journal
  // asked room(): an owned job is never dropped, it goes back to the store.
  journal_.journal.append(JournalRequeued{id, attempts});
  if (t) t->handed_back();
}

void RuntimeImpl::lost(JobId id) {
  JobPtr job = store_->find(id);
  if (!job) return;
  if (auto t = owner_of(*job)) t->lost(job);
}

void RuntimeImpl::availability(bool up, const std::string& why) {
  {
    std::lock_guard lock(journal_.why_mutex);
    journal_.unavailable_why = up ? std::string() : why;
  }
  journal_.unavailable.store(!up, std::memory_order_relaxed);
  std::function<void(bool, const std::string&)> handler;
  {
    std::lock_guard lock(failure_mutex_);
    handler = on_availability_;
  }
  if (handler) handler(up, why);
}

void RuntimeImpl::on_store_availability(
    std::function<void(bool up, const std::string& why)> handler) {
  std::lock_guard lock(failure_mutex_);
  on_availability_ = std::move(handler);
}

bool RuntimeImpl::answers_for(const Job& job) const {
  if (!journal_.journal.shared()) return true;
  std::lock_guard lock(job.lock);
  return !job.left;
}

std::optional<RuntimeImpl::LocalView> RuntimeImpl::local_view(const Job& job) const {
  std::lock_guard lock(job.lock);
  if (job.left && journal_.journal.shared()) return std::nullopt;
  return LocalView{job.snapshot_locked(), !journal_.outcome_settled_locked(job)};
}

void RuntimeImpl::find(JobId id,
                       std::function<void(StoreAnswer<std::optional<JobRecord>>)> done) const {
  JobPtr job = store_->find(id);
  std::optional<LocalView> here = job ? local_view(*job) : std::nullopt;
  if (here) {
    if (!here->outcome_pending) {
      done(std::optional<JobRecord>(std::move(here->record)));
      return;
    }
    if (journal_.unavailable.load(std::memory_order_relaxed)) {
      // The store is down: the write is not answered before it is back.
      done(StoreUnavailable{journal_.why_unavailable()});
      return;
    }
    // It ended here. The outcome is this replica's once its terminal write
    // committed; should the store refuse it (this replica paused past its
    // lease and another took the job), the store has the job's outcome.
    // The write was appended as the state turned terminal: this barrier
    // covers it.
    journal_.journal.after_durable(
        [this, job = std::move(job), done = std::move(done)](const JournalFailure*) mutable {
          if (auto settled = local_view(*job)) {
            return done(std::optional<JobRecord>(std::move(settled->record)));
          }
          find_in_store(job->id, std::move(done));
        });
    return;
  }
  if (!journal_.journal.shared()) {
    done(std::optional<JobRecord>());
    return;
  }
  find_in_store(id, std::move(done));
}

void RuntimeImpl::find_in_store(
    JobId id, std::function<void(StoreAnswer<std::optional<JobRecord>>)> done) const {
  journal_.journal.find(
      id, [done = std::move(done)](StoreAnswer<std::optional<RecoveredJob>> answer) {
        if (auto* down = std::get_if<StoreUnavailable>(&answer)) return done(std::move(*down));
        auto& row = std::get<std::optional<RecoveredJob>>(answer);
        done(row ? std::optional<JobRecord>(to_record(std::move(*row))) : std::nullopt);
      });
}

void RuntimeImpl::cancel_anywhere(
    JobId id, std::function<void(StoreAnswer<std::optional<CancelOutcome>>)> done) {
  JobPtr job = store_->find(id);
  if (!journal_.journal.shared() || (job && answers_for(*job))) {
    done(cancel(id));
    return;
  }
  journal_.journal.request_cancel(
      id, [done = std::move(done)](StoreAnswer<std::optional<RecoveredJob>> answer) {
        if (auto* down = std::get_if<StoreUnavailable>(&answer)) return done(std::move(*down));
        auto& row = std::get<std::optional<RecoveredJob>>(answer);
        if (!row) return done(std::optional<CancelOutcome>());
        const bool cancelled = !is_terminal(row->state);  // the row as it was before the request
        done(std::optional<CancelOutcome>(CancelOutcome{to_record(std::move(*row)), cancelled}));
      });
}

void RuntimeImpl::dead_jobs_anywhere(
    std::string_view troupe, std::size_t limit,
    std::function<void(StoreAnswer<std::optional<std::vector<JobRecord>>>)> done) const {
  if (!journal_.journal.shared() || !find_troupe(troupe)) {
    done(dead_jobs(troupe, limit));
    return;
  }
  // Shared: the store's list is the whole truth (this process's own dead
  // jobs are in it too), so nothing is merged.
  journal_.journal.dead_jobs(
      std::string(troupe), limit,
      [done = std::move(done)](StoreAnswer<std::vector<RecoveredJob>> answer) {
        if (auto* down = std::get_if<StoreUnavailable>(&answer)) return done(std::move(*down));
        auto& rows = std::get<std::vector<RecoveredJob>>(answer);
        std::vector<JobRecord> out;
        out.reserve(rows.size());
        for (auto& r : rows) out.push_back(to_record(std::move(r)));
        done(std::optional<std::vector<JobRecord>>(std::move(out)));
      });
}

void RuntimeImpl::cluster(std::function<void(ClusterLookup)> done) const {
  if (!journal_.journal.shared()) {
    done(ClusterLookup{});
    return;
  }
  // Taken now: the callback runs on the journal's thread and must not touch
  // the runtime.
  struct Hosted {
    std::string name;
    bool singleton;
    std::uint32_t max_concurrency;
  };
  std::vector<Hosted> hosted;
  {
    std::shared_lock lock(troupes_mutex_);
    for (const auto& [name, t] : troupes_) {
      hosted.push_back({name, t->cluster().singleton, t->cluster().max_concurrency});
    }
  }
  journal_.journal.cluster(
      [hosted = std::move(hosted), done = std::move(done)](ClusterLookup answer) {
        if (answer.status == ClusterLookup::Status::kOk) {
          for (const auto& h : hosted) {
            ClusterTroupe& t = answer.view.troupe(h.name);
            t.singleton = h.singleton;
            t.max_concurrency = h.max_concurrency;
          }
        }
        done(std::move(answer));
      });
}

RuntimeImpl::~RuntimeImpl() {
  std::unique_lock lock(troupes_mutex_);
  for (auto& [name, t] : troupes_) t->shutdown();
  for (auto& t : retiring_) t->shutdown();
}

JobId RuntimeImpl::next_id() {
  if (forced_next_id != 0) return JobId{std::exchange(forced_next_id, 0)};
  // Zero is no job's id; a live id (2^-64 per draw and job) is drawn again.
  for (;;) {
    const JobId id{random_id_bits()};
    if (id.value != 0 && !store_->find(id)) return id;
  }
}

const std::string* RuntimeImpl::intern(const std::string& name) {
  return &*names_.insert(name).first;
}

void RuntimeImpl::apply(const std::vector<TroupeOptions>& troupes) {
  std::unique_lock lock(troupes_mutex_);
  std::set<std::string, std::less<>> wanted;
  for (const auto& o : troupes) wanted.insert(o.name);
  for (auto it = troupes_.begin(); it != troupes_.end();) {
    if (wanted.contains(it->first)) {
      ++it;
      continue;
    }
    // Removed: its gate closes; its accepted jobs finish, then it goes.
    auto t = std::move(it->second);
    it = troupes_.erase(it);
    Troupe* raw = t.get();
    retiring_.push_back(std::move(t));
    raw->close([this, raw] { boost::asio::post(io_, [this, raw] { remove_drained(raw); }); });
  }
  for (const auto& o : troupes) {
    auto it = troupes_.find(o.name);
    if (it != troupes_.end()) {
      it->second->update(o);
      continue;
    }
    auto t = std::make_shared<Troupe>(o, io_, clock_, observer_, *store_,
                                      static_cast<detail::TroupeHost&>(*this), intern(o.name),
                                      make_handler, journal_);
    t->start();  // before other threads can see it
    if (draining_.load(std::memory_order_acquire)) t->close({});
    troupes_.emplace(o.name, std::move(t));
  }
  if (journal_.journal.shared()) {
    // As each troupe was created: a reload does not change `cluster:`.
    std::vector<CoordinatedTroupe> coordinated;
    for (const auto& [name, t] : troupes_) {
      const ClusterOptions& c = t->cluster();
      if (!c.any() && !t->keys_across_replicas()) continue;
      coordinated.push_back(CoordinatedTroupe{
          .name = name,
          .singleton = c.singleton,
          .max_concurrency = c.max_concurrency,
          .rate_per_second = c.rate_limit.enabled ? c.rate_limit.per_second : 0,
          .rate_burst = c.rate_limit.enabled ? c.rate_limit.burst : 0,
          .key_order = t->keys_across_replicas(),
      });
    }
    journal_.journal.coordinate(std::move(coordinated));
  }
}

std::shared_ptr<Troupe> RuntimeImpl::find_troupe(std::string_view name) const {
  std::shared_lock lock(troupes_mutex_);
  auto it = troupes_.find(name);
  return it == troupes_.end() ? nullptr : it->second;
}

std::shared_ptr<Troupe> RuntimeImpl::owner_of(const Job& job) const {
  std::shared_lock lock(troupes_mutex_);
  for (const auto& [name, t] : troupes_) {
    if (t.get() == job.troupe) return t;
  }
  for (const auto& t : retiring_) {
    if (t.get() == job.troupe) return t;
  }
  return nullptr;
}

Rejection RuntimeImpl::reject_unknown() {
  observer_.unknown_troupe_rejected();
  return Rejection{RejectReason::kUnknownTroupe};
}

std::variant<Accepted, Rejection> RuntimeImpl::submit(JobRequest request, JobCallback on_terminal) {
  if (request.idempotency_key.empty()) {
    // The hot path: the table lock is held shared for the submit itself, so
    // no reference count is touched.
    std::shared_lock lock(troupes_mutex_);
    auto it = troupes_.find(std::string_view(request.troupe));
    if (it == troupes_.end()) return reject_unknown();
    return it->second->submit(std::move(request), std::move(on_terminal));
  }

  auto t = find_troupe(request.troupe);
  if (!t) return reject_unknown();
  // Idempotent submits are serialised so two racing ones cannot both miss.
  std::lock_guard idem(idempotency_mutex_);
  if (auto match = store_->find_idempotent(request.troupe, request.idempotency_key)) {
    return answer_duplicate(*match, std::move(on_terminal));
  }
  return submit_remembered(*t, std::move(request), std::move(on_terminal));
}

std::variant<Accepted, Rejection> RuntimeImpl::submit_remembered(Troupe& t, JobRequest request,
                                                                 JobCallback on_terminal) {
  const std::string troupe_name = request.troupe;
  const std::string key = request.idempotency_key;
  auto result = t.submit(std::move(request), std::move(on_terminal));
  if (const auto* accepted = std::get_if<Accepted>(&result)) {
    if (JobPtr job = store_->find(accepted->id)) store_->remember_idempotent(troupe_name, key, job);
  }
  return result;
}

RuntimeImpl::Attached RuntimeImpl::attach_on_terminal(detail::Job& job, JobCallback on_terminal,
                                                      std::size_t most) const {
  std::lock_guard lock(job.lock);
  if (is_terminal(job.state.load(std::memory_order_relaxed))) {
    return journal_.outcome_settled_locked(job) ? Attached::kEnded : Attached::kPending;
  }
  if (!job.listeners) job.listeners = std::make_unique<detail::JobListeners>();
  if (job.listeners->on_terminal.size() >= most) return Attached::kFull;
  job.listeners->on_terminal.push_back(std::move(on_terminal));
  return Attached::kYes;
}

std::variant<Accepted, Rejection> RuntimeImpl::answer_duplicate(const IdempotentMatch& match,
                                                                JobCallback on_terminal) {
  if (!on_terminal) return Accepted{match.id, true};
  auto too_many = [this](JobId id) {
    Rejection r{RejectReason::kTooManyListeners, kTooManyListenersRetry};
    r.capacity = options_.max_listeners_per_job;
    r.job = id;
    return r;
  };
  const JobPtr& existing = match.job;
  if (!existing && !is_terminal(match.final_state.state)) {
    // Held by another replica (a shared store): followed through the store
    // until it ends.
    if (!follow_to_end(match.id, std::move(on_terminal), match.final_state.state,
                       match.final_state.attempts)) {
      return too_many(match.id);
    }
    return Accepted{match.id, true};
  }
  bool done = !existing;  // a tombstone, or a terminal row of the store
  if (existing) {
    switch (attach_on_terminal(*existing, on_terminal, options_.max_listeners_per_job)) {
      case Attached::kFull:
        return too_many(existing->id);
      case Attached::kPending:
        if (auto t = owner_of(*existing)) {
          // Ended here, its outcome not settled yet (see watch()). Posted,
          // as below: never answered before the accept.
          boost::asio::post(io_, [t, existing, cb = std::move(on_terminal)]() mutable {
            std::vector<JobCallback> waiting;
            waiting.push_back(std::move(cb));
            t->lifecycle().tell_terminal(existing, std::move(waiting));
          });
          return Accepted{match.id, true};
        }
        done = true;  // its troupe is gone: nothing will settle it here
        break;
      case Attached::kEnded:
        done = true;
        break;
      case Attached::kYes:
        break;
    }
  }
  if (done) {
    // Posted: never answered before the accept. A job that ended here a
    // moment ago on a journal of one process may not have its end
    // committed yet: told once it is (on_terminal tells a durable outcome).
    // A store's row is durable, and so is an end a shared journal settled.
    auto answer = [existing, final_state = match.final_state, cb = std::move(on_terminal)] {
      cb(existing ? existing->snapshot() : final_state);
    };
    if (existing && journal_.durable && !journal_.journal.shared()) {
      journal_.after_durable_noting([this, answer] { boost::asio::post(io_, answer); });
    } else {
      boost::asio::post(io_, std::move(answer));
    }
  }
  return Accepted{match.id, true};
}

void RuntimeImpl::submit_anywhere(JobRequest request, JobCallback on_terminal, SubmitDone done) {
  if (request.idempotency_key.empty() || !journal_.journal.shared()) {
    done(submit(std::move(request), std::move(on_terminal)));
    return;
  }
  auto t = find_troupe(request.troupe);
  if (!t) {
    done(reject_unknown());
    return;
  }
  {
    // This process's own jobs first (no round trip for a retry to the same
    // replica), unless the job left (the store has it).
    std::lock_guard idem(idempotency_mutex_);
    auto match = store_->find_idempotent(request.troupe, request.idempotency_key);
    if (match && (!match->job || answers_for(*match->job))) {
      done(answer_duplicate(*match, std::move(on_terminal)));
      return;
    }
  }
  if (journal_.failed.load(std::memory_order_relaxed) ||
      journal_.unavailable.load(std::memory_order_relaxed) || (!t->follower() && t->room() == 0)) {
    // Refused (the store down, the troupe full or closed): submit() refuses
    // and counts it. Should room appear meanwhile, it accepts the job with
    // its key in the batch insert, which writes nothing when another row
    // holds the key (the job is then lost here). A singleton troupe led
    // elsewhere has no room but accepts: its job goes through the store.
    done(submit(std::move(request), std::move(on_terminal)));
    return;
  }
  JournalAccepted row;
  row.id = next_id();
  row.troupe = request.troupe;
  row.payload = request.payload;
  row.key = request.key;
  row.idempotency_key = request.idempotency_key;
  row.metadata = request.metadata;
  row.submitted_ns = detail::to_ns(clock_.wall_now());
  if (request.deadline) row.deadline_ns = detail::to_ns(*request.deadline);
  if (request.attempt_timeout) row.attempt_timeout_ns = request.attempt_timeout->count();
  const JobId id = row.id;
  journal_.journal.accept_keyed(
      std::move(row),
      [this, t = std::move(t), id, request = std::move(request),
       on_terminal = std::move(on_terminal), done = std::move(done)](KeyedAccept answer) mutable {
        switch (answer.status) {
          case KeyedAccept::Status::kAccepted:
            submit_keyed(t, id, std::move(request), std::move(on_terminal), std::move(done));
            return;
          case KeyedAccept::Status::kDuplicate: {
            IdempotentMatch match;
            match.id = answer.existing.request.id;
            match.job = store_->find(match.id);
            if (match.job && !answers_for(*match.job)) match.job = nullptr;  // left here
            match.final_state = to_record(std::move(answer.existing));
            done(answer_duplicate(match, std::move(on_terminal)));
            return;
          }
          case KeyedAccept::Status::kUnavailable: {
            Rejection r{RejectReason::kStoreUnavailable};
            r.store_failure = std::move(answer.error);
            done(std::move(r));
            return;
          }
        }
      });
}

void RuntimeImpl::submit_keyed(const std::shared_ptr<Troupe>& t, JobId id, JobRequest request,
                               JobCallback on_terminal, SubmitDone done) {
  std::variant<Accepted, Rejection> result;
  {
    std::lock_guard idem(idempotency_mutex_);
    forced_next_id = id.value;
    result = submit_remembered(*t, std::move(request), std::move(on_terminal));
    forced_next_id = 0;  // not drawn when refused before the job was made
  }
  // Refused after all (full, draining, ...): nothing of it may stay.
  if (std::holds_alternative<Rejection>(result)) journal_.journal.withdraw_keyed(id);
  done(std::move(result));
}

std::optional<JobRecord> RuntimeImpl::get(JobId id) const {
  JobPtr job = store_->find(id);
  if (!job) return std::nullopt;
  return job->snapshot();
}

std::optional<CancelOutcome> RuntimeImpl::cancel(JobId id) {
  JobPtr job = store_->find(id);
  if (!job) return std::nullopt;
  if (is_terminal(job->state.load(std::memory_order_acquire))) {
    return CancelOutcome{job->snapshot(), false};
  }
  auto t = owner_of(*job);
  if (!t) return CancelOutcome{job->snapshot(), false};  // its troupe is gone: it is terminal
  return t->cancel(job);
}

std::variant<WatchId, WatchRefusal> RuntimeImpl::watch(JobId id, JobCallback on_change) {
  JobPtr job = store_->find(id);
  const WatchId wid = next_watch_.fetch_add(1, std::memory_order_relaxed);
  auto through_store = [&]() -> std::variant<WatchId, WatchRefusal> {
    if (!watch_remote(wid, id, std::move(on_change), std::nullopt, 0)) {
      return WatchRefusal::kTooManyListeners;
    }
    return wid;
  };
  if (journal_.journal.shared() && (!job || !answers_for(*job))) {
    // Held by another replica (or unknown): watched through the store.
    return through_store();
  }
  if (!job) return WatchRefusal::kUnknownJob;
  detail::JobListeners* listeners;
  {
    std::lock_guard lock(job->lock);
    if (!job->listeners) job->listeners = std::make_unique<detail::JobListeners>();
    listeners = job->listeners.get();
  }
  std::optional<LocalView> here;
  std::shared_ptr<Troupe> settles;  // ended here, outcome pending: told by its troupe
  {
    std::lock_guard notify(listeners->notify);
    if (listeners->watchers.size() >= options_.max_listeners_per_job) {
      return WatchRefusal::kTooManyListeners;
    }
    // Read under `notify`: a job that leaves after this moves the watcher
    // registered here to the store (JobLifecycle::end_watches).
    here = local_view(*job);
    if (here && here->outcome_pending) settles = owner_of(*job);
    if (here && (!is_terminal(here->record.state) || settles)) {
      // A watch of a job that ended here on a shared store is told like a
      // live one: once the terminal write committed, or through the store
      // should the store refuse it (JobLifecycle::tell_terminal). Nothing
      // told yet: any terminal state differs from kQueued.
      const JobState told = settles ? JobState::kQueued : here->record.state;
      listeners->watchers.push_back({wid, on_change, told, settles ? 0 : here->record.attempts});
      std::lock_guard lock(watches_mutex_);
      watches_.emplace(wid, job);
    }
    if (here && !settles) on_change(here->record);
  }
  if (settles) {
    settles->lifecycle().tell_terminal(job, {});
    return wid;
  }
  if (!here) return through_store();  // it left since the check above
  return wid;
}

void RuntimeImpl::unwatch(WatchId id) {
  if (end_remote(id)) return;
  JobPtr job;
  {
    std::lock_guard lock(watches_mutex_);
    auto it = watches_.find(id);
    if (it == watches_.end()) return;
    job = it->second.lock();
    watches_.erase(it);
  }
  if (!job) return;
  detail::JobListeners* listeners;
  {
    std::lock_guard lock(job->lock);
    listeners = job->listeners.get();
  }
  if (listeners == nullptr) return;
  std::lock_guard notify(listeners->notify);
  std::erase_if(listeners->watchers, [id](const auto& w) { return w.id == id; });
}

void RuntimeImpl::watch_ended(WatchId id) {
  std::lock_guard lock(watches_mutex_);
  watches_.erase(id);
}

/// A watch of a job this process does not hold: its row is read from the
/// store every remote_watch_interval. `mutex` is held while the callback
/// runs, so deliveries are ordered and none follows end_remote() (recursive:
/// a callback may unwatch). The timer is used on `strand` only.
struct RuntimeImpl::RemoteWatch {
  RemoteWatch(WatchId id, JobId job, JobCallback callback, boost::asio::io_context& io)
      : id(id), job(job), callback(std::move(callback)), strand(boost::asio::make_strand(io)) {}
  const WatchId id;
  const JobId job;
  std::recursive_mutex mutex;  // guards the fields below
  JobCallback callback;        // empty once ended
  std::optional<JobState> last_state;
  std::uint32_t last_attempts = 0;
  boost::asio::strand<boost::asio::io_context::executor_type> strand;
  std::unique_ptr<Timer> timer;
};

void RuntimeImpl::watch_moved(JobId job, detail::JobListeners::Watcher&& watcher) {
  {
    std::lock_guard lock(watches_mutex_);
    // Gone already: unwatch() came first, the watch is over.
    if (watches_.erase(watcher.id) == 0) return;
  }
  // A journal of one process: the job continues after a restart, nowhere to
  // watch it now; the watch ends with no further call.
  if (!journal_.journal.shared()) return;
  watch_remote(watcher.id, job, std::move(watcher.callback), watcher.last_state,
               watcher.last_attempts);
}

void RuntimeImpl::follow_elsewhere(JobId id, JobCallback on_terminal) {
  // A job accepted a moment ago: never refused (no watch of it yet).
  follow_to_end(id, std::move(on_terminal), std::nullopt, 0);
}

bool RuntimeImpl::follow_to_end(JobId job, JobCallback on_terminal,
                                std::optional<JobState> last_state, std::uint32_t last_attempts) {
  const WatchId wid = next_watch_.fetch_add(1, std::memory_order_relaxed);
  auto at_end = [cb = std::move(on_terminal)](const JobRecord& r) {
    if (is_terminal(r.state)) cb(r);
  };
  return watch_remote(wid, job, std::move(at_end), last_state, last_attempts);
}

bool RuntimeImpl::watch_remote(WatchId id, JobId job, JobCallback on_change,
                               std::optional<JobState> last_state, std::uint32_t last_attempts) {
  auto watch = std::make_shared<RemoteWatch>(id, job, std::move(on_change), io_);
  watch->last_state = last_state;
  watch->last_attempts = last_attempts;
  watch->timer = clock_.make_timer(watch->strand);
  {
    std::lock_guard lock(watches_mutex_);
    auto& count = remote_per_job_[job.value];
    if (count >= options_.max_listeners_per_job) {
      if (count == 0) remote_per_job_.erase(job.value);
      return false;
    }
    ++count;
    remote_watches_.emplace(id, watch);
  }
  poll_remote(watch);
  return true;
}

void RuntimeImpl::poll_remote(const std::shared_ptr<RemoteWatch>& watch) {
  find(watch->job, [this, watch](StoreAnswer<std::optional<JobRecord>> answer) {
    // Not answered (an outage): nothing to deliver, read again at the next tick.
    auto* found = std::get_if<std::optional<JobRecord>>(&answer);
    tell_remote(watch, found != nullptr ? std::move(*found) : std::nullopt);
  });
}

void RuntimeImpl::tell_remote(const std::shared_ptr<RemoteWatch>& watch,
                              std::optional<JobRecord> record) {
  // Called on the journal's thread (or a job's): the rest runs on the
  // watch's strand (the io_context's work, discarded with it after the
  // runtime is gone).
  boost::asio::post(watch->strand, [this, watch, record = std::move(record)] {
    bool ended = false;
    {
      std::lock_guard lock(watch->mutex);
      if (!watch->callback) return;  // unwatched
      if (record &&
          (record->state != watch->last_state || record->attempts != watch->last_attempts)) {
        watch->last_state = record->state;
        watch->last_attempts = record->attempts;
        ended = is_terminal(record->state);
        auto callback = watch->callback;  // a copy: it may unwatch
        callback(*record);
      }
    }
    if (ended) {
      end_remote(watch->id);
      return;
    }
    // Weak: the pending wait lives in the clock (or the io_context) and the
    // watch owns the timer; a strong capture would keep a watch that is
    // never ended (the runtime destroyed while it polls) alive for good.
    watch->timer->wait(options_.remote_watch_interval,
                       [this, weak = std::weak_ptr<RemoteWatch>(watch)](bool fired) {
                         auto alive = weak.lock();
                         if (fired && alive) poll_remote(alive);
                       });
  });
}

void RuntimeImpl::hasten_remote_watches(JobId id) {
  {
    std::lock_guard lock(watches_mutex_);
    if (!remote_per_job_.contains(id.value)) return;
  }
  JobPtr job = store_->find(id);
  if (!job) return;
  // Told the outcome as its waiters are: once settled (committed here, or
  // read from the store should the store refuse it).
  auto tell = [this, id](const JobRecord& outcome) {
    for (const auto& watch : remote_watches_of(id)) tell_remote(watch, outcome);
  };
  if (attach_on_terminal(*job, tell, std::numeric_limits<std::size_t>::max()) != Attached::kYes) {
    // Ended already: each reads now (find() waits for the outcome to
    // settle); its pending tick is replaced (one wait per timer).
    for (const auto& watch : remote_watches_of(id)) poll_remote(watch);
  }
}

std::vector<std::shared_ptr<RuntimeImpl::RemoteWatch>> RuntimeImpl::remote_watches_of(JobId id) {
  std::vector<std::shared_ptr<RemoteWatch>> watches;
  std::lock_guard lock(watches_mutex_);
  for (const auto& [wid, watch] : remote_watches_) {
    if (watch->job == id) watches.push_back(watch);
  }
  return watches;
}

bool RuntimeImpl::end_remote(WatchId id) {
  std::shared_ptr<RemoteWatch> watch;
  {
    std::lock_guard lock(watches_mutex_);
    auto it = remote_watches_.find(id);
    if (it == remote_watches_.end()) return false;
    watch = std::move(it->second);
    remote_watches_.erase(it);
    auto count = remote_per_job_.find(watch->job.value);
    if (count != remote_per_job_.end() && --count->second == 0) remote_per_job_.erase(count);
  }
  {
    std::lock_guard lock(watch->mutex);
    watch->callback = nullptr;
  }
  boost::asio::post(watch->strand, [watch] { watch->timer->cancel(); });
  return true;
}

std::vector<TroupeStatus> RuntimeImpl::troupes() const {
  std::vector<std::shared_ptr<Troupe>> all;
  {
    std::shared_lock lock(troupes_mutex_);
    for (const auto& [name, t] : troupes_) all.push_back(t);
  }
  std::vector<TroupeStatus> out;
  out.reserve(all.size());
  for (const auto& t : all) out.push_back(t->status());
  return out;
}

std::optional<TroupeStatus> RuntimeImpl::troupe(std::string_view name) const {
  auto t = find_troupe(name);
  if (!t) return std::nullopt;
  return t->status();
}

std::optional<std::vector<JobRecord>> RuntimeImpl::dead_jobs(std::string_view name,
                                                             std::size_t limit) const {
  auto t = find_troupe(name);
  if (!t) return std::nullopt;
  return t->dead_jobs(limit);
}

void RuntimeImpl::remove_drained(Troupe* troupe) {
  std::shared_ptr<Troupe> gone;
  {
    std::unique_lock lock(troupes_mutex_);
    auto it = std::find_if(retiring_.begin(), retiring_.end(),
                           [troupe](const auto& t) { return t.get() == troupe; });
    if (it == retiring_.end()) return;
    gone = *it;
    retiring_.erase(it);
  }
  // Freed once its actors are (an actor may still be finishing its strand
  // turn inside the troupe now): see Troupe::shutdown().
  gone->shutdown();
  // This generation only: the name may already host a new one.
  gone->observer().removed();
}

void RuntimeImpl::drain_ended(bool running) {
  (running ? drain_cancelled_ : drain_aborted_).fetch_add(1, std::memory_order_relaxed);
}

void RuntimeImpl::drain_left(bool running) {
  (running ? drain_requeued_ : drain_left_waiting_).fetch_add(1, std::memory_order_relaxed);
}

void RuntimeImpl::job_lost() {
  if (draining_.load(std::memory_order_acquire))
    drain_lost_.fetch_add(1, std::memory_order_relaxed);
}

void RuntimeImpl::drain(Duration timeout, std::function<void(DrainReport)> done) {
  std::vector<std::shared_ptr<Troupe>> all;
  {
    // Exclusive: no submit is inside a troupe while the gates close, and a
    // troupe added by a reload from now on starts closed.
    std::unique_lock table(troupes_mutex_);
    std::lock_guard lock(drain_mutex_);
    if (drain_reported_) {
      if (done) boost::asio::post(io_, [done = std::move(done), r = final_report_] { done(r); });
      return;
    }
    if (draining_.load(std::memory_order_acquire)) {
      // A second drain waits for the first.
      auto first = std::move(drain_done_);
      drain_done_ = [first = std::move(first), done = std::move(done)](DrainReport r) {
        if (first) first(r);
        if (done) done(r);
      };
      return;
    }
    for (const auto& [name, t] : troupes_) all.push_back(t);
    for (const auto& t : retiring_) all.push_back(t);
    drain_done_ = std::move(done);
    draining_.store(true, std::memory_order_release);
    // One count per troupe, plus one released below once every gate has
    // been closed, so the report cannot fire half-way through.
    gates_open_ = all.size() + 1;
    for (auto& t : all) t->close({});
    for (auto& t : all) in_flight_at_drain_ += t->in_flight();
  }
  for (auto& t : all) t->close([this] { gate_drained(); });
  boost::asio::post(control_, [this, timeout] {
    drain_timer_ = clock_.make_timer(control_);
    drain_timer_->wait(timeout, [this](bool fired) {
      if (!fired) return;
      std::vector<std::shared_ptr<Troupe>> every;
      {
        std::shared_lock lock(troupes_mutex_);
        for (const auto& [name, t] : troupes_) every.push_back(t);
        for (const auto& t : retiring_) every.push_back(t);
      }
      {
        std::lock_guard lock(drain_mutex_);
        report_.deadline_reached = true;
      }
      for (auto& t : every) t->abort_all();
    });
  });
  gate_drained();
}

void RuntimeImpl::gate_drained() {
  std::function<void(DrainReport)> done;
  DrainReport report;
  {
    std::lock_guard lock(drain_mutex_);
    if (--gates_open_ != 0) return;
    report = report_;
    const std::uint64_t cancelled = drain_cancelled_.load(std::memory_order_relaxed);
    const std::uint64_t requeued = drain_requeued_.load(std::memory_order_relaxed);
    report.cancelled = cancelled + requeued;
    report.aborted = drain_aborted_.load(std::memory_order_relaxed);
    report.left = requeued + drain_left_waiting_.load(std::memory_order_relaxed) +
                  drain_lost_.load(std::memory_order_relaxed);
    const std::uint64_t ended_by_drain = cancelled + report.aborted + report.left;
    report.finished =
        in_flight_at_drain_ > ended_by_drain ? in_flight_at_drain_ - ended_by_drain : 0;
    done = std::move(drain_done_);
    drain_reported_ = true;
    final_report_ = report;
  }
  boost::asio::post(control_, [this] {
    if (drain_timer_) drain_timer_->cancel();
  });
  if (done) boost::asio::post(io_, [done = std::move(done), report] { done(report); });
}

std::unique_ptr<Runtime> make_runtime(boost::asio::io_context& io, Clock& clock, Observer& observer,
                                      RuntimeOptions options) {
  return std::make_unique<RuntimeImpl>(io, clock, observer, options);
}

std::unique_ptr<Runtime> make_runtime(boost::asio::io_context& io, Clock& clock, Observer& observer,
                                      RuntimeOptions options, Journal& journal) {
  return std::make_unique<RuntimeImpl>(io, clock, observer, options, &journal);
}

}  // namespace troupe::core
