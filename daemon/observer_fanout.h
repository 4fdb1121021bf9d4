#pragma once

/// Lets core report to two observers (metrics and health) through its one
/// Observer reference.

#include <memory>
#include <string_view>

#include "core/observer.h"

namespace troupe::daemon {

/// Forwards every event to `first` then `second`. Thread-safe when both are;
/// both must outlive it.
class ObserverFanout final : public core::Observer {
 public:
  ObserverFanout(core::Observer& first, core::Observer& second);

  std::shared_ptr<core::TroupeObserver> troupe_added(std::string_view troupe) override;
  void unknown_troupe_rejected() override;

 private:
  core::Observer& first_;
  core::Observer& second_;
};

}  // namespace troupe::daemon
