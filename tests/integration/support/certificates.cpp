#include "support/certificates.h"

#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "tests/support/run_process.h"

namespace troupe::test {
namespace {

void openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  const ProcessResult result = run_process({.argv = argv, .time_limit = 30s});
  ASSERT_EQ(result.exit_code, 0) << "openssl " << args.front() << ": " << result;
}

const std::vector<std::string> kEcKey = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                                         "-nodes"};

}  // namespace

TestCa::TestCa(std::filesystem::path dir, std::string name)
    : dir_(std::move(dir)),
      name_(std::move(name)),
      cert_(dir_ / (name_ + ".crt")),
      key_(dir_ / (name_ + ".key")) {
  std::vector<std::string> args = {"req", "-x509"};
  args.insert(args.end(), kEcKey.begin(), kEcKey.end());
  args.insert(args.end(), {"-keyout", key_.string(), "-out", cert_.string(), "-days", "2", "-subj",
                           "/CN=" + name_});
  openssl(args);
}

CertificateFiles TestCa::issue_server(const std::string& name) const {
  return issue(name, "/CN=" + name,
               "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
}

CertificateFiles TestCa::issue_client(const std::string& common_name) const {
  return issue(common_name, "/CN=" + common_name + "/O=troupe-test",
               "extendedKeyUsage=clientAuth\n");
}

CertificateFiles TestCa::issue(const std::string& name, const std::string& subject,
                               const std::string& extensions) const {
  const std::string stem = (dir_ / (name_ + "-" + name)).string();
  CertificateFiles files{stem + ".crt", stem + ".key"};
  std::ofstream(stem + ".ext") << extensions;
  std::vector<std::string> request = {"req"};
  request.insert(request.end(), kEcKey.begin(), kEcKey.end());
  request.insert(request.end(),
                 {"-keyout", files.key.string(), "-out", stem + ".csr", "-subj", subject});
  openssl(request);
  openssl({"x509", "-req", "-in", stem + ".csr", "-CA", cert_.string(), "-CAkey", key_.string(),
           "-CAcreateserial", "-out", files.cert.string(), "-days", "2", "-extfile",
           stem + ".ext"});
  return files;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::shared_ptr<grpc::ChannelCredentials> tls_credentials(const std::filesystem::path& ca,
                                                          const CertificateFiles* client) {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = read_file(ca);
  if (client != nullptr) {
    options.pem_cert_chain = read_file(client->cert);
    options.pem_private_key = read_file(client->key);
  }
  return grpc::SslCredentials(options);
}

}  // namespace troupe::test
