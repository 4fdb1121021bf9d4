#pragma once

/// boost::asio per-operation cancellation (cancellation_signal, cancellation_slot,
/// cancellation_type) as core/handler.h spells it. Boost >= 1.77 provides it;
/// Debian 12 ships Boost 1.74, which does not, so below 1.77 this header
/// supplies the subset core uses, with Boost's names and semantics: a signal
/// owns at most one handler; its slot installs (assign) or removes (clear) it;
/// emit() calls the handler synchronously. Like Boost's, neither is
/// thread-safe: emit, assign and clear happen on one strand, and the signal
/// outlives every use of its slots. A handler must not clear its own slot
/// while it runs.

#include <boost/version.hpp>

#if BOOST_VERSION >= 107700

#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>

#else

#include <functional>
#include <type_traits>
#include <utility>

namespace boost::asio {

enum class cancellation_type : unsigned int {
  none = 0,
  terminal = 1,
  partial = 2,
  total = 4,
  all = 0xFFFFFFFF,
};
using cancellation_type_t = cancellation_type;

constexpr bool operator!(cancellation_type_t x) {
  return static_cast<unsigned int>(x) == 0;
}
constexpr cancellation_type_t operator&(cancellation_type_t x, cancellation_type_t y) {
  return static_cast<cancellation_type_t>(static_cast<unsigned int>(x) &
                                          static_cast<unsigned int>(y));
}
constexpr cancellation_type_t operator|(cancellation_type_t x, cancellation_type_t y) {
  return static_cast<cancellation_type_t>(static_cast<unsigned int>(x) |
                                          static_cast<unsigned int>(y));
}

/// Where a cancellable operation installs its handler. A default-constructed
/// slot is not connected to any signal. Cheap to copy; not thread-safe.
class cancellation_slot {
 public:
  cancellation_slot() noexcept = default;

  template <typename CancellationHandler>
  void assign(CancellationHandler&& handler) {
    *handler_ = std::forward<CancellationHandler>(handler);
  }
  void clear() {
    if (handler_ != nullptr) *handler_ = nullptr;
  }
  bool is_connected() const noexcept { return handler_ != nullptr; }
  bool has_handler() const noexcept { return handler_ != nullptr && *handler_ != nullptr; }

  friend bool operator==(const cancellation_slot& a, const cancellation_slot& b) noexcept {
    return a.handler_ == b.handler_;
  }

 private:
  friend class cancellation_signal;
  explicit cancellation_slot(std::function<void(cancellation_type_t)>* handler) noexcept
      : handler_(handler) {}

  std::function<void(cancellation_type_t)>* handler_ = nullptr;
};

/// Emits cancellation to the handler installed through slot(). Not copyable
/// or movable (its slots point into it). Not thread-safe.
class cancellation_signal {
 public:
  cancellation_signal() = default;
  cancellation_signal(const cancellation_signal&) = delete;
  cancellation_signal& operator=(const cancellation_signal&) = delete;

  void emit(cancellation_type_t type) {
    if (handler_) handler_(type);
  }
  cancellation_slot slot() noexcept { return cancellation_slot(&handler_); }

 private:
  std::function<void(cancellation_type_t)> handler_;
};

}  // namespace boost::asio

#endif
