// An LD_PRELOAD shim for the store fault tests (daemon_store_test.cpp): fsync and fdatasync fail
// with EIO once the file named by TROUPE_TEST_FSYNC_FAIL_FILE exists (the test creates it when it
// wants the disk to "fail"); before that they pass through.
#include <dlfcn.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace {

bool failing() {
  const char* trigger = std::getenv("TROUPE_TEST_FSYNC_FAIL_FILE");
  return trigger != nullptr && ::access(trigger, F_OK) == 0;
}

template <typename Fn>
Fn real(const char* name) {
  return reinterpret_cast<Fn>(::dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" int fsync(int fd) {
  static const auto next = real<int (*)(int)>("fsync");
  if (failing()) {
    errno = EIO;
    return -1;
  }
  return next(fd);
}

extern "C" int fdatasync(int fd) {
  static const auto next = real<int (*)(int)>("fdatasync");
  if (failing()) {
    errno = EIO;
    return -1;
  }
  return next(fd);
}
