#include "config/yaml_reader.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "config/value_parsers.h"
#include "syntax/token.h"

namespace troupe::config::detail {
namespace {

/// A plain scalar is written without quotes or an explicit tag: only those
/// may be numbers or booleans.
bool is_plain_scalar(const YAML::Node& node) {
  return node.IsScalar() && node.Tag() == "?";
}

std::string format_real(double value) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

std::string range_text(IntRange range) {
  if (range.max == std::numeric_limits<std::int64_t>::max()) {
    return "must be at least " + std::to_string(range.min);
  }
  return "must be between " + std::to_string(range.min) + " and " + std::to_string(range.max);
}

std::string range_text(RealRange range) {
  std::string text = "must be ";
  text += range.min_exclusive ? "greater than " : "at least ";
  text += format_real(range.min);
  if (std::isfinite(range.max)) {
    text += range.max_exclusive ? " and less than " : " and at most ";
    text += format_real(range.max);
  }
  return text;
}

void quoted_number_error(Diagnostics& diag, const Field& f, std::string_view expected) {
  diag.error(f.where(), f.path(),
             "expected " + std::string(expected) + ", got the quoted string " + describe(f.node()) +
                 "; remove the quotes");
}

}  // namespace

Location location_of(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) return {};
  return {mark.line + 1, mark.column + 1};
}

void Diagnostics::error(Location at, std::string path, std::string message) {
  errors_.push_back(ConfigError{file_, at.line, at.column, std::move(path), std::move(message)});
}

std::vector<ConfigError> Diagnostics::take() {
  std::stable_sort(errors_.begin(), errors_.end(), [](const auto& a, const auto& b) {
    return std::pair(a.line, a.column) < std::pair(b.line, b.column);
  });
  return std::move(errors_);
}

Location Field::where() const {
  if (value_.IsDefined() && !value_.IsNull()) {
    if (const Location at = location_of(value_); at.line != 0) return at;
  }
  if (key_at_.line != 0) return key_at_;
  return location_of(value_);
}

std::string Field::child(std::string_view key) const {
  if (path_.empty()) return std::string(key);
  return path_ + "." + std::string(key);
}

std::string Field::child(std::size_t index) const {
  return path_ + "[" + std::to_string(index) + "]";
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "\"" + node.Scalar() + "\"";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

std::string join_words(std::span<const std::string_view> words) {
  std::string out;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i != 0) out += i + 1 == words.size() ? " or " : ", ";
    out += words[i];
  }
  return out;
}

std::optional<std::int64_t> read_int(Diagnostics& diag, const Field& f, IntRange range) {
  const YAML::Node& node = f.node();
  if (!node.IsScalar()) {
    diag.error(f.where(), f.path(), "expected a whole number, got " + describe(node));
    return std::nullopt;
  }
  if (!is_plain_scalar(node)) {
    quoted_number_error(diag, f, "a whole number");
    return std::nullopt;
  }
  const std::string& text = node.Scalar();
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range) {
    diag.error(f.where(), f.path(), "number " + describe(node) + " is too large");
    return std::nullopt;
  }
  if (ec != std::errc() || end != text.data() + text.size()) {
    diag.error(f.where(), f.path(), "expected a whole number, got " + describe(node));
    return std::nullopt;
  }
  if (value < range.min || value > range.max) {
    diag.error(f.where(), f.path(), range_text(range) + ", got " + text);
    return std::nullopt;
  }
  return value;
}

std::optional<double> read_real(Diagnostics& diag, const Field& f, RealRange range) {
  const YAML::Node& node = f.node();
  if (!node.IsScalar()) {
    diag.error(f.where(), f.path(), "expected a number, got " + describe(node));
    return std::nullopt;
  }
  if (!is_plain_scalar(node)) {
    quoted_number_error(diag, f, "a number");
    return std::nullopt;
  }
  const std::string& text = node.Scalar();
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
    diag.error(f.where(), f.path(), "expected a number like 0.5 or 4, got " + describe(node));
    return std::nullopt;
  }
  const bool below = range.min_exclusive ? value <= range.min : value < range.min;
  const bool above = range.max_exclusive ? value >= range.max : value > range.max;
  if (below || above) {
    diag.error(f.where(), f.path(), range_text(range) + ", got " + text);
    return std::nullopt;
  }
  return value;
}

std::optional<bool> read_bool(Diagnostics& diag, const Field& f) {
  const YAML::Node& node = f.node();
  if (is_plain_scalar(node) && node.Scalar() == "true") return true;
  if (is_plain_scalar(node) && node.Scalar() == "false") return false;
  diag.error(f.where(), f.path(), "expected true or false, got " + describe(node));
  return std::nullopt;
}

std::optional<std::string> read_string(Diagnostics& diag, const Field& f) {
  const YAML::Node& node = f.node();
  if (!node.IsScalar()) {
    diag.error(f.where(), f.path(), "expected a string, got " + describe(node));
    return std::nullopt;
  }
  return node.Scalar();
}

std::optional<core::Duration> read_duration(Diagnostics& diag, const Field& f,
                                            DurationRange range) {
  const YAML::Node& node = f.node();
  if (!node.IsScalar()) {
    diag.error(f.where(), f.path(),
               R"(expected a duration like "250ms", "30s" or "5m", got )" + describe(node));
    return std::nullopt;
  }
  auto parsed = parse_duration(node.Scalar());
  if (!parsed.value) {
    diag.error(f.where(), f.path(), std::move(parsed.error));
    return std::nullopt;
  }
  const core::Duration value = *parsed.value;
  if (range.min_exclusive ? value <= range.min : value < range.min) {
    diag.error(f.where(), f.path(),
               std::string(range.min_exclusive ? "must be longer than " : "must be at least ") +
                   format_duration(range.min) + ", got " + describe(node));
    return std::nullopt;
  }
  if (range.max && value > *range.max) {
    diag.error(f.where(), f.path(),
               "must be at most " + format_duration(*range.max) + ", got " + describe(node));
    return std::nullopt;
  }
  return value;
}

std::optional<std::size_t> read_size(Diagnostics& diag, const Field& f, std::size_t min,
                                     std::size_t max) {
  const YAML::Node& node = f.node();
  if (!node.IsScalar()) {
    diag.error(f.where(), f.path(),
               R"(expected a size like "512", "64KiB" or "4MiB", got )" + describe(node));
    return std::nullopt;
  }
  auto parsed = parse_size(node.Scalar());
  if (!parsed.value) {
    diag.error(f.where(), f.path(), std::move(parsed.error));
    return std::nullopt;
  }
  if (*parsed.value < min || *parsed.value > max) {
    diag.error(f.where(), f.path(),
               "must be between " + format_size(min) + " and " + format_size(max) + ", got " +
                   describe(node));
    return std::nullopt;
  }
  return parsed.value;
}

MapReader::MapReader(Diagnostics& diag, const Field& self,
                     const std::vector<std::string_view>& known, const UnknownKeyHint& hint)
    : diag_(diag), self_(self) {
  const YAML::Node& node = self.node();
  if (node.IsNull()) {
    is_map_ = true;
    return;
  }
  if (!node.IsMap()) {
    diag.error(self.where(), self.path(), "expected a map (key: value), got " + describe(node));
    return;
  }
  is_map_ = true;
  const std::vector<std::string_view>& known_keys = known;
  for (auto it = node.begin(); it != node.end(); ++it) {
    // A copy: `it->` yields a proxy that dies with the full expression.
    const YAML::Node key = it->first;
    const Location key_at = location_of(key);
    if (!key.IsScalar()) {
      diag.error(key_at, self.path(), "keys must be plain words, got " + describe(key));
      continue;
    }
    const std::string& name = key.Scalar();
    const std::string path = self.child(name);
    const auto previous = std::find_if(entries_.begin(), entries_.end(),
                                       [&](const auto& entry) { return entry.first == name; });
    if (previous != entries_.end()) {
      diag.error(key_at, path,
                 "'" + name + "' is given twice (first on line " +
                     std::to_string(previous->second.where().line) + "); keep only one");
      continue;
    }
    if (std::find(known_keys.begin(), known_keys.end(), name) == known_keys.end()) {
      std::optional<std::string> message;
      if (hint) message = hint(name);
      if (!message) {
        message = "unknown key '" + name + "'";
        if (auto suggestion = closest_match(name, known_keys)) {
          *message += "; did you mean '" + std::string(*suggestion) + "'?";
        } else {
          *message += "; expected one of " + join_words(known_keys);
        }
      }
      diag.error(key_at, path, std::move(*message));
      continue;
    }
    entries_.emplace_back(name, Field(it->second, path, key_at));
  }
}

const Field* MapReader::find(std::string_view key) const {
  for (const auto& [name, field] : entries_) {
    if (name == key) return &field;
  }
  return nullptr;
}

Location MapReader::at(std::string_view key) const {
  const Field* f = find(key);
  return f != nullptr ? f->where() : self_.where();
}

bool MapReader::u32(std::string_view key, std::uint32_t& out, IntRange range) {
  const Field* f = find(key);
  if (f == nullptr) return false;
  range.max = std::min<std::int64_t>(range.max, std::numeric_limits<std::uint32_t>::max());
  const auto value = read_int(diag_, *f, range);
  if (value) out = static_cast<std::uint32_t>(*value);
  return value.has_value();
}

bool MapReader::count(std::string_view key, std::size_t& out, IntRange range) {
  const Field* f = find(key);
  if (f == nullptr) return false;
  const auto value = read_int(diag_, *f, range);
  if (value) out = static_cast<std::size_t>(*value);
  return value.has_value();
}

bool MapReader::real(std::string_view key, double& out, RealRange range) {
  const Field* f = find(key);
  if (f == nullptr) return false;
  const auto value = read_real(diag_, *f, range);
  if (value) out = *value;
  return value.has_value();
}

bool MapReader::boolean(std::string_view key, bool& out) {
  const Field* f = find(key);
  if (f == nullptr) return false;
  const auto value = read_bool(diag_, *f);
  if (value) out = *value;
  return value.has_value();
}

bool MapReader::string(std::string_view key, std::string& out) {
  const Field* f = find(key);
  if (f == nullptr) return false;
  auto value = read_string(diag_, *f);
  if (value) out = std::move(*value);
  return value.has_value();
}

bool MapReader::duration(std::string_view key, core::Duration& out, DurationRange range) {
  const Field* f = find(key);
  if (f == nullptr) return false;
  const auto value = read_duration(diag_, *f, range);
  if (value) out = *value;
  return value.has_value();
}

bool MapReader::size(std::string_view key, std::size_t& out, std::size_t min, std::size_t max) {
  const Field* f = find(key);
  if (f == nullptr) return false;
  const auto value = read_size(diag_, *f, min, max);
  if (value) out = *value;
  return value.has_value();
}

std::optional<std::vector<Field>> read_list(Diagnostics& diag, const Field& f) {
  const YAML::Node& node = f.node();
  std::vector<Field> items;
  if (node.IsNull()) return items;
  if (!node.IsSequence()) {
    diag.error(f.where(), f.path(), "expected a list, got " + describe(node));
    return std::nullopt;
  }
  std::size_t index = 0;
  for (const auto& item : node) {
    Location at = location_of(item);
    if (at.line == 0) at = f.where();
    items.emplace_back(item, f.child(index), at);
    ++index;
  }
  return items;
}

void read_int_list(MapReader& m, std::string_view key, std::vector<int>& out, IntRange range) {
  const Field* f = m.find(key);
  if (f == nullptr) return;
  auto items = read_list(m.diag(), *f);
  if (!items) return;
  std::vector<int> values;
  bool ok = true;
  for (const Field& item : *items) {
    auto value = read_int(m.diag(), item, range);
    if (!value) {
      ok = false;
    } else if (std::find(values.begin(), values.end(), *value) != values.end()) {
      m.diag().error(item.where(), item.path(), std::to_string(*value) + " is listed twice");
      ok = false;
    } else {
      values.push_back(static_cast<int>(*value));
    }
  }
  if (ok) out = std::move(values);
}

/// The content of the file `path` that `key` names; an unreadable file is
/// reported at the key.
std::optional<std::string> read_file_for(MapReader& m, std::string_view key,
                                         const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    m.diag().error(m.at(key), m.path(key), "cannot read " + path + ": " + std::strerror(error));
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::optional<std::string> read_secret_file(MapReader& m, std::string_view key,
                                            const std::string& path) {
  const auto content = read_file_for(m, key, path);
  if (!content) return std::nullopt;
  const std::string_view token = syntax::trim_token(*content);
  if (token.empty()) {
    m.diag().error(m.at(key), m.path(key), path + " is empty; it must hold the secret");
    return std::nullopt;
  }
  return std::string(token);
}

}  // namespace troupe::config::detail
