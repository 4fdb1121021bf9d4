#pragma once

/// One problem in a config file. Its own header so that the YAML reading
/// helpers (troupe_yaml) and each handler kind's reader report errors without
/// depending on the whole config.

#include <string>

namespace troupe::config {

/// One problem in a config file, located precisely.
struct ConfigError {
  std::string file;
  int line = 0;         // 1-based; 0 when the problem has no single place
  int column = 0;       // 1-based
  std::string path;     // key path, e.g. "troupes[2].autoscale.cooldown"
  std::string message;  // what is wrong and what to do
  /// "file:line:column: path: message"
  std::string to_string() const;
};

}  // namespace troupe::config
