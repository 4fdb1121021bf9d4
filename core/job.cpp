#include "core/job.h"

#include <charconv>
#include <cstdio>

#include "core/observer.h"

namespace troupe::core {

std::string JobId::to_string() const {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(value));
  return std::string(buf, 16);
}

std::optional<JobId> JobId::parse(std::string_view text) {
  if (text.size() != 16) return std::nullopt;
  for (char c : text) {
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    if (!hex) return std::nullopt;
  }
  std::uint64_t v = 0;
  std::from_chars(text.data(), text.data() + text.size(), v, 16);
  return JobId{v};
}

std::string_view to_string(JobState s) {
  switch (s) {
    case JobState::kQueued:
      return "QUEUED";
    case JobState::kRunning:
      return "RUNNING";
    case JobState::kRetryWait:
      return "RETRY_WAIT";
    case JobState::kSucceeded:
      return "SUCCEEDED";
    case JobState::kFailed:
      return "FAILED";
    case JobState::kDead:
      return "DEAD";
    case JobState::kCancelled:
      return "CANCELLED";
    case JobState::kAborted:
      return "ABORTED";
  }
  return "UNKNOWN";
}

std::string_view to_string(FailureClass c) {
  switch (c) {
    case FailureClass::kNone:
      return "none";
    case FailureClass::kRetryable:
      return "retryable";
    case FailureClass::kPermanent:
      return "permanent";
    case FailureClass::kTimeout:
      return "timeout";
    case FailureClass::kCrash:
      return "crash";
    case FailureClass::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

std::string_view to_string(RejectReason r) {
  switch (r) {
    case RejectReason::kUnknownTroupe:
      return "unknown_troupe";
    case RejectReason::kFull:
      return "full";
    case RejectReason::kDraining:
      return "draining";
    case RejectReason::kCircuitOpen:
      return "circuit_open";
    case RejectReason::kStoreFull:
      return "store_full";
    case RejectReason::kDegraded:
      return "degraded";
    case RejectReason::kRateLimited:
      return "rate_limited";
    case RejectReason::kTimeoutOverMax:
      return "timeout_over_max";
    case RejectReason::kTooManyListeners:
      return "too_many_listeners";
    case RejectReason::kStoreUnavailable:
      return "store_unavailable";
  }
  return "unknown";
}

std::string_view to_string(CircuitState s) {
  switch (s) {
    case CircuitState::kClosed:
      return "closed";
    case CircuitState::kOpen:
      return "open";
    case CircuitState::kHalfOpen:
      return "half_open";
  }
  return "unknown";
}

std::string_view to_string(ScaleDirection d) {
  return d == ScaleDirection::kUp ? "up" : "down";
}

}  // namespace troupe::core
