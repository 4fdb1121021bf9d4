#pragma once

// What the journals' tests share: the bound of every wait, the wall clock,
// and waiting for a barrier.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>

#include "core/journal.h"

namespace troupe::store::test {

using namespace std::chrono_literals;

inline constexpr auto kBound = 30s;  // generous: a loaded CI machine

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// What a barrier reported: nullopt when durable, else the failure message.
inline std::optional<std::string> wait_durable(core::Journal& journal) {
  auto promise = std::make_shared<std::promise<std::optional<std::string>>>();
  auto future = promise->get_future();
  journal.after_durable([promise](const core::JournalFailure* failure) {
    promise->set_value(failure ? std::optional<std::string>(failure->message) : std::nullopt);
  });
  if (future.wait_for(kBound) != std::future_status::ready) {
    ADD_FAILURE() << "barrier not called within " << kBound.count() << " s";
    return "timeout";
  }
  return future.get();
}

}  // namespace troupe::store::test
