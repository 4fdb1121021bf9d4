#pragma once

/// Drives grpc.health.v1 from core's events: overall ("") and per troupe
/// (service name = troupe name).

#include <grpcpp/health_check_service_interface.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "core/observer.h"

namespace troupe::daemon {

/// A troupe is SERVING unless it is degraded (an actor stopped after too many
/// restarts) or its circuit breaker is open; the daemon ("") is SERVING
/// until set_draining(), after which everything is NOT_SERVING for good.
/// While a shared store is unreachable (store_available(false)) everything
/// is NOT_SERVING too, until it is back. A removed troupe reports
/// NOT_SERVING. Thread-safe: core calls it from any
/// thread; a mutex guards the state (these events are rare, never per job).
class HealthObserver final : public core::Observer {
 public:
  HealthObserver();
  ~HealthObserver() override;

  /// Starts publishing to `service` (pushes the current state at once).
  /// `service` must stay valid until detach() or set_draining().
  void attach(grpc::HealthCheckServiceInterface& service);
  void detach();
  /// Everything NOT_SERVING from now on.
  void set_draining();
  /// The shared store became unreachable (everything NOT_SERVING: submits
  /// are refused) or reachable again (each back to what it would be).
  /// Returns false when that was already the state (nothing published), so
  /// the caller logs each change once.
  bool store_available(bool up);

  /// What would be published for `service` ("" = overall); NOT_SERVING for
  /// unknown troupes. For tests and logs.
  bool serving(std::string_view service) const;

  std::shared_ptr<core::TroupeObserver> troupe_added(std::string_view troupe) override;
  /// The troupe named `troupe` is no longer hosted (a reload removed it; it
  /// may still drain): NOT_SERVING now. A troupe added again under the name
  /// is a new generation and serves.
  void troupe_removed(std::string_view troupe);
  void unknown_troupe_rejected() override {}

  class TroupeHealth;

 private:
  friend class TroupeHealth;
  void changed(const TroupeHealth& troupe);
  /// `troupe`'s generation is gone: forget it, unless the name is already a
  /// newer generation's.
  void generation_removed(const TroupeHealth& troupe);
  void publish_locked(const std::string& service, bool serving);
  bool overall_locked() const;  // "": not draining, the store reachable
  bool serving_locked(const TroupeHealth& troupe) const;

  mutable std::mutex mutex_;  // guards everything below
  grpc::HealthCheckServiceInterface* service_ = nullptr;
  bool draining_ = false;
  bool store_up_ = true;
  std::map<std::string, std::shared_ptr<TroupeHealth>, std::less<>> troupes_;
};

}  // namespace troupe::daemon
