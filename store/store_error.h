#pragma once

#include <stdexcept>

namespace troupe::store {

/// Why a store could not be opened or read back, in words for an operator:
/// what is wrong with which file or server and what to do about it.
class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace troupe::store
