#include "tools/common/duration.h"

#include <cmath>
#include <cstdio>

namespace troupe::tools {

std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text) {
  if (text == "0") return std::chrono::nanoseconds{0};
  if (text.empty()) return std::nullopt;
  long double total_ns = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t number_start = i;
    bool seen_digit = false;
    bool seen_dot = false;
    while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) {
      if (text[i] == '.') {
        if (seen_dot) return std::nullopt;
        seen_dot = true;
      } else {
        seen_digit = true;
      }
      ++i;
    }
    if (!seen_digit) return std::nullopt;
    const std::string number(text.substr(number_start, i - number_start));
    const std::size_t unit_start = i;
    while (i < text.size() && text[i] >= 'a' && text[i] <= 'z') ++i;
    const std::string_view unit = text.substr(unit_start, i - unit_start);
    long double scale = 0;
    if (unit == "ns") {
      scale = 1;
    } else if (unit == "us") {
      scale = 1e3L;
    } else if (unit == "ms") {
      scale = 1e6L;
    } else if (unit == "s") {
      scale = 1e9L;
    } else if (unit == "m") {
      scale = 60e9L;
    } else if (unit == "h") {
      scale = 3600e9L;
    } else {
      return std::nullopt;
    }
    total_ns += std::strtold(number.c_str(), nullptr) * scale;
  }
  // Leave headroom below int64 max so callers can add it to a time_point.
  if (!std::isfinite(total_ns) || total_ns > 1e18L) return std::nullopt;
  return std::chrono::nanoseconds{static_cast<std::int64_t>(std::llround(total_ns))};
}

std::string format_duration(std::chrono::nanoseconds d) {
  const double ns = static_cast<double>(d.count());
  char buf[32];
  auto fmt = [&](double v, const char* unit) {
    if (v >= 100) {
      std::snprintf(buf, sizeof buf, "%.0f%s", v, unit);
    } else if (v >= 10) {
      std::snprintf(buf, sizeof buf, "%.1f%s", v, unit);
    } else {
      std::snprintf(buf, sizeof buf, "%.2f%s", v, unit);
    }
  };
  if (ns < 1e3) {
    std::snprintf(buf, sizeof buf, "%.0fns", ns);
  } else if (ns < 1e6) {
    fmt(ns / 1e3, "us");
  } else if (ns < 1e9) {
    fmt(ns / 1e6, "ms");
  } else {
    fmt(ns / 1e9, "s");
  }
  return buf;
}

}  // namespace troupe::tools
