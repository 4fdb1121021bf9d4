#pragma once

#include <pthread.h>

namespace troupe::core::detail {

/// A mutex that spins briefly before it sleeps (glibc's adaptive mutex).
/// For locks held for a few dozen instructions and taken by several threads
/// per job, such as a troupe's queue lock: contended, a std::mutex puts the
/// waiter to sleep in the kernel and the holder pays a futex wake on unlock,
/// although the lock would have been free a moment later. Satisfies Lockable.
class AdaptiveMutex {
 public:
  AdaptiveMutex() noexcept {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&mutex_, &attr);
    pthread_mutexattr_destroy(&attr);
  }
  ~AdaptiveMutex() { pthread_mutex_destroy(&mutex_); }
  AdaptiveMutex(const AdaptiveMutex&) = delete;
  AdaptiveMutex& operator=(const AdaptiveMutex&) = delete;

  void lock() noexcept { pthread_mutex_lock(&mutex_); }
  bool try_lock() noexcept { return pthread_mutex_trylock(&mutex_) == 0; }
  void unlock() noexcept { pthread_mutex_unlock(&mutex_); }

 private:
  pthread_mutex_t mutex_;
};

}  // namespace troupe::core::detail
