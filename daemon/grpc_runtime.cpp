#include "daemon/grpc_runtime.h"

#include <absl/synchronization/mutex.h>

namespace troupe::daemon {

void configure_grpc_process() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace troupe::daemon
