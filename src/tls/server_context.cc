#include "tls/server_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>

#include "tls/common.h"

namespace gatehouse::tls {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// The DNS names a certificate is for: its subjectAltName dNSNames, or its CN when it has none.
std::vector<std::string> certificate_names(X509* x509) {
  std::vector<std::string> names;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x509, NID_subject_alt_name, nullptr, nullptr));
  if (sans) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans, i);
      if (n->type != GEN_DNS) continue;
      const auto* s = n->d.dNSName;
      names.push_back(lower(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                        ASN1_STRING_length(s))));
    }
    GENERAL_NAMES_free(sans);
  }
  if (names.empty()) {
    char cn[256];
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(x509), NID_commonName, cn, sizeof cn) > 0)
      names.push_back(lower(cn));
  }
  return names;
}

bool name_matches(std::string_view pattern, std::string_view host) {
  if (pattern == host) return true;
  // "*.example.com" covers exactly one more label (RFC 6125 6.4.3).
  if (!pattern.starts_with("*.")) return false;
  size_t dot = host.find('.');
  return dot != std::string_view::npos && dot > 0 && host.substr(dot) == pattern.substr(1);
}

}  // namespace

std::shared_ptr<const ServerContext> ServerContext::create(const ServerSettings& settings,
                                                           std::string* error) {
  std::shared_ptr<ServerContext> c(new ServerContext());
  for (const auto& p : settings.alpn) {
    if (p == "h2") c->offers_h2_ = true;
    c->alpn_wire_.push_back(static_cast<unsigned char>(p.size()));
    c->alpn_wire_.insert(c->alpn_wire_.end(), p.begin(), p.end());
  }
  ERR_clear_error();
  for (const auto& files : settings.certificates) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
      *error = openssl_error();
      return nullptr;
    }
    c->certs_.push_back({ctx, {}});
    SSL_CTX_set_min_proto_version(ctx,
                                  settings.min_version >= 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(
        ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    // Partial writes and a moving buffer: the connection retries with what is left.
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_cipher_list(ctx, kTls12Ciphers);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    static const unsigned char kSessionContext[] = "gatehouse";
    SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
    if (SSL_CTX_use_certificate_chain_file(ctx, files.cert.c_str()) != 1) {
      *error = "cannot use the certificate " + files.cert + ": " + openssl_error();
      return nullptr;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, files.key.c_str(), SSL_FILETYPE_PEM) != 1) {
      bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
      *error = mismatch ? "the private key " + files.key + " does not match the certificate " +
                              files.cert
                        : "cannot use the private key " + files.key + ": " + openssl_error();
      ERR_clear_error();
      return nullptr;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      *error = "the private key " + files.key + " does not match the certificate " + files.cert;
      return nullptr;
    }
    c->certs_.back().names = certificate_names(SSL_CTX_get0_certificate(ctx));
    SSL_CTX_set_tlsext_servername_callback(ctx, &ServerContext::on_servername);
    SSL_CTX_set_tlsext_servername_arg(ctx, c.get());
    SSL_CTX_set_alpn_select_cb(ctx, &ServerContext::on_alpn, c.get());
  }
  if (c->certs_.empty()) {
    *error = "at least one certificate is required";
    return nullptr;
  }
  return c;
}

ServerContext::~ServerContext() {
  for (auto& cert : certs_) SSL_CTX_free(cert.ctx);
}

ssl_st* ServerContext::new_session() const { return SSL_new(certs_.front().ctx); }

std::vector<std::vector<std::string>> ServerContext::names() const {
  std::vector<std::vector<std::string>> out;
  for (const auto& c : certs_) out.push_back(c.names);
  return out;
}

const ServerContext::Cert* ServerContext::cert_for(std::string_view host) const {
  std::string h = lower(std::string(host));
  for (const auto& c : certs_) {
    for (const auto& n : c.names) {
      if (name_matches(n, h)) return &c;
    }
  }
  return nullptr;
}

int ServerContext::on_servername(SSL* ssl, int*, void* arg) {
  const auto* self = static_cast<const ServerContext*>(arg);
  const char* host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!host) return SSL_TLSEXT_ERR_OK;  // no SNI: the default certificate
  const Cert* c = self->cert_for(host);
  if (c && c->ctx != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, c->ctx);
  return SSL_TLSEXT_ERR_OK;  // an unknown name gets the default certificate too
}

int ServerContext::on_alpn(SSL*, const unsigned char** out, unsigned char* outlen,
                           const unsigned char* in, unsigned int inlen, void* arg) {
  const auto* self = static_cast<const ServerContext*>(arg);
  unsigned char* selected = nullptr;
  // Server preference: the first of our protocols that the client offers.
  if (SSL_select_next_proto(&selected, outlen, self->alpn_wire_.data(),
                            static_cast<unsigned int>(self->alpn_wire_.size()), in,
                            inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // RFC 7301 3.2: no common protocol
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace gatehouse::tls
