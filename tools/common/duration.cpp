#include "tools/common/duration.h"

#include <cstdio>

namespace troupe::tools {

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
