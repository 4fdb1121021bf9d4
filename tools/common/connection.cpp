#include "tools/common/connection.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/support/client_interceptor.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "syntax/token.h"

namespace troupe::tools {
namespace {

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string trimmed(const std::string& text) {
  return std::string(syntax::trim_token(text));
}

/// Adds the bearer token to each call's initial metadata. gRPC's own call
/// credentials are refused on plaintext channels, and trouped on loopback
/// may check tokens without TLS.
class BearerToken final : public grpc::experimental::Interceptor {
 public:
  explicit BearerToken(std::string header) : header_(std::move(header)) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace("authorization", header_);
    }
    methods->Proceed();
  }

 private:
  const std::string header_;
};

class BearerTokenFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerTokenFactory(const std::string& token) : header_("Bearer " + token) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new BearerToken(header_);
  }

 private:
  const std::string header_;
};

}  // namespace

constexpr const char* kConnectionUsage =
    R"(  --tls                TLS to the daemon (implied by --ca and --cert)
  --ca FILE            PEM CA bundle that signed the daemon's certificate
                       (default: the system's trusted CAs)
  --cert FILE, --cert-key FILE
                       client certificate and its private key (mTLS)
  --token-file FILE    bearer token sent with every call; or $TROUPE_TOKEN;
                       --token TOKEN also works but shows in `ps`
)";

std::string with_connection_usage(const std::string& usage) {
  constexpr std::string_view kPlaceholder = "%CONNECTION%\n";
  std::string out = usage;
  if (const auto at = out.find(kPlaceholder); at != std::string::npos) {
    out.replace(at, kPlaceholder.size(), kConnectionUsage);
  }
  return out;
}

bool set_connection_option(ConnectionOptions& options, const std::string& name,
                           const std::string& value) {
  if (name == "--ca") {
    options.ca_file = value;
  } else if (name == "--cert") {
    options.cert_file = value;
  } else if (name == "--cert-key") {
    options.key_file = value;
  } else if (name == "--token") {
    options.token = value;
  } else if (name == "--token-file") {
    options.token_file = value;
  } else {
    return false;
  }
  return true;
}

Connection open_connection(const ConnectionOptions& options, const char* env_token) {
  Connection out;
  if (options.token) {
    out.token = trimmed(*options.token);
  } else if (!options.token_file.empty()) {
    const auto text = read_file(options.token_file);
    if (!text) {
      out.error = "cannot read --token-file " + options.token_file;
      return out;
    }
    out.token = trimmed(*text);
  } else if (env_token != nullptr) {
    out.token = trimmed(env_token);
  }
  if (options.cert_file.empty() != options.key_file.empty()) {
    out.error = "give --cert and --cert-key together (a client certificate and its key)";
    return out;
  }
  const bool tls = options.tls || !options.ca_file.empty() || !options.cert_file.empty();
  if (!tls) {
    out.credentials = grpc::InsecureChannelCredentials();
    return out;
  }
  grpc::SslCredentialsOptions ssl;
  const std::vector<std::pair<const std::string*, std::string*>> files = {
      {&options.ca_file, &ssl.pem_root_certs},
      {&options.cert_file, &ssl.pem_cert_chain},
      {&options.key_file, &ssl.pem_private_key}};
  for (const auto& [path, into] : files) {
    if (path->empty()) continue;
    auto text = read_file(*path);
    if (!text) {
      out.error = "cannot read " + *path;
      return out;
    }
    *into = std::move(*text);
  }
  out.credentials = grpc::SslCredentials(ssl);
  return out;
}

std::shared_ptr<grpc::Channel> make_channel(const std::string& address,
                                            const Connection& connection,
                                            const grpc::ChannelArguments& args) {
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  if (!connection.token.empty()) {
    interceptors.push_back(std::make_unique<BearerTokenFactory>(connection.token));
  }
  return grpc::experimental::CreateCustomChannelWithInterceptors(address, connection.credentials,
                                                                 args, std::move(interceptors));
}

}  // namespace troupe::tools
