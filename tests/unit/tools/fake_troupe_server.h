#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "troupe/v1/troupe.grpc.pb.h"

namespace troupe::tools::testing {

/// An in-process stand-in for trouped's JobService and AdminService, so the
/// clients' wire behaviour is testable without the daemon. Knows one troupe,
/// "echo". Payload "reject" is refused with RESOURCE_EXHAUSTED, "fail" makes
/// the job FAILED. Listens on 127.0.0.1:<free port>; stops in its destructor.
/// Thread-safe: gRPC's sync server threads call it concurrently.
class FakeTroupeServer final : public v1::JobService::Service, public v1::AdminService::Service {
 public:
  FakeTroupeServer() {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(static_cast<v1::JobService::Service*>(this));
    builder.RegisterService(static_cast<v1::AdminService::Service*>(this));
    server_ = builder.BuildAndStart();
    server_->GetHealthCheckService()->SetServingStatus("echo", true);
  }
  ~FakeTroupeServer() override { server_->Shutdown(std::chrono::system_clock::now()); }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  void set_serving(bool serving) { server_->GetHealthCheckService()->SetServingStatus(serving); }
  std::uint64_t submits() const { return submits_.load(); }
  std::uint64_t stream_requests() const { return stream_requests_.load(); }

  grpc::Status Submit(grpc::ServerContext*, const v1::SubmitRequest* req,
                      v1::SubmitResponse* resp) override {
    ++submits_;
    v1::Job job;
    if (auto status = accept(*req, job); !status.ok()) return status;
    resp->set_job_id(job.id());
    if (req->wait()) *resp->mutable_job() = job;
    return grpc::Status::OK;
  }

  grpc::Status SubmitStream(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<v1::StreamSubmitAck, v1::StreamSubmitRequest>* stream) override {
    v1::StreamSubmitRequest req;
    while (stream->Read(&req)) {
      ++stream_requests_;
      v1::Job job;
      const auto status = accept(req.request(), job);
      v1::StreamSubmitAck ack;
      ack.set_correlation_id(req.correlation_id());
      ack.set_code(status.error_code());
      ack.set_message(status.error_message());
      ack.set_job_id(job.id());
      if (!stream->Write(ack)) break;
    }
    return grpc::Status::OK;
  }

  grpc::Status GetJob(grpc::ServerContext*, const v1::GetJobRequest* req, v1::Job* job) override {
    return find(req->job_id(), *job);
  }

  grpc::Status WatchJob(grpc::ServerContext*, const v1::WatchJobRequest* req,
                        grpc::ServerWriter<v1::Job>* writer) override {
    v1::Job job;
    if (auto status = find(req->job_id(), job); !status.ok()) return status;
    v1::Job queued = job;
    queued.set_state(v1::JOB_STATE_QUEUED);
    writer->Write(queued);
    writer->Write(job);
    return grpc::Status::OK;
  }

  grpc::Status CancelJob(grpc::ServerContext*, const v1::CancelJobRequest* req,
                         v1::CancelJobResponse* resp) override {
    auto status = find(req->job_id(), *resp->mutable_job());
    resp->set_cancelled(false);  // every fake job is already terminal
    return status;
  }

  grpc::Status ListTroupes(grpc::ServerContext*, const v1::ListTroupesRequest*,
                           v1::ListTroupesResponse* resp) override {
    fill_troupe(*resp->add_troupes());
    return grpc::Status::OK;
  }

  grpc::Status GetTroupe(grpc::ServerContext*, const v1::GetTroupeRequest* req,
                         v1::Troupe* troupe) override {
    if (req->name() != "echo") return unknown_troupe(req->name());
    fill_troupe(*troupe);
    return grpc::Status::OK;
  }

  grpc::Status ListDeadJobs(grpc::ServerContext*, const v1::ListDeadJobsRequest* req,
                            v1::ListDeadJobsResponse*) override {
    if (req->troupe() != "echo") return unknown_troupe(req->troupe());
    return grpc::Status::OK;
  }

  /// A cluster of two replicas: a singleton troupe led by r1, one whose
  /// lease expired with its holder gone, a troupe capped at 5 with permits
  /// on both replicas, and a plain one.
  grpc::Status GetCluster(grpc::ServerContext*, const v1::GetClusterRequest*,
                          v1::GetClusterResponse* resp) override {
    resp->mutable_now()->set_seconds(1000);
    for (std::int64_t i : {1, 2}) {
      auto& r = *resp->add_replicas();
      r.set_name("r" + std::to_string(i));
      r.set_incarnation(10 + i);
      r.set_alive(true);
      r.mutable_heartbeat_age()->set_nanos(200'000'000);
    }
    auto& capped = *resp->add_troupes();
    capped.set_name("capped");
    capped.set_queue_depth(12);
    capped.set_running(5);
    capped.set_max_concurrency(5);
    for (auto [name, incarnation, n] : {std::tuple{"r1", 11, 3u}, std::tuple{"r2", 12, 2u}}) {
      auto& p = *capped.add_permits();
      p.set_replica(name);
      p.set_incarnation(incarnation);
      p.set_permits(n);
    }
    auto& echo = *resp->add_troupes();
    echo.set_name("echo");
    auto& ledger = *resp->add_troupes();
    ledger.set_name("ledger");
    ledger.set_running(1);
    ledger.set_singleton(true);
    ledger.set_holder("r1");
    auto& lease = *ledger.mutable_lease();
    lease.set_replica("r1");
    lease.set_incarnation(11);
    lease.set_term(4);
    lease.mutable_expires_at()->set_seconds(1002);
    lease.set_held(true);
    auto& stale = *resp->add_troupes();
    stale.set_name("stale");
    stale.set_singleton(true);
    auto& gone = *stale.mutable_lease();
    gone.set_incarnation(9);
    gone.set_term(2);
    gone.mutable_expires_at()->set_seconds(990);
    return grpc::Status::OK;
  }

 private:
  static grpc::Status unknown_troupe(const std::string& name) {
    return {grpc::StatusCode::NOT_FOUND, "no troupe named '" + name + "'"};
  }

  grpc::Status accept(const v1::SubmitRequest& req, v1::Job& job) {
    if (req.troupe() != "echo") return unknown_troupe(req.troupe());
    if (req.payload() == "reject") {
      return {grpc::StatusCode::RESOURCE_EXHAUSTED, "troupe echo is full; retry later"};
    }
    std::lock_guard lock(mu_);
    job.set_id("job-" + std::to_string(jobs_.size() + 1));
    job.set_troupe(req.troupe());
    job.set_attempts(1);
    if (req.payload() == "fail") {
      job.set_state(v1::JOB_STATE_FAILED);
      job.set_error("it failed");
      job.set_failure_class(v1::FAILURE_CLASS_PERMANENT);
    } else {
      job.set_state(v1::JOB_STATE_SUCCEEDED);
      job.set_result(req.payload());
    }
    jobs_[job.id()] = job;
    return grpc::Status::OK;
  }

  grpc::Status find(const std::string& id, v1::Job& job) {
    std::lock_guard lock(mu_);
    const auto it = jobs_.find(id);
    if (it == jobs_.end()) return {grpc::StatusCode::NOT_FOUND, "no job " + id};
    job = it->second;
    return grpc::Status::OK;
  }

  static void fill_troupe(v1::Troupe& t) {
    t.set_name("echo");
    t.set_mode("dynamic");
    t.set_handler("builtin:echo");
    t.set_actors(2);
    t.set_circuit_state(v1::CIRCUIT_STATE_CLOSED);
  }

  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::atomic<std::uint64_t> submits_{0};
  std::atomic<std::uint64_t> stream_requests_{0};
  std::mutex mu_;  // guards jobs_
  std::map<std::string, v1::Job> jobs_;
};

}  // namespace troupe::tools::testing
