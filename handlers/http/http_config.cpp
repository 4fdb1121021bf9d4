// The http kind's entry in the handler registry: its keys and its reader
// from YAML (handlers/registry.h).

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

#include "config/yaml_reader.h"
#include "handlers/http/http_options.h"
#include "handlers/registry.h"

namespace troupe::handlers {
namespace {

using namespace config::detail;

/// An HTTP header name (RFC 9110 token).
bool is_header_token(std::string_view name) {
  constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
  return !name.empty() && std::all_of(name.begin(), name.end(), [&](unsigned char c) {
    return std::isalnum(c) != 0 || kExtra.find(static_cast<char>(c)) != std::string_view::npos;
  });
}

core::HandlerOptions read_http(MapReader& m) {
  core::HttpHandlerOptions h;
  if (const Field* url = m.find("url")) {
    if (auto text = read_string(m.diag(), *url)) {
      auto parsed = syntax::parse_url(*text);
      if (parsed.value) {
        h.url = std::move(*text);
      } else {
        m.diag().error(url->where(), url->path(), std::move(parsed.error));
      }
    }
  } else {
    m.diag().error(m.self().where(), m.path("url"),
                   "missing; an http handler needs the URL to send jobs to, e.g. "
                   "url: http://127.0.0.1:8080/jobs");
  }
  std::string_view method;
  if (m.choice<std::string_view>("method", method,
                                 {{"POST", "POST"},
                                  {"PUT", "PUT"},
                                  {"PATCH", "PATCH"},
                                  {"GET", "GET"},
                                  {"DELETE", "DELETE"}})) {
    h.method = std::string(method);
  }
  read_string_map(
      m, "headers", h.headers,
      [](const std::string& name) {
        return is_header_token(name) ? std::string()
                                     : "\"" + name + "\" is not a valid HTTP header name";
      },
      [](const std::string& value) {
        return value.find_first_of("\r\n") == std::string::npos
                   ? std::string()
                   : std::string("header values must not contain line breaks");
      });
  m.size("max_response", h.max_response, 1, kGiB);
  m.u32("connections_per_actor", h.connections_per_actor, {1, 64});
  read_int_list(m, "retryable_statuses", h.retryable_statuses, {100, 599});
  m.string("ca_file", h.ca_file);  // PEM bundle; empty = the system's trusted CAs
  if (m.string("signing_secret_file", h.signing_secret_file)) {
    if (auto secret = read_secret_file(m, "signing_secret_file", h.signing_secret_file)) {
      h.signing_secret = std::move(*secret);
    }
  }
  m.boolean("follow_redirects", h.follow_redirects);
  if (m.string("metadata_header_prefix", h.metadata_header_prefix) &&
      !is_header_token(h.metadata_header_prefix)) {
    m.diag().error(m.at("metadata_header_prefix"), m.path("metadata_header_prefix"),
                   "\"" + h.metadata_header_prefix +
                       "\" cannot start an HTTP header name (e.g. X-Troupe-Meta-)");
  }
  return h;
}

[[maybe_unused]] const bool http_kind_registered = handler_registry().add(
    {core::HttpHandlerOptions::kKind,
     {"url", "method", "headers", "max_response", "connections_per_actor", "retryable_statuses",
      "metadata_header_prefix", "ca_file", "signing_secret_file", "follow_redirects"},
     read_http});

}  // namespace
}  // namespace troupe::handlers
