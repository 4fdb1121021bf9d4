#pragma once

/// How troupectl and troupe-bench reach trouped: plaintext or TLS (with a
/// client certificate for mTLS), and a bearer token sent with every call.

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <memory>
#include <optional>
#include <string>

namespace troupe::tools {

/// The connection flags as given.
struct ConnectionOptions {
  bool tls = false;                  // --tls (implied by --ca, --cert)
  std::string ca_file;               // --ca: PEM roots; empty = the system's trusted CAs
  std::string cert_file;             // --cert: client certificate (mTLS)
  std::string key_file;              // --cert-key: its private key (--key is the job key)
  std::optional<std::string> token;  // --token (visible in ps: prefer the others)
  std::string token_file;            // --token-file
};

/// `usage` with its "%CONNECTION%" line replaced by the --help lines for
/// the flags above and TROUPE_TOKEN.
std::string with_connection_usage(const std::string& usage);

/// Takes `name` (--ca, --cert, --cert-key, --token, --token-file) with `value`;
/// false when `name` is none of them. --tls takes no value: see is_tls_flag.
bool set_connection_option(ConnectionOptions& options, const std::string& name,
                           const std::string& value);
inline bool is_tls_flag(const std::string& name) {
  return name == "--tls";
}

/// Credentials read from the files, and the token to send (empty: none).
struct Connection {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  std::string token;
  std::string error;  // set when a file cannot be read or a flag is missing
};

/// Reads the files `options` names. The token is --token, else the content
/// of --token-file, else `env_token` (TROUPE_TOKEN), without surrounding
/// whitespace.
Connection open_connection(const ConnectionOptions& options, const char* env_token);

/// A channel to `address` with the connection's credentials; every call on
/// it carries `authorization: Bearer <token>` when there is a token (also
/// over plaintext, for trouped on loopback).
std::shared_ptr<grpc::Channel> make_channel(const std::string& address,
                                            const Connection& connection,
                                            const grpc::ChannelArguments& args = {});

}  // namespace troupe::tools
