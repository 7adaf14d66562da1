#include "tls/client_context.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "crypto/digest.h"
#include "tls/common.h"

namespace gatehouse::tls {

void SessionFree::operator()(ssl_session_st* s) const { SSL_SESSION_free(s); }

bool is_ip_literal(std::string_view host) {
  std::string h(host);
  unsigned char buf[16];
  return inet_pton(AF_INET, h.c_str(), buf) == 1 || inet_pton(AF_INET6, h.c_str(), buf) == 1;
}

bool valid_server_name(std::string_view name) {
  if (is_ip_literal(name)) return true;
  if (name.empty() || name.size() > 253 || name.front() == '.' || name.back() == '.' ||
      name.find("..") != std::string_view::npos)
    return false;
  for (unsigned char c : name) {
    if (!(std::isalnum(c) || c == '-' || c == '_' || c == '.')) return false;
  }
  return true;
}

std::shared_ptr<const ClientContext> ClientContext::create(const ClientSettings& settings,
                                                           std::string* error) {
  std::shared_ptr<ClientContext> c(new ClientContext());
  c->settings_ = settings;
  c->identity_ = "verify=" + std::string(settings.verify ? "1" : "0") +
                 " min=" + std::to_string(settings.min_version) + " name=" + settings.server_name +
                 (settings.http2 ? " alpn=h2" : "");

  std::string ca_pem;
  if (!settings.ca_file.empty()) {
    // Read here first: a clear message for a missing or unreadable file, and the digest that
    // tells a reload whether the trust anchors changed.
    std::ifstream in(settings.ca_file, std::ios::binary);
    if (!in) {
      *error = "cannot read the CA file " + settings.ca_file + ": " + std::strerror(errno);
      return nullptr;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    ca_pem = ss.str();
    static constexpr char kHex[] = "0123456789abcdef";
    c->identity_ += " ca=";
    for (uint8_t b : crypto::sha256(ca_pem)) {
      c->identity_ += kHex[b >> 4];
      c->identity_ += kHex[b & 15];
    }
  } else {
    c->identity_ += " ca=system";
  }

  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    *error = openssl_error();
    return nullptr;
  }
  c->ctx_ = ctx;
  SSL_CTX_set_min_proto_version(ctx, settings.min_version >= 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  // Partial writes and a moving buffer: the stream retries with what is left. Idle pooled
  // connections give their buffers back.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_cipher_list(ctx, kTls12Ciphers);
  // Sessions are kept per target by the worker's pool (upstream/pool.h), not in OpenSSL's cache.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  // The protocol the upstream is configured for, alone: a server that offers both picks it
  // (RFC 7301), and one without it is refused at the handshake's end (upstream::Client).
  static const unsigned char kHttp1[] = "\x08http/1.1", kH2[] = "\x02h2";
  if (settings.http2) {
    SSL_CTX_set_alpn_protos(ctx, kH2, sizeof kH2 - 1);
  } else {
    SSL_CTX_set_alpn_protos(ctx, kHttp1, sizeof kHttp1 - 1);
  }
  SSL_CTX_set_verify(ctx, settings.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  if (!settings.ca_file.empty()) {
    if (SSL_CTX_load_verify_file(ctx, settings.ca_file.c_str()) != 1) {
      *error =
          "no usable CA certificate in " + settings.ca_file + " (expected PEM): " + openssl_error();
      return nullptr;
    }
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    *error = "cannot load the system CA store: " + openssl_error();
    return nullptr;
  }
  return c;
}

ClientContext::~ClientContext() { SSL_CTX_free(ctx_); }

ssl_st* ClientContext::new_session(std::string_view server_name) const {
  // Fail closed: verifying a chain without checking whose it is would accept any certificate
  // the CA ever signed.
  if (server_name.empty() && settings_.verify) return nullptr;
  SSL* ssl = SSL_new(ctx_);
  if (!ssl) {
    ERR_clear_error();
    return nullptr;
  }
  std::string name(server_name);
  bool ok = true;
  if (is_ip_literal(name)) {
    if (settings_.verify)
      ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) == 1;
  } else {
    ok = SSL_set_tlsext_host_name(ssl, name.c_str()) == 1;
    if (ok && settings_.verify) {
      // "*.example.com" matches one whole label, never "f*.example.com" (RFC 6125 6.4.3).
      SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      ok = SSL_set1_host(ssl, name.c_str()) == 1;
    }
  }
  if (!ok) {
    SSL_free(ssl);
    ERR_clear_error();
    return nullptr;
  }
  SSL_set_connect_state(ssl);
  return ssl;
}

}  // namespace gatehouse::tls
