#pragma once

#include <grpcpp/server_builder.h>

#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "troupe/bench/v1/echo.grpc.pb.h"

namespace troupe::bench {

/// EchoService on gRPC's classic async API: one ServerCompletionQueue per
/// thread, one thread polling each, CallData-style state machines for Echo
/// and EchoStream, several calls requested ahead on every queue (the shape
/// of gRPC's own async qps server). A call lives on the queue it was
/// requested on and is only ever touched by that queue's thread.
/// Lifecycle: construct before BuildAndStart, start() after it, shutdown()
/// after Server::Shutdown has returned; methods are called from one thread.
class EchoCqServer {
 public:
  /// Registers the async service and adds `threads` completion queues.
  EchoCqServer(grpc::ServerBuilder& builder, std::uint32_t threads);
  ~EchoCqServer();
  EchoCqServer(const EchoCqServer&) = delete;
  EchoCqServer& operator=(const EchoCqServer&) = delete;

  /// Requests the first calls on every queue and starts the polling threads.
  void start();
  /// Shuts every queue down and waits until each is drained and every call
  /// object freed. Call after Server::Shutdown.
  void shutdown();

  struct Queue;

 private:
  v1::EchoService::AsyncService service_;
  std::vector<std::unique_ptr<Queue>> queues_;
  std::vector<std::thread> threads_;
};

}  // namespace troupe::bench
