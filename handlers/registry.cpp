#include "handlers/registry.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace troupe::handlers {

using config::detail::Diagnostics;
using config::detail::Field;
using config::detail::MapReader;

bool HandlerRegistry::add(HandlerKind kind) {
  if (kind.name.empty() || !kind.read) {
    throw std::logic_error("a handler kind needs a name and a reader");
  }
  const auto at =
      std::lower_bound(kinds_.begin(), kinds_.end(), kind.name,
                       [](const HandlerKind& k, std::string_view n) { return k.name < n; });
  if (at != kinds_.end() && at->name == kind.name) {
    throw std::logic_error("handler kind '" + std::string(kind.name) + "' is registered twice");
  }
  kinds_.insert(at, std::move(kind));
  return true;
}

const HandlerKind* HandlerRegistry::find(std::string_view name) const {
  const auto at = std::find_if(kinds_.begin(), kinds_.end(),
                               [&](const HandlerKind& k) { return k.name == name; });
  return at != kinds_.end() ? &*at : nullptr;
}

std::vector<std::string_view> HandlerRegistry::names() const {
  std::vector<std::string_view> out;
  out.reserve(kinds_.size());
  for (const HandlerKind& k : kinds_) out.push_back(k.name);
  return out;
}

HandlerRegistry& handler_registry() {
  static HandlerRegistry registry;
  return registry;
}

namespace {

/// Explains a key that belongs to another handler kind.
config::detail::UnknownKeyHint other_kind_hint(const HandlerRegistry& registry,
                                               std::string_view kind) {
  return [&registry, kind](std::string_view key) -> std::optional<std::string> {
    for (const std::string_view other : registry.names()) {
      if (other == kind) continue;
      const auto& keys = registry.find(other)->keys;
      if (std::find(keys.begin(), keys.end(), key) != keys.end()) {
        return "'" + std::string(key) + "' belongs to handler kind '" + std::string(other) +
               "', not '" + std::string(kind) + "'";
      }
    }
    return std::nullopt;
  };
}

}  // namespace

std::optional<core::HandlerOptions> read_handler(const HandlerRegistry& registry, Diagnostics& diag,
                                                 const Field& f) {
  const YAML::Node& node = f.node();
  if (!node.IsMap()) {
    diag.error(
        f.where(), f.path(),
        "expected a map like {kind: builtin, name: echo}, got " + config::detail::describe(node));
    return std::nullopt;
  }
  const std::vector<std::string_view> names = registry.names();
  const std::string choices = config::detail::join_words(names);
  std::optional<Field> kind_field;
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (it->first.IsScalar() && it->first.Scalar() == "kind") {
      kind_field.emplace(it->second, f.child("kind"), config::detail::location_of(it->first));
      break;
    }
  }
  if (!kind_field) {
    diag.error(f.where(), f.child("kind"), "missing; set kind: " + choices);
    return std::nullopt;
  }
  const auto name = config::detail::read_string(diag, *kind_field);
  if (!name) return std::nullopt;
  const HandlerKind* kind = registry.find(*name);
  if (kind == nullptr) {
    std::string message =
        "unknown handler kind \"" + *name + "\"; expected one of the registered kinds: " + choices;
    if (auto suggestion = config::closest_match(*name, names)) {
      message += " (did you mean \"" + std::string(*suggestion) + "\"?)";
    }
    diag.error(kind_field->where(), kind_field->path(), std::move(message));
    return std::nullopt;
  }
  std::vector<std::string_view> keys = {"kind"};
  keys.insert(keys.end(), kind->keys.begin(), kind->keys.end());
  MapReader m(diag, f, keys, other_kind_hint(registry, kind->name));
  return kind->read(m);
}

}  // namespace troupe::handlers
