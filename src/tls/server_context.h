// TLS termination settings made real: one OpenSSL 3 context per certificate, chosen per
// connection by SNI (the first certificate is the default), with the protocol floor, a modern
// cipher list for TLS 1.2 (Mozilla's "intermediate" profile; TLS 1.3 suites are all AEAD),
// ALPN, and session resumption (tickets, plus a server-side session cache). Built at config load,
// so a reload brings new certificates to new connections; immutable and shared by every worker.
#pragma once

#include <memory>
#include <string>
#include <vector>

struct ssl_st;
struct ssl_ctx_st;

namespace gatehouse::tls {

struct CertificateFiles {
  std::string cert;  // PEM: the certificate, then its chain
  std::string key;   // PEM: the private key
};

struct ServerSettings {
  std::vector<CertificateFiles> certificates;  // the first is the default
  int min_version = 12;                        // 12 = TLS 1.2, 13 = TLS 1.3
  std::vector<std::string> alpn{"http/1.1"};   // in the server's order of preference
};

class ServerContext {
 public:
  // Loads the certificates and keys; on failure returns null and says why in *error.
  static std::shared_ptr<const ServerContext> create(const ServerSettings& settings,
                                                     std::string* error);
  ~ServerContext();
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;

  // A new server-side session for one connection (SSL_free it).
  ssl_st* new_session() const;
  // The DNS names of each certificate, in order (for logs and /status).
  std::vector<std::vector<std::string>> names() const;
  // ALPN offers HTTP/2 ("h2"): the listener learns the protocol in the handshake.
  bool offers_h2() const { return offers_h2_; }

 private:
  ServerContext() = default;
  struct Cert {
    ssl_ctx_st* ctx = nullptr;
    std::vector<std::string> names;  // lower case; "*.example.com" for wildcards
  };
  static int on_servername(ssl_st* ssl, int* alert, void* arg);
  static int on_alpn(ssl_st* ssl, const unsigned char** out, unsigned char* outlen,
                     const unsigned char* in, unsigned int inlen, void* arg);
  const Cert* cert_for(std::string_view host) const;

  std::vector<Cert> certs_;
  std::vector<unsigned char> alpn_wire_;  // length-prefixed protocol names
  bool offers_h2_ = false;
};

}  // namespace gatehouse::tls
