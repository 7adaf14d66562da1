// The server side of TLS: what ServerContext::create accepts and refuses, and what its sessions
// negotiate with real OpenSSL clients over an in-memory BIO pair (no sockets, no gateway): the
// protocol floor, the TLS 1.2 cipher policy, certificate choice by SNI, ALPN, renegotiation and
// resumption. Where a client is refused, a permissive server (plain OpenSSL, every protocol and
// cipher allowed) first accepts the same client, so the refusal is the context's doing and not a
// client that could never connect.
#include "tls/server_context.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "self_signed.h"

namespace gatehouse::tls {
namespace {

namespace fs = std::filesystem;

// A temporary directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "gatehouse-tls-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

enum class KeyType { kEc, kRsa };

// A new key; RSA keys are slow to make, so every RSA certificate of the process shares one.
EVP_PKEY* new_key(KeyType type) {
  if (type == KeyType::kEc) return EVP_EC_gen("P-256");
  static EVP_PKEY* rsa = EVP_RSA_gen(2048);
  EVP_PKEY_up_ref(rsa);
  return rsa;
}

void write_key(const std::string& path, EVP_PKEY* key) {
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_TRUE(f) << path;
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
}

// A self-signed certificate and its key as PEM files NAME.pem and NAME.key in `dir`; `sans` in
// OpenSSL's syntax ("DNS:a.example,IP:10.0.0.1"), none when empty.
struct CertFiles {
  std::string cert, key;
};
CertFiles make_cert(const TempDir& dir, const std::string& name, const std::string& cn,
                    const std::string& sans, KeyType type = KeyType::kEc) {
  CertFiles out{dir.file(name + ".pem"), dir.file(name + ".key")};
  EVP_PKEY* key = new_key(type);
  EXPECT_TRUE(write_self_signed(out.cert, key, cn, sans)) << sans;
  write_key(out.key, key);
  EVP_PKEY_free(key);
  return out;
}

ServerSettings settings(std::vector<CertFiles> certs, int min_version = 12,
                        std::vector<std::string> alpn = {"http/1.1"}) {
  ServerSettings s;
  for (auto& c : certs) s.certificates.push_back({c.cert, c.key});
  s.min_version = min_version;
  s.alpn = std::move(alpn);
  return s;
}

std::shared_ptr<const ServerContext> create(const ServerSettings& s, std::string* error) {
  error->clear();
  auto ctx = ServerContext::create(s, error);
  EXPECT_EQ(ctx == nullptr, !error->empty()) << "an error exactly when there is no context";
  return ctx;
}

// What a test client offers.
struct ClientOffer {
  int min_version = 0, max_version = 0;  // TLS1_2_VERSION...; 0: the library's range
  std::string ciphers;                   // TLS 1.2 and below; empty: the library's default
  std::vector<std::string> alpn;         // in the client's order; empty: no ALPN extension
  std::string sni;                       // empty: no SNI
  bool tickets = true;                   // false: TLS 1.2 resumption by session id only
  SSL_SESSION* session = nullptr;        // to resume
};

using SslPtr = std::unique_ptr<SSL, decltype(&SSL_free)>;
using CtxPtr = std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)>;

// One handshake between a client built from an offer and a server session, through a BIO pair.
class Handshake {
 public:
  Handshake(const ClientOffer& offer, SSL* server)
      : client_ctx_(SSL_CTX_new(TLS_client_method()), SSL_CTX_free),
        client_(nullptr, SSL_free),
        server_(server, SSL_free) {
    SSL_CTX* c = client_ctx_.get();
    // The client accepts what it is asked to offer, however weak: the server must refuse it.
    SSL_CTX_set_security_level(c, 0);
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_min_proto_version(c, offer.min_version ? offer.min_version : TLS1_VERSION);
    SSL_CTX_set_max_proto_version(c, offer.max_version);
    if (!offer.ciphers.empty()) {
      EXPECT_EQ(SSL_CTX_set_cipher_list(c, (offer.ciphers + ":@SECLEVEL=0").c_str()), 1)
          << offer.ciphers;
    }
    if (!offer.tickets) SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
    if (!offer.alpn.empty()) {
      std::vector<unsigned char> wire;
      for (const auto& p : offer.alpn) {
        wire.push_back(static_cast<unsigned char>(p.size()));
        wire.insert(wire.end(), p.begin(), p.end());
      }
      SSL_CTX_set_alpn_protos(c, wire.data(), static_cast<unsigned>(wire.size()));
    }
    client_.reset(SSL_new(c));
    if (!offer.sni.empty()) SSL_set_tlsext_host_name(client_.get(), offer.sni.c_str());
    if (offer.session) SSL_set_session(client_.get(), offer.session);
    BIO *cb = nullptr, *sb = nullptr;
    BIO_new_bio_pair(&cb, 0, &sb, 0);
    SSL_set_bio(client_.get(), cb, cb);
    SSL_set_bio(server_.get(), sb, sb);
    SSL_set_connect_state(client_.get());
    SSL_set_accept_state(server_.get());
    ok_ = run();
  }

  bool ok() const { return ok_; }
  // Why each side failed ("" when it did not): OpenSSL's reason string.
  const std::string& client_error() const { return client_error_; }
  const std::string& server_error() const { return server_error_; }
  SSL* client() const { return client_.get(); }
  SSL* server() const { return server_.get(); }

  std::string version() const { return SSL_get_version(client_.get()); }
  std::string cipher() const { return SSL_CIPHER_get_name(SSL_get_current_cipher(client_.get())); }
  std::string alpn() const {
    const unsigned char* p = nullptr;
    unsigned int n = 0;
    SSL_get0_alpn_selected(client_.get(), &p, &n);
    return std::string(reinterpret_cast<const char*>(p), n);
  }
  // The CN of the certificate the server presented.
  std::string peer_cn() const {
    X509* x = SSL_get0_peer_certificate(client_.get());
    if (!x) return "";
    char cn[256] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
    return cn;
  }
  bool resumed() const { return SSL_session_reused(client_.get()) == 1; }

  // Application data one way and back, so that the client also reads what the server sent after
  // the handshake (TLS 1.3 session tickets).
  bool exchange() {
    const char ping[] = "ping";
    char buf[16];
    if (SSL_write(client_.get(), ping, 4) != 4) return false;
    if (SSL_read(server_.get(), buf, sizeof buf) != 4) return false;
    if (SSL_write(server_.get(), buf, 4) != 4) return false;
    return SSL_read(client_.get(), buf, sizeof buf) == 4 && std::string(buf, 4) == "ping";
  }

  // Both sides send close_notify. (OpenSSL forgets the session of a connection freed without it.)
  void close() {
    SSL_shutdown(client_.get());
    SSL_shutdown(server_.get());
  }

  // Steps both sides until each has finished or one has failed (and the other has read its alert).
  // A step that neither finishes nor wants I/O is a failure.
  bool run() {
    bool client_done = false, server_done = false;
    for (int i = 0; i < 32 && !(client_done && server_done); ++i) {
      if (!client_done && !step(client_.get(), &client_done, &client_error_)) {
        step(server_.get(), &server_done, &server_error_);
        return false;
      }
      if (!server_done && !step(server_.get(), &server_done, &server_error_)) {
        step(client_.get(), &client_done, &client_error_);
        return false;
      }
    }
    return client_done && server_done;
  }

 private:
  static bool step(SSL* ssl, bool* done, std::string* error) {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl);
    if (r == 1) {
      *done = true;
      return true;
    }
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return true;
    unsigned long code = ERR_peek_error();
    const char* reason = code ? ERR_reason_error_string(code) : nullptr;
    *error = reason ? reason : "error " + std::to_string(e);
    ERR_clear_error();
    return false;
  }

  CtxPtr client_ctx_;
  SslPtr client_;
  SslPtr server_;
  std::string client_error_, server_error_;
  bool ok_ = false;
};

// A server that allows every protocol and cipher OpenSSL has: the control for refusals.
CtxPtr permissive_server(const CertFiles& files) {
  CtxPtr ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  SSL_CTX_set_security_level(ctx.get(), 0);
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_VERSION);
  SSL_CTX_set_cipher_list(ctx.get(), "ALL:COMPLEMENTOFALL:@SECLEVEL=0");  // eNULL too
  SSL_CTX_set_dh_auto(ctx.get(), 1);                                      // for DHE
  EXPECT_EQ(SSL_CTX_use_certificate_chain_file(ctx.get(), files.cert.c_str()), 1);
  EXPECT_EQ(SSL_CTX_use_PrivateKey_file(ctx.get(), files.key.c_str(), SSL_FILETYPE_PEM), 1);
  return ctx;
}

// --- configuration -----------------------------------------------------------------------------

TEST(ServerContextConfig, AtLeastOneCertificate) {
  std::string error;
  EXPECT_FALSE(create(settings({}), &error));
  EXPECT_EQ(error, "at least one certificate is required");
}

TEST(ServerContextConfig, UnreadableOrInvalidCertificate) {
  TempDir dir;
  auto good = make_cert(dir, "good", "good.example", "DNS:good.example");
  std::string error;

  EXPECT_FALSE(create(settings({{"/nonexistent/c.pem", good.key}}), &error));
  EXPECT_EQ(error.rfind("cannot use the certificate /nonexistent/c.pem: ", 0), 0u) << error;

  std::ofstream(dir.file("junk.pem")) << "not a certificate\n";
  EXPECT_FALSE(create(settings({{dir.file("junk.pem"), good.key}}), &error));
  EXPECT_EQ(error.rfind("cannot use the certificate " + dir.file("junk.pem") + ": ", 0), 0u)
      << error;

  // A key where the certificate should be.
  EXPECT_FALSE(create(settings({{good.key, good.key}}), &error));
  EXPECT_EQ(error.rfind("cannot use the certificate " + good.key + ": ", 0), 0u) << error;

  EXPECT_TRUE(create(settings({good}), &error)) << error;
}

TEST(ServerContextConfig, UnreadableOrInvalidKey) {
  TempDir dir;
  auto good = make_cert(dir, "good", "good.example", "DNS:good.example");
  std::string error;

  EXPECT_FALSE(create(settings({{good.cert, "/nonexistent/k.pem"}}), &error));
  EXPECT_EQ(error.rfind("cannot use the private key /nonexistent/k.pem: ", 0), 0u) << error;

  // A certificate where the key should be.
  EXPECT_FALSE(create(settings({{good.cert, good.cert}}), &error));
  EXPECT_EQ(error.rfind("cannot use the private key " + good.cert + ": ", 0), 0u) << error;
}

TEST(ServerContextConfig, KeyThatDoesNotMatchTheCertificate) {
  TempDir dir;
  auto a = make_cert(dir, "a", "a.example", "DNS:a.example");
  auto b = make_cert(dir, "b", "b.example", "DNS:b.example");
  auto rsa = make_cert(dir, "rsa", "rsa.example", "DNS:rsa.example", KeyType::kRsa);
  std::string error;
  // Another key of the same type (OpenSSL refuses it while loading it)...
  EXPECT_FALSE(create(settings({{a.cert, b.key}}), &error));
  EXPECT_EQ(error, "the private key " + b.key + " does not match the certificate " + a.cert);
  // ...and a key of another type (loaded beside the certificate, refused by the check after).
  EXPECT_FALSE(create(settings({{a.cert, rsa.key}}), &error));
  EXPECT_EQ(error, "the private key " + rsa.key + " does not match the certificate " + a.cert);
  EXPECT_FALSE(create(settings({{rsa.cert, a.key}}), &error));
  EXPECT_EQ(error, "the private key " + a.key + " does not match the certificate " + rsa.cert);
}

TEST(ServerContextConfig, OneBadCertificateFailsTheWholeContext) {
  TempDir dir;
  auto a = make_cert(dir, "a", "a.example", "DNS:a.example");
  auto b = make_cert(dir, "b", "b.example", "DNS:b.example");
  std::string error;
  EXPECT_FALSE(create(settings({a, {b.cert, a.key}}), &error));
  EXPECT_EQ(error, "the private key " + a.key + " does not match the certificate " + b.cert);
  EXPECT_TRUE(create(settings({a, b}), &error)) << error;
}

TEST(ServerContextConfig, NamesFromSubjectAltNamesElseTheCommonName) {
  TempDir dir;
  auto sans = make_cert(dir, "sans", "Ignored.Example",
                        "DNS:API.Example.com,IP:10.0.0.1,DNS:*.Apps.Example.com");
  auto cn_only = make_cert(dir, "cn", "Legacy.Example", "");
  auto ip_only = make_cert(dir, "ip", "Ip-Cn.Example", "IP:10.0.0.2");
  std::string error;
  auto ctx = create(settings({sans, cn_only, ip_only}), &error);
  ASSERT_TRUE(ctx) << error;
  using Names = std::vector<std::vector<std::string>>;
  // Lower case, IP addresses left out; the CN counts only when no DNS name is given.
  EXPECT_EQ(
      ctx->names(),
      (Names{{"api.example.com", "*.apps.example.com"}, {"legacy.example"}, {"ip-cn.example"}}));
}

// --- protocol versions -------------------------------------------------------------------------

TEST(ServerContextVersions, DefaultFloorIsTls12AndTls13IsPreferred) {
  TempDir dir;
  auto cert = make_cert(dir, "s", "s.example", "DNS:s.example");
  std::string error;
  auto ctx = create(settings({cert}), &error);
  ASSERT_TRUE(ctx) << error;

  Handshake any({}, ctx->new_session());
  ASSERT_TRUE(any.ok()) << any.client_error() << " / " << any.server_error();
  EXPECT_EQ(any.version(), "TLSv1.3");

  Handshake tls12({.max_version = TLS1_2_VERSION}, ctx->new_session());
  ASSERT_TRUE(tls12.ok()) << tls12.client_error() << " / " << tls12.server_error();
  EXPECT_EQ(tls12.version(), "TLSv1.2");
}

TEST(ServerContextVersions, MinVersion13RefusesATls12Client) {
  TempDir dir;
  auto cert = make_cert(dir, "s", "s.example", "DNS:s.example");
  std::string error;
  auto ctx = create(settings({cert}, 13), &error);
  ASSERT_TRUE(ctx) << error;

  Handshake tls12({.max_version = TLS1_2_VERSION}, ctx->new_session());
  EXPECT_FALSE(tls12.ok());
  EXPECT_EQ(tls12.server_error(), "unsupported protocol");

  Handshake tls13({.min_version = TLS1_3_VERSION}, ctx->new_session());
  ASSERT_TRUE(tls13.ok()) << tls13.client_error() << " / " << tls13.server_error();
  EXPECT_EQ(tls13.version(), "TLSv1.3");
}

// TLS 1.0 and 1.1 are refused whatever min_version says (below 13 it means TLS 1.2): the floor
// cannot be configured lower, even by a value the config loader would refuse.
TEST(ServerContextVersions, Tls10And11ClientsAreRefused) {
  TempDir dir;
  for (KeyType type : {KeyType::kEc, KeyType::kRsa}) {
    auto cert = make_cert(dir, "s", "s.example", "DNS:s.example", type);
    for (int old : {TLS1_VERSION, TLS1_1_VERSION}) {
      ClientOffer offer{.min_version = old, .max_version = old, .ciphers = "ALL"};
      {
        auto control = permissive_server(cert);
        Handshake h(offer, SSL_new(control.get()));
        ASSERT_TRUE(h.ok()) << "the control server must accept the client: " << h.client_error()
                            << " / " << h.server_error();
      }
      for (int min_version : {10, 11, 12, 13}) {
        std::string error;
        auto ctx = create(settings({cert}, min_version), &error);
        ASSERT_TRUE(ctx) << error;
        Handshake h(offer, ctx->new_session());
        EXPECT_FALSE(h.ok()) << "version " << std::hex << old << ", min_version " << std::dec
                             << min_version << ": " << h.version();
        EXPECT_EQ(h.server_error(), "unsupported protocol");
      }
    }
  }
}

// --- the TLS 1.2 cipher policy ------------------------------------------------------------------

// Each of the six suites of the policy is accepted on its own, with a certificate of its type.
TEST(ServerContextCiphers, EveryEcdheAeadSuiteIsAccepted) {
  TempDir dir;
  auto ec = make_cert(dir, "ec", "ec.example", "DNS:ec.example");
  auto rsa = make_cert(dir, "rsa", "rsa.example", "DNS:rsa.example", KeyType::kRsa);
  std::string error;
  auto ec_ctx = create(settings({ec}), &error);
  auto rsa_ctx = create(settings({rsa}), &error);
  ASSERT_TRUE(ec_ctx && rsa_ctx) << error;
  for (const char* suite : {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                            "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-AES128-GCM-SHA256",
                            "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305"}) {
    const auto& ctx = std::string(suite).starts_with("ECDHE-ECDSA") ? ec_ctx : rsa_ctx;
    Handshake h({.max_version = TLS1_2_VERSION, .ciphers = suite}, ctx->new_session());
    ASSERT_TRUE(h.ok()) << suite << ": " << h.client_error() << " / " << h.server_error();
    EXPECT_EQ(h.cipher(), suite);
  }
}

// A TLS 1.2 client that offers only suites outside the policy: CBC modes, static RSA key exchange
// (no forward secrecy), finite-field DHE, no encryption at all. (3DES would be next, but this
// OpenSSL is built without it: neither side can even offer it.)
TEST(ServerContextCiphers, SuitesOutsideThePolicyAreRefused) {
  TempDir dir;
  auto ec = make_cert(dir, "ec", "ec.example", "DNS:ec.example");
  auto rsa = make_cert(dir, "rsa", "rsa.example", "DNS:rsa.example", KeyType::kRsa);
  struct Case {
    const char* suites;
    const CertFiles* cert;
  };
  for (const Case& c : {Case{"ECDHE-RSA-AES128-SHA", &rsa}, Case{"ECDHE-RSA-AES256-SHA384", &rsa},
                        Case{"ECDHE-ECDSA-AES128-SHA256", &ec}, Case{"AES128-GCM-SHA256", &rsa},
                        Case{"AES256-SHA", &rsa}, Case{"DHE-RSA-AES128-GCM-SHA256", &rsa},
                        Case{"ECDHE-RSA-NULL-SHA", &rsa}, Case{"ECDHE-ECDSA-NULL-SHA", &ec}}) {
    ClientOffer offer{.max_version = TLS1_2_VERSION, .ciphers = c.suites};
    {
      auto control = permissive_server(*c.cert);
      Handshake h(offer, SSL_new(control.get()));
      ASSERT_TRUE(h.ok()) << c.suites
                          << ": the control server must accept the client: " << h.client_error()
                          << " / " << h.server_error();
      ASSERT_EQ(h.cipher(), c.suites);
    }
    std::string error;
    auto ctx = create(settings({*c.cert}), &error);
    ASSERT_TRUE(ctx) << error;
    Handshake h(offer, ctx->new_session());
    EXPECT_FALSE(h.ok()) << c.suites << " was accepted: " << h.cipher();
    EXPECT_EQ(h.server_error(), "no shared cipher") << c.suites;
  }
}

// The server's order decides (AES-GCM before ChaCha20), whatever the client prefers.
TEST(ServerContextCiphers, TheServerOrderDecides) {
  TempDir dir;
  auto rsa = make_cert(dir, "rsa", "rsa.example", "DNS:rsa.example", KeyType::kRsa);
  std::string error;
  auto ctx = create(settings({rsa}), &error);
  ASSERT_TRUE(ctx) << error;
  Handshake h({.max_version = TLS1_2_VERSION,
               .ciphers = "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384:"
                          "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-SHA"},
              ctx->new_session());
  ASSERT_TRUE(h.ok()) << h.client_error() << " / " << h.server_error();
  EXPECT_EQ(h.cipher(), "ECDHE-RSA-AES128-GCM-SHA256");
}

// --- certificates by SNI ------------------------------------------------------------------------

TEST(ServerContextSni, TheCertificateIsChosenByServerName) {
  TempDir dir;
  auto fallback = make_cert(dir, "default", "default.example", "DNS:default.example");
  auto exact = make_cert(dir, "exact", "exact", "DNS:a.example,DNS:www.a.example");
  auto wildcard = make_cert(dir, "wildcard", "wildcard", "DNS:*.b.example");
  auto legacy = make_cert(dir, "legacy", "c.example", "");  // its CN is its name
  std::string error;
  auto ctx = create(settings({fallback, exact, wildcard, legacy}), &error);
  ASSERT_TRUE(ctx) << error;

  struct Case {
    std::string sni, cn;
  };
  const std::vector<Case> cases = {
      {"a.example", "exact"},
      {"www.a.example", "exact"},
      {"A.Example", "exact"},                // names are case-insensitive
      {"x.b.example", "wildcard"},           // the '*' stands for one label,
      {"X-Y.B.EXAMPLE", "wildcard"},         // in any case,
      {"y.x.b.example", "default.example"},  // not two
      {"b.example", "default.example"},      // nor none
      {"c.example", "c.example"},            // the CN, without SANs
      {"unknown.example", "default.example"},
      {"", "default.example"},  // no SNI
  };
  for (const Case& c : cases) {
    Handshake h({.sni = c.sni}, ctx->new_session());
    ASSERT_TRUE(h.ok()) << c.sni << ": " << h.client_error() << " / " << h.server_error();
    EXPECT_EQ(h.peer_cn(), c.cn) << "SNI '" << c.sni << "'";
  }
}

// The first certificate that names the host wins; the rest of the policy (versions, ciphers,
// ALPN) holds on a connection moved to another certificate's context.
TEST(ServerContextSni, TheFirstMatchWinsAndThePolicyFollows) {
  TempDir dir;
  auto fallback = make_cert(dir, "default", "default.example", "DNS:default.example");
  auto first = make_cert(dir, "first", "first", "DNS:*.a.example", KeyType::kRsa);
  auto second = make_cert(dir, "second", "second", "DNS:api.a.example", KeyType::kRsa);
  std::string error;
  auto ctx = create(settings({fallback, first, second}, 12, {"h2", "http/1.1"}), &error);
  ASSERT_TRUE(ctx) << error;

  Handshake h({.alpn = {"http/1.1", "h2"}, .sni = "api.a.example"}, ctx->new_session());
  ASSERT_TRUE(h.ok()) << h.client_error() << " / " << h.server_error();
  EXPECT_EQ(h.peer_cn(), "first");
  EXPECT_EQ(h.alpn(), "h2");

  Handshake weak(
      {.max_version = TLS1_2_VERSION, .ciphers = "ECDHE-RSA-AES128-SHA", .sni = "api.a.example"},
      ctx->new_session());
  EXPECT_FALSE(weak.ok()) << weak.cipher();
}

// --- ALPN ---------------------------------------------------------------------------------------

TEST(ServerContextAlpn, TheServerPreferenceAmongWhatTheClientOffers) {
  TempDir dir;
  auto cert = make_cert(dir, "s", "s.example", "DNS:s.example");
  std::string error;
  auto only_h1 = create(settings({cert}), &error);
  auto both = create(settings({cert}, 12, {"h2", "http/1.1"}), &error);
  ASSERT_TRUE(only_h1 && both) << error;

  struct Case {
    const std::shared_ptr<const ServerContext>* ctx;
    std::vector<std::string> offer;
    std::string selected;
  };
  for (const Case& c :
       {Case{&only_h1, {"h2", "http/1.1"}, "http/1.1"}, Case{&only_h1, {"http/1.1"}, "http/1.1"},
        Case{&both, {"http/1.1", "h2"}, "h2"}, Case{&both, {"http/1.1"}, "http/1.1"},
        Case{&both, {"spdy/3", "http/1.1"}, "http/1.1"},
        Case{&both, {}, ""}}) {  // no ALPN: none selected, no failure
    Handshake h({.alpn = c.offer}, (*c.ctx)->new_session());
    ASSERT_TRUE(h.ok()) << h.client_error() << " / " << h.server_error();
    EXPECT_EQ(h.alpn(), c.selected) << testing::PrintToString(c.offer);
  }
}

// RFC 7301 3.2: a client whose protocols the server has none of gets no_application_protocol.
TEST(ServerContextAlpn, NoCommonProtocolFailsTheHandshake) {
  TempDir dir;
  auto cert = make_cert(dir, "s", "s.example", "DNS:s.example");
  std::string error;
  auto ctx = create(settings({cert}), &error);
  ASSERT_TRUE(ctx) << error;
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    Handshake h({.min_version = version, .max_version = version, .alpn = {"h2", "spdy/3"}},
                ctx->new_session());
    EXPECT_FALSE(h.ok());
    EXPECT_EQ(h.client_error(), "tlsv1 alert no application protocol");
  }
}

// --- renegotiation and resumption ----------------------------------------------------------------

// No second handshake on a TLS 1.2 connection (SSL_OP_NO_RENEGOTIATION): the server starts none,
// and a client asking for one is refused.
TEST(ServerContextSessions, RenegotiationIsRefused) {
  TempDir dir;
  auto cert = make_cert(dir, "s", "s.example", "DNS:s.example");
  std::string error;
  auto ctx = create(settings({cert}), &error);
  ASSERT_TRUE(ctx) << error;
  Handshake h({.max_version = TLS1_2_VERSION}, ctx->new_session());
  ASSERT_TRUE(h.ok()) << h.client_error() << " / " << h.server_error();
  EXPECT_EQ(SSL_renegotiate(h.server()), 0);
  EXPECT_EQ(ERR_GET_REASON(ERR_peek_error()), SSL_R_NO_RENEGOTIATION);
  ERR_clear_error();

  ASSERT_EQ(SSL_renegotiate(h.client()), 1);
  // The client sends a new ClientHello; the server reads it and answers no_renegotiation.
  char buf[1];
  EXPECT_EQ(SSL_do_handshake(h.client()), -1);
  EXPECT_EQ(SSL_get_error(h.client(), -1), SSL_ERROR_WANT_READ);
  EXPECT_EQ(SSL_read(h.server(), buf, sizeof buf), -1);
  EXPECT_EQ(SSL_get_error(h.server(), -1), SSL_ERROR_WANT_READ) << "the connection goes on";
  ERR_clear_error();
  EXPECT_EQ(SSL_do_handshake(h.client()), -1);
  EXPECT_EQ(SSL_get_error(h.client(), -1), SSL_ERROR_SSL);
  EXPECT_EQ(ERR_GET_REASON(ERR_peek_error()), SSL_R_NO_RENEGOTIATION)
      << ERR_reason_error_string(ERR_peek_error());
  ERR_clear_error();
}

TEST(ServerContextSessions, ResumptionWithTicketsAndSessionIds) {
  TempDir dir;
  auto cert = make_cert(dir, "s", "s.example", "DNS:s.example");
  std::string error;
  auto ctx = create(settings({cert}), &error);
  ASSERT_TRUE(ctx) << error;
  struct Case {
    int version;
    bool tickets;
  };
  for (const Case& c : {Case{TLS1_3_VERSION, true}, Case{TLS1_2_VERSION, true},
                        Case{TLS1_2_VERSION, false}}) {  // the server-side session cache
    SCOPED_TRACE(std::to_string(c.version) + (c.tickets ? " tickets" : " session id"));
    ClientOffer offer{.min_version = c.version, .max_version = c.version, .tickets = c.tickets};
    SSL_SESSION* session = nullptr;
    {
      Handshake first(offer, ctx->new_session());
      ASSERT_TRUE(first.ok()) << first.client_error() << " / " << first.server_error();
      EXPECT_FALSE(first.resumed());
      ASSERT_TRUE(first.exchange());
      session = SSL_get1_session(first.client());
      ASSERT_TRUE(session);
      first.close();
    }
    ASSERT_EQ(SSL_SESSION_is_resumable(session), 1);
    offer.session = session;
    Handshake second(offer, ctx->new_session());
    ASSERT_TRUE(second.ok()) << second.client_error() << " / " << second.server_error();
    EXPECT_TRUE(second.resumed());
    SSL_SESSION_free(session);
  }
}

// A new context (a reload) has its own ticket keys and cache: a session of the old one starts
// afresh.
TEST(ServerContextSessions, ANewContextDoesNotResumeTheOldOnesSessions) {
  TempDir dir;
  auto cert = make_cert(dir, "s", "s.example", "DNS:s.example");
  std::string error;
  auto old_ctx = create(settings({cert}), &error);
  auto new_ctx = create(settings({cert}), &error);
  ASSERT_TRUE(old_ctx && new_ctx) << error;
  for (bool tickets : {true, false}) {
    ClientOffer offer{.max_version = TLS1_2_VERSION, .tickets = tickets};
    Handshake first(offer, old_ctx->new_session());
    ASSERT_TRUE(first.ok() && first.exchange());
    offer.session = SSL_get1_session(first.client());
    Handshake same(offer, old_ctx->new_session());
    ASSERT_TRUE(same.ok());
    EXPECT_TRUE(same.resumed()) << "tickets " << tickets;
    Handshake other(offer, new_ctx->new_session());
    ASSERT_TRUE(other.ok());
    EXPECT_FALSE(other.resumed()) << "tickets " << tickets;
    SSL_SESSION_free(offer.session);
  }
}

}  // namespace
}  // namespace gatehouse::tls
