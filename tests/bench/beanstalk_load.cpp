// beanstalk_load: a bounded closed-loop load client for beanstalkd, the
// durable-queue reference of scripts/perf-store.sh (docs/performance.md,
// "Durable store"). Like troupe-bench's submit mode: --concurrency producers,
// each with its own connection and one `put` in flight, for --duration; and
// --consumers connections that `reserve` and `delete` (beanstalkd journals
// both in its binlog, as trouped journals acceptance and the terminal state).
// Prints one JSON object: puts, put throughput, put latency quantiles
// (microseconds), jobs deleted, errors.
//
// usage: beanstalk_load --address 127.0.0.1:PORT [--concurrency 64] [--consumers 2]
//                       [--duration 5s] [--payload-size 64]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string host = "127.0.0.1";
  int port = 11300;
  unsigned concurrency = 64;
  unsigned consumers = 2;
  std::chrono::milliseconds duration{5000};
  std::size_t payload_size = 64;
};

[[noreturn]] void usage_error(const std::string& what) {
  std::fprintf(stderr,
               "beanstalk_load: %s\nusage: beanstalk_load --address HOST:PORT [--concurrency N] "
               "[--consumers N] [--duration Ns|Nms] [--payload-size N]\n",
               what.c_str());
  std::exit(2);
}

std::chrono::milliseconds parse_duration(const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  const std::string unit = end;
  if (v <= 0 || (unit != "s" && unit != "ms")) usage_error("bad duration '" + text + "'");
  return std::chrono::milliseconds(static_cast<long long>(unit == "s" ? v * 1000 : v));
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) usage_error("missing value for " + flag);
    const std::string value = argv[++i];
    if (flag == "--address") {
      const auto colon = value.rfind(':');
      if (colon == std::string::npos) usage_error("--address needs HOST:PORT");
      o.host = value.substr(0, colon);
      o.port = std::atoi(value.c_str() + colon + 1);
    } else if (flag == "--concurrency") {
      o.concurrency = static_cast<unsigned>(std::stoul(value));
    } else if (flag == "--consumers") {
      o.consumers = static_cast<unsigned>(std::stoul(value));
    } else if (flag == "--duration") {
      o.duration = parse_duration(value);
    } else if (flag == "--payload-size") {
      o.payload_size = std::stoul(value);
    } else {
      usage_error("unknown flag " + flag);
    }
  }
  if (o.concurrency == 0 || o.concurrency > 1024) usage_error("--concurrency must be 1..1024");
  return o;
}

/// One blocking connection with a line reader; every read and write is
/// bounded by a 10 s socket timeout, so a stuck server cannot hang the run.
class Connection {
 public:
  explicit Connection(const Options& o) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(o.port));
    ok_ = ::inet_pton(AF_INET, o.host.c_str(), &addr.sin_addr) == 1 &&
          ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~Connection() { ::close(fd_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool ok() const { return ok_; }

  bool send(const std::string& data) {
    std::size_t done = 0;
    while (ok_ && done < data.size()) {
      const auto n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n <= 0)
        ok_ = false;
      else
        done += static_cast<std::size_t>(n);
    }
    return ok_;
  }
  /// The next line without its "\r\n"; nullopt on error or timeout.
  std::optional<std::string> line() {
    for (;;) {
      const auto end = buffer_.find("\r\n");
      if (end != std::string::npos) {
        std::string l = buffer_.substr(0, end);
        buffer_.erase(0, end + 2);
        return l;
      }
      if (!fill()) return std::nullopt;
    }
  }
  /// Skips `n` body bytes and their "\r\n".
  bool skip(std::size_t n) {
    while (ok_ && buffer_.size() < n + 2) {
      if (!fill()) return false;
    }
    buffer_.erase(0, n + 2);
    return ok_;
  }

 private:
  bool fill() {
    char chunk[4096];
    const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      ok_ = false;
      return false;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool ok_ = false;
  std::string buffer_;
};

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const std::string payload(o.payload_size, 'x');
  const std::string put =
      "put 1024 0 60 " + std::to_string(payload.size()) + "\r\n" + payload + "\r\n";
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> deleted{0}, errors{0};
  std::mutex mutex;
  std::vector<double> latencies_us;  // every measured put
  const auto start = Clock::now();
  const auto until = start + o.duration;

  std::vector<std::thread> threads;
  for (unsigned i = 0; i < o.concurrency; ++i) {
    threads.emplace_back([&] {
      Connection c(o);
      if (!c.ok()) ++errors;
      std::vector<double> mine;
      while (c.ok() && Clock::now() < until) {
        const auto t0 = Clock::now();
        if (!c.send(put)) break;
        const auto reply = c.line();
        if (!reply || reply->rfind("INSERTED ", 0) != 0) {
          ++errors;
          break;
        }
        mine.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      }
      std::lock_guard lock(mutex);
      latencies_us.insert(latencies_us.end(), mine.begin(), mine.end());
    });
  }
  for (unsigned i = 0; i < o.consumers; ++i) {
    threads.emplace_back([&] {
      Connection c(o);
      while (c.ok() && !stop) {
        if (!c.send("reserve-with-timeout 1\r\n")) break;
        const auto reply = c.line();
        if (!reply) break;
        if (reply->rfind("TIMED_OUT", 0) == 0) continue;
        unsigned long long id = 0;
        std::size_t bytes = 0;
        if (std::sscanf(reply->c_str(), "RESERVED %llu %zu", &id, &bytes) != 2 || !c.skip(bytes)) {
          ++errors;
          break;
        }
        if (!c.send("delete " + std::to_string(id) + "\r\n")) break;
        const auto done = c.line();
        if (!done || *done != "DELETED") {
          ++errors;
          break;
        }
        ++deleted;
      }
    });
  }
  for (unsigned i = 0; i < o.concurrency; ++i) threads[i].join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const auto deleted_by_end = deleted.load();
  stop = true;
  for (unsigned i = o.concurrency; i < threads.size(); ++i) threads[i].join();

  std::sort(latencies_us.begin(), latencies_us.end());
  const auto q = [&](double p) {
    if (latencies_us.empty()) return 0.0;
    const auto i =
        static_cast<std::size_t>(p / 100.0 * static_cast<double>(latencies_us.size() - 1));
    return latencies_us[i];
  };
  std::printf(
      "{\"puts\": %zu, \"elapsed_seconds\": %.3f, \"throughput_rps\": %.1f, "
      "\"latency_us\": {\"p50\": %.0f, \"p99\": %.0f, \"max\": %.0f}, "
      "\"deleted\": %llu, \"errors\": %llu, \"concurrency\": %u, \"consumers\": %u}\n",
      latencies_us.size(), elapsed, static_cast<double>(latencies_us.size()) / elapsed, q(50),
      q(99), latencies_us.empty() ? 0.0 : latencies_us.back(),
      static_cast<unsigned long long>(deleted_by_end),
      static_cast<unsigned long long>(errors.load()), o.concurrency, o.consumers);
  return latencies_us.empty() ? 1 : 0;
}
