#pragma once

/// Test certificates made by the `openssl` command at test time: a CA and
/// the server and client certificates it signs, as PEM files in a directory.

#include <grpcpp/security/credentials.h>

#include <filesystem>
#include <memory>
#include <string>

namespace troupe::test {

/// A certificate and its private key, as files.
struct CertificateFiles {
  std::filesystem::path cert;
  std::filesystem::path key;
};

/// One test CA (an EC P-256 key, valid two days) in `dir`. Each method runs
/// openssl and fails the current test when it fails. Not thread-safe.
class TestCa {
 public:
  /// Creates the CA "CN=<name>" as <dir>/<name>.crt and .key.
  TestCa(std::filesystem::path dir, std::string name);

  const std::filesystem::path& cert() const { return cert_; }
  /// A server certificate for 127.0.0.1 and localhost, "CN=<name>".
  CertificateFiles issue_server(const std::string& name) const;
  /// A client certificate with subject "CN=<common_name>,O=troupe-test"
  /// (RFC 2253 order, as gRPC reports it: "O=troupe-test,CN=<common_name>").
  CertificateFiles issue_client(const std::string& common_name) const;

 private:
  CertificateFiles issue(const std::string& name, const std::string& subject,
                         const std::string& extensions) const;

  std::filesystem::path dir_;
  std::string name_;
  std::filesystem::path cert_;
  std::filesystem::path key_;
};

/// The whole content of a file.
std::string read_file(const std::filesystem::path& path);

/// TLS channel credentials that trust `ca`, with `client` (cert and key)
/// presented for mTLS when given.
std::shared_ptr<grpc::ChannelCredentials> tls_credentials(const std::filesystem::path& ca,
                                                          const CertificateFiles* client = nullptr);

}  // namespace troupe::test
