#include "daemon/process_collector.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>

namespace troupe::daemon {
namespace {

prometheus::MetricFamily gauge(std::string name, std::string help, double value,
                               prometheus::MetricType type = prometheus::MetricType::Gauge) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

/// Fields of /proc/self/stat we use, already in base units.
struct ProcStat {
  double cpu_seconds = 0;
  double virtual_bytes = 0;
  double resident_bytes = 0;
  double start_time_seconds = 0;  // since the epoch
};

std::optional<double> boot_time_seconds() {
  std::ifstream in("/proc/stat");
  std::string key;
  while (in >> key) {
    if (key == "btime") {
      double btime = 0;
      in >> btime;
      return btime;
    }
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return std::nullopt;
}

std::optional<ProcStat> read_proc_stat() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // The command name (field 2) may contain spaces; fields resume after ')'.
  const auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(line.substr(close + 2));
  // Field 3 is the first after ')'; we need 14 utime, 15 stime, 22 starttime,
  // 23 vsize, 24 rss.
  std::string field;
  ProcStat stat;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  double utime = 0;
  double stime = 0;
  double starttime = 0;
  for (int index = 3; fields >> field && index <= 24; ++index) {
    switch (index) {
      case 14:
        utime = std::stod(field);
        break;
      case 15:
        stime = std::stod(field);
        break;
      case 22:
        starttime = std::stod(field);
        break;
      case 23:
        stat.virtual_bytes = std::stod(field);
        break;
      case 24:
        stat.resident_bytes = std::stod(field) * page;
        break;
      default:
        break;
    }
  }
  stat.cpu_seconds = (utime + stime) / ticks;
  if (auto boot = boot_time_seconds()) stat.start_time_seconds = *boot + starttime / ticks;
  return stat;
}

}  // namespace

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  std::vector<prometheus::MetricFamily> out;
  if (auto stat = read_proc_stat()) {
    out.push_back(gauge("process_cpu_seconds_total", "User and system CPU time spent, seconds.",
                        stat->cpu_seconds, prometheus::MetricType::Counter));
    out.push_back(gauge("process_resident_memory_bytes", "Resident memory size, bytes.",
                        stat->resident_bytes));
    out.push_back(
        gauge("process_virtual_memory_bytes", "Virtual memory size, bytes.", stat->virtual_bytes));
    if (stat->start_time_seconds > 0) {
      out.push_back(gauge("process_start_time_seconds",
                          "Start time of the process since the epoch, seconds.",
                          stat->start_time_seconds));
    }
  }
  std::error_code ec;
  std::size_t fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++fds;
  }
  if (!ec) {
    out.push_back(gauge("process_open_fds", "Open file descriptors.", static_cast<double>(fds)));
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    out.push_back(gauge("process_max_fds", "Maximum number of open file descriptors.",
                        static_cast<double>(limit.rlim_cur)));
  }
  return out;
}

}  // namespace troupe::daemon
