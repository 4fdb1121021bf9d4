#include "daemon/server_credentials.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <algorithm>
#include <chrono>

namespace troupe::daemon {

std::shared_ptr<grpc::ServerCredentials> make_server_credentials(const config::TlsOptions& tls) {
  if (!tls.enabled()) return grpc::InsecureServerCredentials();
  const auto refresh = static_cast<unsigned int>(std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(tls.refresh_interval).count()));
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      tls.key_file, tls.cert_file, tls.client_ca_file, refresh);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (tls.mutual()) {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

}  // namespace troupe::daemon
