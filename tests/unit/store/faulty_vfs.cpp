#include "faulty_vfs.h"

#include <sqlite3.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stdexcept>

namespace troupe::store::testing {

std::atomic<bool> FaultyVfs::fail_sync{false};
std::atomic<bool> FaultyVfs::fail_write{false};

namespace {

sqlite3_vfs* g_real = nullptr;

std::mutex g_hold_mutex;
std::condition_variable g_hold_changed;
bool g_holding = false;
bool g_holding_database_only = false;
int g_held = 0;  // xSync calls waiting in the hold
sqlite3_vfs g_vfs;

// The real file's state lives right after the shim's header (szOsFile).
struct ShimFile {
  sqlite3_file base;
  std::uint64_t main_db;  // the database file (not its WAL or journal)
};
static_assert(sizeof(ShimFile) % 8 == 0, "the real file must stay 8-byte aligned");

sqlite3_file* real(sqlite3_file* file) {
  return reinterpret_cast<sqlite3_file*>(reinterpret_cast<ShimFile*>(file) + 1);
}
const sqlite3_io_methods* m(sqlite3_file* file) {
  return real(file)->pMethods;
}

int shim_close(sqlite3_file* f) {
  return m(f)->xClose(real(f));
}
int shim_read(sqlite3_file* f, void* buf, int amount, sqlite3_int64 offset) {
  return m(f)->xRead(real(f), buf, amount, offset);
}
int shim_write(sqlite3_file* f, const void* buf, int amount, sqlite3_int64 offset) {
  if (FaultyVfs::fail_write) return SQLITE_IOERR_WRITE;
  return m(f)->xWrite(real(f), buf, amount, offset);
}
int shim_truncate(sqlite3_file* f, sqlite3_int64 size) {
  return m(f)->xTruncate(real(f), size);
}
int shim_sync(sqlite3_file* f, int flags) {
  {
    std::unique_lock lock(g_hold_mutex);
    if (g_holding && (!g_holding_database_only || reinterpret_cast<ShimFile*>(f)->main_db)) {
      ++g_held;
      g_hold_changed.notify_all();
      g_hold_changed.wait(lock, [] { return !g_holding; });
      --g_held;
    }
  }
  if (FaultyVfs::fail_sync) return SQLITE_IOERR_FSYNC;
  return m(f)->xSync(real(f), flags);
}
int shim_file_size(sqlite3_file* f, sqlite3_int64* size) {
  return m(f)->xFileSize(real(f), size);
}
int shim_lock(sqlite3_file* f, int level) {
  return m(f)->xLock(real(f), level);
}
int shim_unlock(sqlite3_file* f, int level) {
  return m(f)->xUnlock(real(f), level);
}
int shim_check_reserved(sqlite3_file* f, int* out) {
  return m(f)->xCheckReservedLock(real(f), out);
}
int shim_file_control(sqlite3_file* f, int op, void* arg) {
  return m(f)->xFileControl(real(f), op, arg);
}
int shim_sector_size(sqlite3_file* f) {
  return m(f)->xSectorSize(real(f));
}
int shim_device(sqlite3_file* f) {
  return m(f)->xDeviceCharacteristics(real(f));
}
int shim_shm_map(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
  return m(f)->xShmMap(real(f), region, size, extend, out);
}
int shim_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  return m(f)->xShmLock(real(f), offset, n, flags);
}
void shim_shm_barrier(sqlite3_file* f) {
  m(f)->xShmBarrier(real(f));
}
int shim_shm_unmap(sqlite3_file* f, int delete_flag) {
  return m(f)->xShmUnmap(real(f), delete_flag);
}
int shim_fetch(sqlite3_file* f, sqlite3_int64 offset, int amount, void** out) {
  return m(f)->xFetch(real(f), offset, amount, out);
}
int shim_unfetch(sqlite3_file* f, sqlite3_int64 offset, void* page) {
  return m(f)->xUnfetch(real(f), offset, page);
}

const sqlite3_io_methods g_methods = {
    3,
    shim_close,
    shim_read,
    shim_write,
    shim_truncate,
    shim_sync,
    shim_file_size,
    shim_lock,
    shim_unlock,
    shim_check_reserved,
    shim_file_control,
    shim_sector_size,
    shim_device,
    shim_shm_map,
    shim_shm_lock,
    shim_shm_barrier,
    shim_shm_unmap,
    shim_fetch,
    shim_unfetch,
};

int shim_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out) {
  sqlite3_file* inner = real(file);
  inner->pMethods = nullptr;
  int rc = g_real->xOpen(g_real, name, inner, flags, out);
  file->pMethods = inner->pMethods != nullptr ? &g_methods : nullptr;
  reinterpret_cast<ShimFile*>(file)->main_db = (flags & SQLITE_OPEN_MAIN_DB) != 0;
  return rc;
}

}  // namespace

void FaultyVfs::hold_syncs() {
  std::lock_guard lock(g_hold_mutex);
  g_holding = true;
  g_holding_database_only = false;
}

void FaultyVfs::hold_database_syncs() {
  std::lock_guard lock(g_hold_mutex);
  g_holding = true;
  g_holding_database_only = true;
}

void FaultyVfs::release_syncs() {
  {
    std::lock_guard lock(g_hold_mutex);
    g_holding = false;
  }
  g_hold_changed.notify_all();
}

bool FaultyVfs::wait_for_held_sync(std::chrono::milliseconds bound) {
  std::unique_lock lock(g_hold_mutex);
  return g_hold_changed.wait_for(lock, bound, [] { return g_held > 0; });
}

FaultyVfs::FaultyVfs() {
  if (g_real != nullptr) throw std::logic_error("FaultyVfs: one at a time");
  g_real = sqlite3_vfs_find(nullptr);
  if (g_real == nullptr || g_real->iVersion < 1)
    throw std::runtime_error("FaultyVfs: no default VFS");
  g_vfs = *g_real;
  g_vfs.pNext = nullptr;
  g_vfs.zName = "troupe-faulty";
  g_vfs.szOsFile = static_cast<int>(sizeof(ShimFile)) + g_real->szOsFile;
  g_vfs.xOpen = shim_open;
  fail_sync = false;
  fail_write = false;
  sqlite3_vfs_register(&g_vfs, 1);
}

FaultyVfs::~FaultyVfs() {
  release_syncs();
  sqlite3_vfs_unregister(&g_vfs);
  // Registering the real one as default again, in case unregistering left
  // another VFS in front.
  sqlite3_vfs_register(g_real, 1);
  g_real = nullptr;
  fail_sync = false;
  fail_write = false;
}

}  // namespace troupe::store::testing
