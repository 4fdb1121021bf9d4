#include "config/crypto.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>

#include "syntax/hex.h"

namespace troupe::config {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Bio = std::unique_ptr<BIO, BioFree>;

Bio memory_bio(const std::string& text) {
  return Bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

/// An encrypted key is refused rather than prompted for on the terminal.
int no_password(char* /*buffer*/, int /*size*/, int /*rwflag*/, void* /*user*/) {
  return 0;
}

/// OpenSSL's reason for the last failure, and the error queue cleared.
std::string openssl_reason() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "";
  const char* reason = ERR_reason_error_string(code);
  return reason != nullptr ? std::string(" (") + reason + ")" : "";
}

}  // namespace

Sha256 sha256(std::string_view text) {
  Sha256 digest{};
  unsigned int size = 0;
  EVP_Digest(text.data(), text.size(), digest.data(), &size, EVP_sha256(), nullptr);
  return digest;
}

std::string to_hex(const Sha256& digest) {
  return syntax::to_hex(digest);
}

namespace detail {

std::string check_key_pair(const std::string& cert_pem, const std::string& key_pem) {
  const std::unique_ptr<X509, X509Free> cert(
      PEM_read_bio_X509(memory_bio(cert_pem).get(), nullptr, nullptr, nullptr));
  if (!cert) return "the certificate file holds no PEM certificate" + openssl_reason();
  const std::unique_ptr<EVP_PKEY, KeyFree> key(
      PEM_read_bio_PrivateKey(memory_bio(key_pem).get(), nullptr, no_password, nullptr));
  if (!key) {
    return "the key file holds no unencrypted PEM private key" + openssl_reason();
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return "the private key is not the certificate's";
  }
  return "";
}

std::string check_certificates(const std::string& pem) {
  const std::unique_ptr<X509, X509Free> cert(
      PEM_read_bio_X509(memory_bio(pem).get(), nullptr, nullptr, nullptr));
  if (!cert) return "holds no PEM certificate" + openssl_reason();
  return "";
}

}  // namespace detail
}  // namespace troupe::config
