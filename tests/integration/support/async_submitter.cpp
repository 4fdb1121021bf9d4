#include "support/async_submitter.h"

namespace troupe::test {

struct AsyncSubmitter::Call {
  grpc::ClientContext context;
  v1::SubmitResponse response;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::SubmitResponse>> reader;
  bool done = false;
};

AsyncSubmitter::AsyncSubmitter(const std::shared_ptr<grpc::Channel>& channel)
    : stub_(v1::JobService::NewStub(channel)) {}

AsyncSubmitter::~AsyncSubmitter() {
  for (auto& call : calls_) {
    if (!call->done) call->context.TryCancel();
  }
  cq_.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq_.Next(&tag, &ok)) {
  }
}

void AsyncSubmitter::submit(const v1::SubmitRequest& request, std::chrono::milliseconds deadline) {
  auto call = std::make_unique<Call>();
  call->context.set_deadline(std::chrono::system_clock::now() + deadline);
  call->reader = stub_->AsyncSubmit(&call->context, request, &cq_);
  call->reader->Finish(&call->response, &call->status, call.get());
  calls_.push_back(std::move(call));
}

std::vector<SubmitOutcome> AsyncSubmitter::collect(std::chrono::milliseconds bound) {
  const auto until = std::chrono::system_clock::now() + bound;
  while (finished_ < calls_.size()) {
    void* tag = nullptr;
    bool ok = false;
    if (cq_.AsyncNext(&tag, &ok, until) != grpc::CompletionQueue::NextStatus::GOT_EVENT) break;
    static_cast<Call*>(tag)->done = true;
    ++finished_;
  }
  std::vector<SubmitOutcome> out;
  out.reserve(calls_.size());
  for (auto& call : calls_) {
    if (call->done) {
      out.push_back({call->status, call->response});
    } else {
      out.push_back({{grpc::StatusCode::DEADLINE_EXCEEDED, "not finished by collect()"}, {}});
    }
  }
  return out;
}

}  // namespace troupe::test
