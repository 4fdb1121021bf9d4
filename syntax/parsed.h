#pragma once

#include <optional>
#include <string>

namespace troupe::syntax {

/// A parsed value, or the reason it could not be parsed: what is wrong and
/// how to write it instead, ready to show to whoever typed it.
template <class T>
struct Parsed {
  std::optional<T> value;
  std::string error;  // set iff !value

  static Parsed ok(T v) { return Parsed{std::move(v), {}}; }
  static Parsed fail(std::string why) { return Parsed{std::nullopt, std::move(why)}; }
};

}  // namespace troupe::syntax
