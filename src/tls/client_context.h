// TLS to upstreams, made real: one OpenSSL 3 client context per upstream with `tls:`, built at
// config load and shared by every worker (immutable; SSL_new on a shared SSL_CTX is thread-safe).
// It verifies the upstream's chain against a CA file or the system store, and each session sends
// SNI and checks the certificate's name (RFC 6125) for the name it was made for.
#pragma once

#include <memory>
#include <string>
#include <string_view>

struct ssl_st;
struct ssl_ctx_st;
struct ssl_session_st;

namespace gatehouse::tls {

struct ClientSettings {
  std::string ca_file;      // PEM bundle; empty: the system store (SSL_CERT_FILE/SSL_CERT_DIR)
  std::string server_name;  // empty: each target's own host
  bool verify = true;       // false: any certificate is accepted (tests and labs only)
  int min_version = 12;     // 12 = TLS 1.2, 13 = TLS 1.3
  bool http2 = false;       // ALPN offers "h2" alone; else "http/1.1"
};

// A session to resume (TLS 1.2 session or TLS 1.3 ticket), owned.
struct SessionFree {
  void operator()(ssl_session_st* s) const;
};
using SessionPtr = std::unique_ptr<ssl_session_st, SessionFree>;

// True for an IPv4 or IPv6 literal (no brackets).
bool is_ip_literal(std::string_view host);
// A name usable as `server_name`: an IP literal, or a DNS name (letters, digits, '-', '_', '.').
bool valid_server_name(std::string_view name);

class ClientContext {
 public:
  // Loads the CA file (or the system store); on failure returns null and says why in *error.
  static std::shared_ptr<const ClientContext> create(const ClientSettings& settings,
                                                     std::string* error);
  ~ClientContext();
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

  // The name to send and check for a target whose address was written with `target_host`:
  // the configured server_name, else that host.
  std::string_view server_name_for(std::string_view target_host) const {
    return settings_.server_name.empty() ? target_host : std::string_view(settings_.server_name);
  }
  // A new client-side session for one connection (SSL_free it), or null when OpenSSL is out of
  // memory. A DNS name is sent as SNI and checked against the certificate; an IP literal is not
  // sent (RFC 6066 3 forbids it in SNI) and is checked against the certificate's IP addresses.
  ssl_st* new_session(std::string_view server_name) const;

  const ClientSettings& settings() const { return settings_; }
  // What connections made with this context were checked against: the settings and a digest of
  // the CA file. Pools keep their connections across a reload only while it is unchanged.
  const std::string& identity() const { return identity_; }

 private:
  ClientContext() = default;
  ssl_ctx_st* ctx_ = nullptr;
  ClientSettings settings_;
  std::string identity_;
};

}  // namespace gatehouse::tls
