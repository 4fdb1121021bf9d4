#pragma once

/// The handler kinds trouped knows, by their `kind:` name. Each kind registers
/// itself from its own folder (handlers/<kind>/<kind>_config.cpp): the keys
/// its handler map may hold and its reader from YAML to its options. The
/// factory and the equality come with the options (core::HandlerOptions, see
/// core/handler.h). The config reader consults this registry by name, so
/// adding a kind touches handlers/<kind>/ and nothing else.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "config/yaml_reader.h"
#include "core/options.h"

namespace troupe::handlers {

/// One handler kind as the config reader sees it.
struct HandlerKind {
  std::string_view name;  // `kind:` in the config
  /// Every key the kind's handler map may hold besides `kind`.
  std::vector<std::string_view> keys;
  /// Reads the kind's options from its handler map. `m` already knows the
  /// allowed keys (and reported unknown ones); the reader reports every
  /// problem through m.diag(). The options it returns are discarded when
  /// anything was reported.
  std::function<core::HandlerOptions(config::detail::MapReader& m)> read;
};

/// The kinds by name. Registration happens during static initialisation
/// (a `const bool` in each kind's folder calling add()), before main; after
/// that the registry is only read, so concurrent reads are safe. Not
/// copyable; one per process, owned by handler_registry().
class HandlerRegistry {
 public:
  HandlerRegistry() = default;
  HandlerRegistry(const HandlerRegistry&) = delete;
  HandlerRegistry& operator=(const HandlerRegistry&) = delete;

  /// Adds a kind. Throws std::logic_error when the name is empty or taken
  /// (two folders claiming one `kind:`). Returns true, for the `const bool`.
  bool add(HandlerKind kind);
  /// The kind named `name`, or nullptr.
  const HandlerKind* find(std::string_view name) const;
  /// Every registered name, sorted.
  std::vector<std::string_view> names() const;

 private:
  std::vector<HandlerKind> kinds_;  // sorted by name
};

/// The process's registry.
HandlerRegistry& handler_registry();

/// Reads a handler map (`{kind: ..., ...}`) at `f` through the registry:
/// reports a missing or unknown kind (naming every registered one), keys of
/// no kind, and keys that belong to another kind (naming it). nullopt when
/// the kind could not be determined.
std::optional<core::HandlerOptions> read_handler(const HandlerRegistry& registry,
                                                 config::detail::Diagnostics& diag,
                                                 const config::detail::Field& f);

}  // namespace troupe::handlers
