#include <cstdio>

#include "daemon/version.h"

int main() {
  std::printf("trouped %s\n", troupe::daemon::kVersion);
  return 0;
}
