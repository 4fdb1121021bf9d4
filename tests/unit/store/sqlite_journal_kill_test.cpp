// kill -9 at the store level: a child process appends jobs from several
// threads and reports each barrier it saw (an acknowledgement) down a pipe;
// the parent kills it with SIGKILL at a random moment, reopens the store
// and checks that every acknowledged entry came back.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "store/sqlite_journal.h"

namespace troupe::store {
namespace {

namespace fs = std::filesystem;
using core::JobId;
using core::JobState;

/// What the child reports per acknowledgement: the job and how far it got.
struct Ack {
  std::uint64_t id;
  std::uint8_t stage;  // 0: accepted, 1: succeeded
};

[[noreturn]] void run_child(const SqliteJournalOptions& options, int fd, std::uint64_t first_id) {
  auto journal = open_sqlite_journal(options);
  journal->recover([](core::RecoveredJob&&) {});
  std::vector<std::thread> threads;
  for (std::uint64_t t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (std::uint64_t n = 0;; ++n) {
        std::uint64_t id = first_id + (t << 32) + n;
        auto ack = [fd](std::uint64_t job, std::uint8_t stage) {
          return [fd, job, stage](const core::JournalFailure* failure) {
            if (failure != nullptr) std::_Exit(3);
            char bytes[sizeof(std::uint64_t) + 1];
            std::memcpy(bytes, &job, sizeof job);
            bytes[sizeof job] = static_cast<char>(stage);
            // Under PIPE_BUF: one atomic write per acknowledgement.
            if (::write(fd, bytes, sizeof bytes) != static_cast<ssize_t>(sizeof bytes)) {
              std::_Exit(4);
            }
          };
        };
        core::JournalAccepted accepted;
        accepted.id = JobId{id};
        accepted.troupe = "t";
        accepted.payload = std::string(100, 'p');
        // Real times: a finished job is kept for result_ttl after them.
        std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
        accepted.submitted_ns = now;
        journal->append(std::move(accepted));
        journal->after_durable(ack(id, 0));
        journal->append(core::JournalStarted{JobId{id}, 1, now});
        journal->append(core::JournalTerminal{JobId{id}, JobState::kSucceeded,
                                              core::FailureClass::kNone, 1, "ok", now, now});
        journal->after_durable(ack(id, 1));
      }
    });
  }
  for (auto& thread : threads) thread.join();  // never: killed
  std::_Exit(0);
}

TEST(SqliteJournalKill, EveryAcknowledgedEntrySurvivesSigkill) {
  std::string pattern = (fs::temp_directory_path() / "troupe-store-kill-XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  fs::path dir = pattern;
  SqliteJournalOptions options;
  options.path = (dir / "jobs.db").string();
  options.result_ttl = std::chrono::hours(1);
  options.sync_full = true;

  unsigned seed = std::random_device{}();
  RecordProperty("seed", std::to_string(seed));
  std::mt19937 random(seed);
  std::map<std::uint64_t, std::uint8_t> acked;  // over every round
  constexpr int kRounds = 5;
  for (int round = 0; round < kRounds; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::close(fds[0]);
      run_child(options, fds[1], static_cast<std::uint64_t>(round + 1) << 48);
    }
    ::close(fds[1]);
    // The random moment: 0-200 ms after the first acknowledgement, so that
    // every round kills a child that is committing.
    auto kill_after = std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 200)(random));
    std::mutex mutex;
    std::condition_variable first_ack;
    bool acked_once = false;
    std::thread killer([&] {
      {
        std::unique_lock lock(mutex);
        first_ack.wait_for(lock, std::chrono::seconds(30), [&] { return acked_once; });
      }
      std::this_thread::sleep_for(kill_after);  // the moment, not a synchronisation
      ::kill(child, SIGKILL);
    });
    char bytes[sizeof(std::uint64_t) + 1];
    std::size_t got = 0;
    std::size_t round_acks = 0;
    for (;;) {
      ssize_t n = ::read(fds[0], bytes + got, sizeof bytes - got);
      if (n <= 0) break;  // the child died: its end of the pipe closed
      got += static_cast<std::size_t>(n);
      if (got < sizeof bytes) continue;
      got = 0;
      std::uint64_t id;
      std::memcpy(&id, bytes, sizeof id);
      auto stage = static_cast<std::uint8_t>(bytes[sizeof id]);
      auto& best = acked[id];
      best = std::max(best, stage);
      if (round_acks++ == 0) {
        std::lock_guard lock(mutex);
        acked_once = true;
        first_ack.notify_one();
      }
    }
    killer.join();
    ::close(fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the child ended on its own (status " << status << ") in round " << round << ", seed "
        << seed;
    EXPECT_GT(round_acks, 0u) << "round " << round << ", seed " << seed;

    auto journal = open_sqlite_journal(options);
    std::map<std::uint64_t, JobState> recovered;
    journal->recover(
        [&](core::RecoveredJob&& job) { recovered[job.request.id.value] = job.state; });
    std::size_t missing = 0, behind = 0;
    for (const auto& [id, stage] : acked) {
      auto it = recovered.find(id);
      if (it == recovered.end()) {
        ++missing;
      } else if (stage == 1 && it->second != JobState::kSucceeded) {
        ++behind;
      }
    }
    EXPECT_EQ(missing, 0u) << "acknowledged jobs lost in round " << round << ", seed " << seed;
    EXPECT_EQ(behind, 0u) << "acknowledged terminal states lost in round " << round << ", seed "
                          << seed;
    RecordProperty("acked_round_" + std::to_string(round),
                   std::to_string(round_acks) + " (killed " + std::to_string(kill_after.count()) +
                       " ms after the first)");
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace troupe::store
