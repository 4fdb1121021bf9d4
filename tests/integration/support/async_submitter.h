#pragma once

/// Many Submit calls in flight at once over one channel (the async stub and
/// a completion queue), for drain, reload and load tests.

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <vector>

#include "troupe/v1/troupe.grpc.pb.h"

namespace troupe::test {

struct SubmitOutcome {
  grpc::Status status;
  v1::SubmitResponse response;
};

/// Starts Submit calls without waiting; collect() waits for all of them.
/// Not thread-safe: one test thread drives it.
class AsyncSubmitter {
 public:
  explicit AsyncSubmitter(const std::shared_ptr<grpc::Channel>& channel);
  ~AsyncSubmitter();

  /// Starts one call with the given client deadline.
  void submit(const v1::SubmitRequest& request, std::chrono::milliseconds deadline);
  std::size_t started() const { return calls_.size(); }
  /// Waits for every started call (at most `bound`); returns the outcomes in
  /// start order. Calls still open at the bound report DEADLINE_EXCEEDED
  /// with message "not finished by collect()".
  std::vector<SubmitOutcome> collect(std::chrono::milliseconds bound);

 private:
  struct Call;
  std::unique_ptr<v1::JobService::Stub> stub_;
  grpc::CompletionQueue cq_;
  std::vector<std::unique_ptr<Call>> calls_;
  std::size_t finished_ = 0;
};

}  // namespace troupe::test
