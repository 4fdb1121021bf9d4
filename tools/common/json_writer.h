#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::tools {

/// Builds one compact JSON document. Not thread-safe; the caller nests
/// begin/end calls correctly (checked only by tests of the output).
class JsonWriter {
 public:
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  /// The key of the next value inside an object.
  JsonWriter& key(std::string_view name);
  JsonWriter& value(std::string_view text);
  JsonWriter& value(const char* text) { return value(std::string_view(text)); }
  JsonWriter& value(std::int64_t number);
  JsonWriter& value(std::uint64_t number);
  JsonWriter& value(int number) { return value(static_cast<std::int64_t>(number)); }
  JsonWriter& value(double number);
  JsonWriter& value(bool flag);
  /// Inserts already-serialised JSON (e.g. a protobuf message) as a value.
  JsonWriter& raw(std::string_view json);

  const std::string& str() const { return out_; }

  /// `text` as a JSON string literal, quotes included.
  static std::string quote(std::string_view text);

 private:
  void before_value();

  std::string out_;
  // One entry per open container: true once it holds an element.
  std::vector<bool> has_element_;
  bool after_key_ = false;
};

}  // namespace troupe::tools
