#pragma once

/// Strict, error-collecting readers over yaml-cpp nodes (library troupe_yaml).
/// The schema in config/config.cpp and each handler kind's reader
/// (handlers/<kind>/<kind>_config.cpp) are written with these.

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config_error.h"
#include "config/value_parsers.h"
#include "core/options.h"

namespace troupe::config::detail {

/// 1-based place in the file; {0, 0} when unknown.
struct Location {
  int line = 0;
  int column = 0;
};

Location location_of(const YAML::Node& node);

/// Collects every error found in one file. Not thread-safe; one per load.
class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}

  void error(Location at, std::string path, std::string message);
  bool empty() const { return errors_.empty(); }
  /// Every error, in file order.
  std::vector<ConfigError> take();

 private:
  std::string file_;
  std::vector<ConfigError> errors_;
};

/// A value in the file with its key path. The key's location stands in when
/// the value itself has none (an empty value, or a value yaml-cpp marks late).
class Field {
 public:
  Field(const YAML::Node& value, std::string path, Location key_at)
      : value_(value), path_(std::move(path)), key_at_(key_at) {}

  const YAML::Node& node() const { return value_; }
  const std::string& path() const { return path_; }
  Location where() const;
  /// Path of a child: "a.b" for a key, "a[3]" for an index.
  std::string child(std::string_view key) const;
  std::string child(std::size_t index) const;

 private:
  YAML::Node value_;
  std::string path_;
  Location key_at_;
};

/// "a map", "a list", "nothing", or the quoted scalar, for "got ..." parts.
std::string describe(const YAML::Node& node);

/// A range check for whole numbers, inclusive.
struct IntRange {
  std::int64_t min;
  std::int64_t max;
};

/// A range check for real numbers.
struct RealRange {
  double min;
  bool min_exclusive;
  double max;  // +infinity for none
  bool max_exclusive;
};

/// A range check for durations.
struct DurationRange {
  core::Duration min = core::Duration::zero();
  bool min_exclusive = true;  // true: must be > min
  std::optional<core::Duration> max;
};

/// Scalar converters: each reports its own error and returns nullopt.
std::optional<std::int64_t> read_int(Diagnostics& diag, const Field& f, IntRange range);
std::optional<double> read_real(Diagnostics& diag, const Field& f, RealRange range);
std::optional<bool> read_bool(Diagnostics& diag, const Field& f);
std::optional<std::string> read_string(Diagnostics& diag, const Field& f);
std::optional<core::Duration> read_duration(Diagnostics& diag, const Field& f, DurationRange range);
std::optional<std::size_t> read_size(Diagnostics& diag, const Field& f, std::size_t min,
                                     std::size_t max);

/// One accepted word of an enumeration and the value it stands for.
template <class E>
using Choices = std::initializer_list<std::pair<std::string_view, E>>;

std::string join_words(std::span<const std::string_view> words);

template <class E>
std::optional<E> read_choice(Diagnostics& diag, const Field& f, Choices<E> choices);

/// Says why an unknown key is wrong when a plain "unknown key" would not help
/// (e.g. a key that belongs to another handler kind); nullopt for default.
using UnknownKeyHint = std::function<std::optional<std::string>(std::string_view key)>;

/// A YAML map with a fixed set of allowed keys. Construction reports a
/// non-map value, duplicate keys and unknown keys (with "did you mean").
/// An empty value (`key:` alone) reads as an empty map.
class MapReader {
 public:
  MapReader(Diagnostics& diag, const Field& self, const std::vector<std::string_view>& known,
            const UnknownKeyHint& hint = {});

  bool is_map() const { return is_map_; }
  const Field& self() const { return self_; }
  Diagnostics& diag() const { return diag_; }
  /// The field for `key`, or nullptr when absent.
  const Field* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }
  /// Where `key`'s value is, or where the map is when the key is absent.
  Location at(std::string_view key) const;
  std::string path(std::string_view key) const { return self_.child(key); }

  // Typed readers: assign `out` and return true only when the key is present
  // and valid; otherwise leave `out` (the default) untouched.
  bool u32(std::string_view key, std::uint32_t& out, IntRange range);
  bool count(std::string_view key, std::size_t& out, IntRange range);
  bool real(std::string_view key, double& out, RealRange range);
  bool boolean(std::string_view key, bool& out);
  bool string(std::string_view key, std::string& out);
  bool duration(std::string_view key, core::Duration& out, DurationRange range);
  bool size(std::string_view key, std::size_t& out, std::size_t min, std::size_t max);
  template <class E>
  bool choice(std::string_view key, E& out, Choices<E> choices) {
    const Field* f = find(key);
    if (f == nullptr) return false;
    auto value = read_choice(diag_, *f, choices);
    if (value) out = *value;
    return value.has_value();
  }

 private:
  Diagnostics& diag_;
  Field self_;
  bool is_map_ = false;
  std::vector<std::pair<std::string, Field>> entries_;
};

/// Iterates a YAML list; reports a non-list value. An empty value reads as an
/// empty list.
std::optional<std::vector<Field>> read_list(Diagnostics& diag, const Field& f);

template <class E>
std::optional<E> read_choice(Diagnostics& diag, const Field& f, Choices<E> choices) {
  auto text = read_string(diag, f);
  if (!text) return std::nullopt;
  std::vector<std::string_view> words;
  for (const auto& [word, value] : choices) {
    if (word == *text) return value;
    words.push_back(word);
  }
  std::string message = "unknown value \"" + *text + "\"; expected one of " + join_words(words);
  if (auto suggestion = closest_match(*text, words)) {
    message += " (did you mean \"" + std::string(*suggestion) + "\"?)";
  }
  diag.error(f.where(), f.path(), std::move(message));
  return std::nullopt;
}

/// A list of whole numbers in `range`, each listed once.
void read_int_list(MapReader& m, std::string_view key, std::vector<int>& out, IntRange range);

/// A list of strings, each checked by `valid` (which returns an error
/// message, or empty when fine).
template <class Check>
void read_string_list(MapReader& m, std::string_view key, std::vector<std::string>& out,
                      Check valid) {
  const Field* f = m.find(key);
  if (f == nullptr) return;
  auto items = read_list(m.diag(), *f);
  if (!items) return;
  std::vector<std::string> values;
  bool ok = true;
  for (const Field& item : *items) {
    auto value = read_string(m.diag(), item);
    if (!value) {
      ok = false;
      continue;
    }
    if (auto why = valid(*value); !why.empty()) {
      m.diag().error(item.where(), item.path(), std::move(why));
      ok = false;
      continue;
    }
    values.push_back(std::move(*value));
  }
  if (ok) out = std::move(values);
}

/// A map of string to string; keys checked by `valid_key`, values by
/// `valid_value` (each returns an error message or empty).
template <class KeyCheck, class ValueCheck>
void read_string_map(MapReader& m, std::string_view key, std::map<std::string, std::string>& out,
                     KeyCheck valid_key, ValueCheck valid_value) {
  const Field* f = m.find(key);
  if (f == nullptr) return;
  const YAML::Node& node = f->node();
  if (node.IsNull()) return;
  if (!node.IsMap()) {
    m.diag().error(f->where(), f->path(), "expected a map (name: value), got " + describe(node));
    return;
  }
  std::map<std::string, std::string> values;
  bool ok = true;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const Location key_at = location_of(it->first);
    if (!it->first.IsScalar()) {
      m.diag().error(key_at, f->path(), "names must be strings, got " + describe(it->first));
      ok = false;
      continue;
    }
    const std::string name = it->first.Scalar();
    const Field entry(it->second, f->child(name), key_at);
    if (auto why = valid_key(name); !why.empty()) {
      m.diag().error(key_at, entry.path(), std::move(why));
      ok = false;
      continue;
    }
    auto value = read_string(m.diag(), entry);
    if (!value) {
      ok = false;
      continue;
    }
    if (auto why = valid_value(*value); !why.empty()) {
      m.diag().error(entry.where(), entry.path(), std::move(why));
      ok = false;
      continue;
    }
    if (!values.emplace(name, std::move(*value)).second) {
      m.diag().error(key_at, entry.path(), "'" + name + "' is given twice; keep only one");
      ok = false;
    }
  }
  if (ok) out = std::move(values);
}

/// The content of the file `path` that `key` names; an unreadable file is
/// reported at the key.
std::optional<std::string> read_file_for(MapReader& m, std::string_view key,
                                         const std::string& path);

/// The secret in a file (a token, a signing key): its content without
/// surrounding whitespace (a trailing newline, typically); an empty file is
/// reported at the key.
std::optional<std::string> read_secret_file(MapReader& m, std::string_view key,
                                            const std::string& path);

/// Ranges and sizes several sections use.
inline constexpr DurationRange kPositive{};
inline constexpr DurationRange kNonNegative{core::Duration::zero(), false, std::nullopt};
inline constexpr std::size_t kMiB = std::size_t{1} << 20;
inline constexpr std::size_t kGiB = std::size_t{1} << 30;

}  // namespace troupe::config::detail
