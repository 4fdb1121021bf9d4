#pragma once

/// The gRPC port's transport security, from server.tls.

#include <grpcpp/security/server_credentials.h>

#include <memory>

#include "config/config.h"

namespace troupe::daemon {

/// Insecure credentials when `tls` is off. Otherwise TLS (1.2 or 1.3: gRPC
/// 1.51 offers no way to raise the minimum) over gRPC's file-watching
/// certificate provider: the certificate, key and client CA files are re-read
/// every tls.refresh_interval, so rotated files serve new handshakes without
/// a restart while open connections keep theirs. With client_ca_file, a
/// client must present a certificate that CA signed (mTLS). The files were
/// checked when the config was loaded.
std::shared_ptr<grpc::ServerCredentials> make_server_credentials(const config::TlsOptions& tls);

}  // namespace troupe::daemon
