#pragma once

namespace troupe::daemon {

/// Process-wide settings for the gRPC library as Debian ships it; call once,
/// before the first gRPC object is created. Used by trouped and by the bare
/// echo baseline (tests/bench/echo_server) so that both run the same gRPC.
///
/// Today it turns off Abseil's mutex deadlock detection. Debian builds
/// Abseil without NDEBUG, so every absl::Mutex that gRPC locks also updates a
/// global lock-order graph (GraphCycles): under Submit load that was 5-7 % of
/// trouped's CPU samples (docs/performance.md). A release build of Abseil has
/// it off; so do we.
void configure_grpc_process();

}  // namespace troupe::daemon
