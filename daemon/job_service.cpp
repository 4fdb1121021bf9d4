#include "daemon/job_service.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "daemon/ordered_reply_stream.h"
#include "daemon/raw_messages.h"
#include "daemon/status_mapping.h"
#include "daemon/translation.h"
#include "daemon/write_queue.h"

namespace troupe::daemon {
namespace {

/// Submit with wait=true: answered from the runtime's on_terminal callback
/// (a core thread) or, when the client's deadline passes or it cancels, from
/// OnCancel (a gRPC thread); whichever claims the reactor first finishes it.
/// Two owners release it: gRPC (OnDone) and the runtime's callback, once
/// it has run, or when the runtime drops it without calling it (a rejected
/// submit; or an accepted job that will not end in this process: a durable
/// drain left it for the next start or handed it to another replica; a job
/// another replica took over is followed through the store and answered
/// as it ends there). An accepted job whose callback is dropped is
/// answered ABORTED naming the job, so that the client polls it rather than
/// submitting it again.
class WaitingSubmit final : public grpc::ServerUnaryReactor {
 public:
  WaitingSubmit(grpc::CallbackServerContext& context, grpc::ByteBuffer& response)
      : context_(context), response_(response) {}

  void start(core::Runtime& runtime, core::JobRequest job) {
    runtime_ = &runtime;
    const std::string troupe = job.troupe;
    // The runtime's reference: released by on_terminal, or by the last copy
    // of the callback when it is dropped uncalled.
    struct Owner {
      explicit Owner(WaitingSubmit* s) : self(s) {}
      Owner(const Owner&) = delete;
      Owner& operator=(const Owner&) = delete;
      WaitingSubmit* self;
      bool called = false;
      ~Owner() {
        if (called) return;
        self->on_dropped();
        self->release();
      }
    };
    auto owner = std::make_shared<Owner>(this);
    // A third reference while the submit's answer is pending: it may come
    // on the store's thread (a key settled by a shared store), after the
    // runtime dropped the callback.
    refs_.fetch_add(1, std::memory_order_relaxed);
    runtime.submit_anywhere(
        std::move(job),
        [owner](const core::JobRecord& r) {
          owner->called = true;
          owner->self->on_terminal(r);
        },
        [this, troupe](std::variant<core::Accepted, core::Rejection> outcome) {
          submitted(outcome, troupe);
          release();
        });
  }

  void OnCancel() override {
    if (claimed_.exchange(true, std::memory_order_acq_rel)) return;
    const bool submitted = stage_.load(std::memory_order_acquire) & kSubmitted;
    const std::string which = submitted ? "job " + job_id_ : "the job";
    if (context_.deadline() <= std::chrono::system_clock::now()) {
      Finish({grpc::StatusCode::DEADLINE_EXCEEDED,
              "the call's deadline passed before " + which +
                  " finished; it keeps running: poll GetJob or WatchJob with its id, or "
                  "submit with a longer deadline"});
    } else {
      Finish({grpc::StatusCode::CANCELLED,
              "the client cancelled the call; " + which + " keeps running"});
    }
  }

  void OnDone() override { release(); }

 private:
  static constexpr unsigned kSubmitted = 1;
  static constexpr unsigned kTerminal = 2;
  static constexpr unsigned kDropped = 4;

  /// The submit's answer. A rejection dropped the callback: it is answered
  /// now; an accepted job is answered by the second of this and its
  /// terminal record (or the drop of its callback).
  void submitted(const std::variant<core::Accepted, core::Rejection>& outcome,
                 const std::string& troupe) {
    if (const auto* rejection = std::get_if<core::Rejection>(&outcome)) {
      if (!claimed_.exchange(true, std::memory_order_acq_rel)) {
        finish(context_, *this, to_rpc_error(*rejection, troupe));
      }
      return;
    }
    const auto& accepted = std::get<core::Accepted>(outcome);
    job_id_ = accepted.id.to_string();
    duplicate_ = accepted.duplicate;
    // The callback may already have run (a duplicate of a finished job), or
    // been dropped (the job left this process), so whoever of the two comes
    // second completes the call.
    const unsigned before = stage_.fetch_or(kSubmitted, std::memory_order_acq_rel);
    if (before & kTerminal) {
      complete();
    } else if (before & kDropped) {
      abandon();
    }
  }

  /// The runtime dropped the callback uncalled: after a rejection (start()
  /// answers it) or once the accepted job left this process.
  void on_dropped() {
    if (stage_.fetch_or(kDropped, std::memory_order_acq_rel) & kSubmitted) abandon();
  }

  void abandon() {
    if (claimed_.exchange(true, std::memory_order_acq_rel)) return;
    Finish({grpc::StatusCode::ABORTED,
            "job " + job_id_ +
                " was accepted but will not finish on this replica: it was handed over (to "
                "another replica, or to this one's next start) and still runs; poll GetJob or "
                "WatchJob with its id rather than submitting it again"});
  }

  /// Called once the end is durable (Runtime::submit), or the journal
  /// failed: then the end may not be, and the call says so.
  void on_terminal(const core::JobRecord& record) {
    to_proto(record, terminal_);
    if (auto failure = runtime_->journal_failure()) store_failure_ = std::move(failure->message);
    if (stage_.fetch_or(kTerminal, std::memory_order_acq_rel) & kSubmitted) complete();
    release();
  }

  void complete() {
    if (claimed_.exchange(true, std::memory_order_acq_rel)) return;
    if (store_failure_) {
      finish(context_, *this, store_unavailable(*store_failure_));
      return;
    }
    v1::SubmitResponse response;
    response.set_job_id(std::move(job_id_));
    response.set_duplicate(duplicate_);
    response.mutable_job()->Swap(&terminal_);
    serialize_reply(response, response_);
    Finish(grpc::Status::OK);
  }

  void release() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  grpc::CallbackServerContext& context_;
  grpc::ByteBuffer& response_;
  core::Runtime* runtime_ = nullptr;
  std::optional<std::string> store_failure_;  // written before kTerminal is set
  std::string job_id_;
  bool duplicate_ = false;
  v1::Job terminal_;
  std::atomic<unsigned> stage_{0};
  std::atomic<bool> claimed_{false};
  std::atomic<int> refs_{2};
};

/// SubmitStream: one ack per request, in order (OrderedReplyStream: one
/// Write outstanding, acks queued and bounded, reading paused while full).
/// A request that does not parse ends the stream with INVALID_ARGUMENT once
/// the acks before it are written.
class SubmitStreamReactor final : public OrderedReplyStream<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  SubmitStreamReactor(core::Runtime& runtime, const config::LimitsOptions& limits,
                      const Authorizer& authorizer, grpc::CallbackServerContext& context,
                      Authorizer::Caller caller)
      : runtime_(runtime),
        limits_(limits),
        authorizer_(authorizer),
        context_(context),
        caller_(std::move(caller)) {
    start();
  }

 private:
  std::variant<grpc::ByteBuffer, grpc::Status, Deferred> reply_to(
      grpc::ByteBuffer& bytes) override {
    v1::StreamSubmitRequest in;
    if (auto error = parse_request(bytes, in)) return error->status();
    v1::StreamSubmitAck ack;
    ack.set_correlation_id(in.correlation_id());
    auto job = admit(in, ack);
    if (!job) return serialized(ack);
    if (job->idempotency_key.empty()) {
      if (!fill_outcome(runtime_.submit(std::move(*job)), in.request().troupe(), ack)) {
        return serialized(ack);
      }
      ack_when_durable(runtime_, defer(), std::move(ack));
      return Deferred{};
    }
    // A key may be settled by the store (a shared one: another replica's
    // job), so its answer may come later; its place in the order is kept.
    runtime_.submit_anywhere(std::move(*job), {},
                             [runtime = &runtime_, later = defer(), ack = std::move(ack),
                              troupe = in.request().troupe()](
                                 std::variant<core::Accepted, core::Rejection> outcome) mutable {
                               if (!fill_outcome(outcome, troupe, ack)) {
                                 later(serialized(ack));
                                 return;
                               }
                               ack_when_durable(*runtime, std::move(later), std::move(ack));
                             });
    return Deferred{};
  }

  static grpc::ByteBuffer serialized(const v1::StreamSubmitAck& ack) {
    grpc::ByteBuffer out;
    serialize_reply(ack, out);
    return out;
  }

  /// An accepted job is acknowledged once its accept is durable; later acks
  /// wait behind it (the stream's replies stay in request order).
  static void ack_when_durable(core::Runtime& runtime, Later later, v1::StreamSubmitAck ack) {
    runtime.after_durable([later = std::move(later),
                           ack = std::move(ack)](const core::JournalFailure* failure) mutable {
      if (failure != nullptr) {
        ack.clear_job_id();
        ack.clear_duplicate();
        fill_ack(store_unavailable(failure->message), ack);
      }
      later(serialized(ack));
    });
  }

  /// The request as a job, once the caller may submit to its troupe and it
  /// translates; otherwise nullopt with the refusal in `ack`.
  std::optional<core::JobRequest> admit(v1::StreamSubmitRequest& in, v1::StreamSubmitAck& ack) {
    // An empty troupe is to_job_request's INVALID_ARGUMENT (docs/api.md).
    if (auto denied = in.request().troupe().empty()
                          ? std::nullopt
                          : authorizer_.authorize(context_, caller_, config::Permission::kSubmit,
                                                  in.request().troupe(), "SubmitStream")) {
      fill_ack(*denied, ack);
      return std::nullopt;
    }
    auto translated = to_job_request(*in.mutable_request(), limits_, SubmitSource::kStream);
    if (auto* error = std::get_if<RpcError>(&translated)) {
      fill_ack(*error, ack);
      return std::nullopt;
    }
    return std::get<core::JobRequest>(std::move(translated));
  }

  /// The submit's outcome into `ack`; true when accepted.
  static bool fill_outcome(const std::variant<core::Accepted, core::Rejection>& outcome,
                           const std::string& troupe, v1::StreamSubmitAck& ack) {
    if (const auto* rejection = std::get_if<core::Rejection>(&outcome)) {
      fill_ack(to_rpc_error(*rejection, troupe), ack);
      return false;
    }
    const auto& job = std::get<core::Accepted>(outcome);
    ack.set_job_id(job.id.to_string());
    ack.set_duplicate(job.duplicate);
    return true;
  }

  core::Runtime& runtime_;
  const config::LimitsOptions& limits_;
  const Authorizer& authorizer_;
  grpc::CallbackServerContext& context_;
  const Authorizer::Caller caller_;  // authenticated when the stream opened
};

/// WatchJob: the job is looked up (here, or in a shared store: it may be
/// held by another replica), the caller's read permission on its troupe
/// checked, then watched; the runtime's watch callbacks (core threads) queue
/// snapshots; one Write at a time sends them; the terminal snapshot ends the
/// stream (WriteQueue keeps the books, correct under either order of
/// OnCancel and OnWriteDone). A lookup answer or a watch callback may still
/// be running when the reactor is done, so they reach it through `Link`,
/// which OnDone severs under its mutex before the reactor is deleted; a
/// watch that starts after that is ended at once.
class WatchReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  struct Link {
    std::mutex mutex;  // guards `reactor`, `watch` and the reactor's queue
    WatchReactor* reactor = nullptr;
    std::optional<core::WatchId> watch;
  };

  WatchReactor(grpc::CallbackServerContext& context, core::Runtime& runtime,
               const Authorizer& authorizer, Authorizer::Caller caller, core::JobId id,
               std::size_t max_watchers)
      : runtime_(runtime), link_(std::make_shared<Link>()) {
    link_->reactor = this;
    runtime_.find(id, [&runtime, &authorizer, &context, caller = std::move(caller), id,
                       max_watchers,
                       link = link_](core::StoreAnswer<std::optional<core::JobRecord>> answer) {
      {
        std::lock_guard lock(link->mutex);
        if (link->reactor == nullptr) return;  // the client went meanwhile
        std::optional<RpcError> refused;
        if (const auto* down = std::get_if<core::StoreUnavailable>(&answer)) {
          refused = job_lookup_unavailable(id.to_string(), down->why);
        } else if (const auto& record = std::get<std::optional<core::JobRecord>>(answer); !record) {
          refused = job_not_found(id.to_string());
        } else {
          refused = authorizer.authorize(context, caller, config::Permission::kRead, record->troupe,
                                         "WatchJob");
        }
        if (refused) {
          add_retry_hint(context, *refused);
          link->reactor->take_locked(link->reactor->queue_.finish(refused->status()));
          return;
        }
      }
      // Outside the lock: the first snapshot may be delivered inline.
      start_watch(runtime, context, link, id, max_watchers);
    });
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(link_->mutex);
    take_locked(queue_.write_done(ok));
  }

  void OnCancel() override {
    std::lock_guard lock(link_->mutex);
    take_locked(queue_.cancel({grpc::StatusCode::CANCELLED, "the client cancelled the watch"}));
  }

  void OnDone() override {
    std::optional<core::WatchId> watch;
    {
      std::lock_guard lock(link_->mutex);
      link_->reactor = nullptr;
      watch = link_->watch;
    }
    // Outside the lock: a callback that is running may be waiting for it.
    if (watch) runtime_.unwatch(*watch);
    delete this;
  }

 private:
  static void start_watch(core::Runtime& runtime, grpc::CallbackServerContext& context,
                          const std::shared_ptr<Link>& link, core::JobId id,
                          std::size_t max_watchers) {
    auto watch = runtime.watch(id, [link](const core::JobRecord& record) {
      std::lock_guard lock(link->mutex);
      if (link->reactor != nullptr) link->reactor->on_change_locked(record);
    });
    std::unique_lock lock(link->mutex);
    if (const auto* refusal = std::get_if<core::WatchRefusal>(&watch)) {
      if (link->reactor == nullptr) return;
      const RpcError error = *refusal == core::WatchRefusal::kUnknownJob
                                 ? job_not_found(id.to_string())
                                 : too_many_watchers(id.to_string(), max_watchers);
      add_retry_hint(context, error);
      link->reactor->take_locked(link->reactor->queue_.finish(error.status()));
      return;
    }
    const core::WatchId wid = std::get<core::WatchId>(watch);
    if (link->reactor == nullptr) {
      lock.unlock();
      runtime.unwatch(wid);  // the client went while it started
      return;
    }
    link->watch = wid;
  }

  void on_change_locked(const core::JobRecord& record) {
    if (queue_.finished()) return;
    v1::Job snapshot;
    to_proto(record, snapshot);
    grpc::ByteBuffer bytes;
    serialize_reply(snapshot, bytes);
    take_locked(queue_.push(std::move(bytes), core::is_terminal(record.state)));
  }

  void take_locked(const WriteQueue<grpc::ByteBuffer>::Step& step) {
    if (step.write != nullptr) StartWrite(step.write);
    if (step.finish) Finish(*step.finish);
  }

  core::Runtime& runtime_;
  std::shared_ptr<Link> link_;
  WriteQueue<grpc::ByteBuffer> queue_;
};

}  // namespace

/// A call refused before it started (bad request, or denied).
template <class Reactor>
class Refusal final : public Reactor {
 public:
  explicit Refusal(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

/// A call naming a job: who calls and which job, once authenticated and
/// parsed; the job's troupe is checked by the caller (it needs the record).
struct JobCall {
  Authorizer::Caller caller;
  core::JobId id;
};

std::variant<JobCall, RpcError> job_call(const Authorizer& authorizer,
                                         grpc::CallbackServerContext& context,
                                         std::string_view job_id, std::string_view method) {
  auto caller = authorizer.authenticate(context, method);
  if (auto* error = std::get_if<RpcError>(&caller)) return std::move(*error);
  auto id = parse_job_id(job_id, "job_id");
  if (auto* error = std::get_if<RpcError>(&id)) return std::move(*error);
  return JobCall{std::get<Authorizer::Caller>(std::move(caller)), std::get<core::JobId>(id)};
}

/// The job `job_id` names, held here or by another replica (a shared store,
/// docs/cluster.md; inline when here), handed to `permitted` once the caller
/// may `permission` on its troupe; otherwise `reply` answers the parse or
/// authentication error, UNAVAILABLE when the store did not answer,
/// NOT_FOUND when it has no such job, or the denial.
template <class Response, class Permitted>
void find_permitted(const core::Runtime& runtime, const Authorizer& authorizer,
                    const std::string& job_id, config::Permission permission,
                    std::string_view method, UnaryReply<Response> reply, Permitted permitted) {
  auto call = job_call(authorizer, reply.context(), job_id, method);
  if (auto* error = std::get_if<RpcError>(&call)) return reply.fail(*error);
  auto& [caller, id] = std::get<JobCall>(call);
  runtime.find(id, [&authorizer, permission, method, reply, job_id, caller = std::move(caller),
                    permitted = std::move(permitted)](
                       core::StoreAnswer<std::optional<core::JobRecord>> answer) {
    if (const auto* down = std::get_if<core::StoreUnavailable>(&answer)) {
      return reply.fail(job_lookup_unavailable(job_id, down->why));
    }
    const auto& record = std::get<std::optional<core::JobRecord>>(answer);
    if (!record) return reply.fail(job_not_found(job_id));
    if (auto denied =
            authorizer.authorize(reply.context(), caller, permission, record->troupe, method)) {
      return reply.fail(*denied);
    }
    permitted(*record);
  });
}

JobServiceImpl::JobServiceImpl(core::Runtime& runtime, const config::LimitsOptions& limits,
                               std::size_t max_watchers, const Authorizer& authorizer)
    : runtime_(runtime), limits_(limits), max_watchers_(max_watchers), authorizer_(authorizer) {}

grpc::ServerUnaryReactor* JobServiceImpl::Submit(grpc::CallbackServerContext* context,
                                                 const grpc::ByteBuffer* in,
                                                 grpc::ByteBuffer* out) {
  v1::SubmitRequest request;
  if (auto error = parse_request(*in, request)) {
    auto* reactor = context->DefaultReactor();
    finish(*context, *reactor, *error);
    return reactor;
  }
  // Who calls, then what the call names, then the permission on it
  // (docs/api.md): an empty troupe is to_job_request's INVALID_ARGUMENT, not
  // a denial on troupe "".
  auto caller = authorizer_.authenticate(*context, "Submit");
  std::optional<RpcError> refused;
  if (auto* error = std::get_if<RpcError>(&caller)) {
    refused = std::move(*error);
  } else if (!request.troupe().empty()) {
    refused = authorizer_.authorize(*context, std::get<Authorizer::Caller>(caller),
                                    config::Permission::kSubmit, request.troupe(), "Submit");
  }
  if (refused) {
    auto* reactor = context->DefaultReactor();
    finish(*context, *reactor, *refused);
    return reactor;
  }
  auto translated = to_job_request(request, limits_, SubmitSource::kUnary);
  if (auto* error = std::get_if<RpcError>(&translated)) {
    auto* reactor = context->DefaultReactor();
    finish(*context, *reactor, *error);
    return reactor;
  }
  auto& job = std::get<core::JobRequest>(translated);
  if (request.wait()) {
    auto* reactor = new WaitingSubmit(*context, *out);
    reactor->start(runtime_, std::move(job));
    return reactor;
  }
  auto* reactor = context->DefaultReactor();
  // Answered inline, or (a key settled by a shared store) on its thread.
  runtime_.submit_anywhere(
      std::move(job), {},
      [runtime = &runtime_, context, reactor, out,
       troupe = request.troupe()](std::variant<core::Accepted, core::Rejection> outcome) {
        if (auto* accepted = std::get_if<core::Accepted>(&outcome)) {
          v1::SubmitResponse response;
          response.set_job_id(accepted->id.to_string());
          response.set_duplicate(accepted->duplicate);
          serialize_reply(response, *out);
          // Acknowledged once the accept is durable (inline with the memory journal).
          runtime->after_durable([context, reactor](const core::JournalFailure* failure) {
            if (failure != nullptr) {
              finish(*context, *reactor, store_unavailable(failure->message));
            } else {
              reactor->Finish(grpc::Status::OK);
            }
          });
        } else {
          finish(*context, *reactor, to_rpc_error(std::get<core::Rejection>(outcome), troupe));
        }
      });
  return reactor;
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* JobServiceImpl::SubmitStream(
    grpc::CallbackServerContext* context) {
  auto caller = authorizer_.authenticate(*context, "SubmitStream");
  if (auto* error = std::get_if<RpcError>(&caller)) {
    return new Refusal<grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>>(
        error->status());
  }
  return new SubmitStreamReactor(runtime_, limits_, authorizer_, *context,
                                 std::get<Authorizer::Caller>(std::move(caller)));
}

grpc::ServerUnaryReactor* JobServiceImpl::GetJob(grpc::CallbackServerContext* context,
                                                 const grpc::ByteBuffer* in,
                                                 grpc::ByteBuffer* out) {
  return answer_later<v1::GetJobRequest, v1::Job>(
      *context, *in, *out, [this](const v1::GetJobRequest& request, UnaryReply<v1::Job> reply) {
        find_permitted(runtime_, authorizer_, request.job_id(), config::Permission::kRead, "GetJob",
                       reply, [reply](const core::JobRecord& record) {
                         v1::Job response;
                         to_proto(record, response);
                         reply.ok(response);
                       });
      });
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* JobServiceImpl::WatchJob(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* in) {
  using Refused = Refusal<grpc::ServerWriteReactor<grpc::ByteBuffer>>;
  v1::WatchJobRequest request;
  if (auto error = parse_request(*in, request)) return new Refused(error->status());
  auto call = job_call(authorizer_, *context, request.job_id(), "WatchJob");
  if (auto* error = std::get_if<RpcError>(&call)) return new Refused(error->status());
  auto& [caller, id] = std::get<JobCall>(call);
  return new WatchReactor(*context, runtime_, authorizer_, std::move(caller), id, max_watchers_);
}

grpc::ServerUnaryReactor* JobServiceImpl::CancelJob(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* in,
                                                    grpc::ByteBuffer* out) {
  using Reply = UnaryReply<v1::CancelJobResponse>;
  return answer_later<v1::CancelJobRequest, v1::CancelJobResponse>(
      *context, *in, *out, [this](const v1::CancelJobRequest& request, Reply reply) {
        // A job's troupe never changes: checking it before cancelling is exact.
        find_permitted(
            runtime_, authorizer_, request.job_id(), config::Permission::kCancel, "CancelJob",
            reply, [this, reply, job_id = request.job_id()](const core::JobRecord& record) {
              runtime_.cancel_anywhere(
                  record.id,
                  [reply, job_id](core::StoreAnswer<std::optional<core::CancelOutcome>> answer) {
                    if (const auto* down = std::get_if<core::StoreUnavailable>(&answer)) {
                      return reply.fail(job_lookup_unavailable(job_id, down->why));
                    }
                    const auto& outcome = std::get<std::optional<core::CancelOutcome>>(answer);
                    if (!outcome) return reply.fail(job_not_found(job_id));
                    v1::CancelJobResponse response;
                    to_proto(outcome->job, *response.mutable_job());
                    response.set_cancelled(outcome->cancelled);
                    reply.ok(response);
                  });
            });
      });
}

}  // namespace troupe::daemon
