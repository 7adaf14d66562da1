#include "tls/client_context.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "self_signed.h"

namespace gatehouse::tls {
namespace {

// A self-signed CA certificate in a temporary PEM file, removed with the object.
class TempCa {
 public:
  explicit TempCa(const std::string& cn) {
    path_ = (std::filesystem::temp_directory_path() /
             ("gatehouse-ca-" + std::to_string(getpid()) + "-" + cn + ".pem"))
                .string();
    EVP_PKEY* key = EVP_EC_gen("P-256");
    EXPECT_TRUE(write_self_signed(path_, key, cn)) << path_;
    EVP_PKEY_free(key);
  }
  ~TempCa() { std::filesystem::remove(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

ClientSettings settings(std::string ca_file, std::string server_name = "", bool verify = true,
                        int min_version = 12) {
  ClientSettings s;
  s.ca_file = std::move(ca_file);
  s.server_name = std::move(server_name);
  s.verify = verify;
  s.min_version = min_version;
  return s;
}

std::shared_ptr<const ClientContext> create(const ClientSettings& s, std::string* error) {
  error->clear();
  return ClientContext::create(s, error);
}

TEST(TlsClient, IpLiteralsAndServerNames) {
  EXPECT_TRUE(is_ip_literal("127.0.0.1"));
  EXPECT_TRUE(is_ip_literal("::1"));
  EXPECT_TRUE(is_ip_literal("fd00::5"));
  EXPECT_FALSE(is_ip_literal("[::1]"));
  EXPECT_FALSE(is_ip_literal("billing.internal"));
  EXPECT_FALSE(is_ip_literal("10.0.0"));

  EXPECT_TRUE(valid_server_name("billing.internal"));
  EXPECT_TRUE(valid_server_name("a-b_c.example.com"));
  EXPECT_TRUE(valid_server_name("10.0.0.5"));
  EXPECT_TRUE(valid_server_name("::1"));
  for (const char* bad : {"", "bad name", ".lead", "trail.", "a..b", "a:b", "x/y", "*.example.com"})
    EXPECT_FALSE(valid_server_name(bad)) << bad;
  EXPECT_FALSE(valid_server_name(std::string(254, 'a')));
}

TEST(TlsClient, ServerNameDefaultsToTheTargetHost) {
  std::string error;
  auto plain = create({}, &error);
  ASSERT_TRUE(plain) << error;
  EXPECT_EQ(plain->server_name_for("billing.internal"), "billing.internal");
  EXPECT_EQ(plain->server_name_for("10.0.0.5"), "10.0.0.5");
  auto named = create(settings("", "billing.internal"), &error);
  ASSERT_TRUE(named) << error;
  EXPECT_EQ(named->server_name_for("10.0.0.5"), "billing.internal");
}

TEST(TlsClient, CaFileErrors) {
  std::string error;
  EXPECT_FALSE(create(settings("/nonexistent/ca.pem"), &error));
  EXPECT_EQ(error, "cannot read the CA file /nonexistent/ca.pem: No such file or directory");

  auto junk = (std::filesystem::temp_directory_path() /
               ("gatehouse-junk-" + std::to_string(getpid()) + ".pem"))
                  .string();
  std::ofstream(junk) << "not a certificate\n";
  EXPECT_FALSE(create(settings(junk), &error));
  EXPECT_EQ(error.rfind("no usable CA certificate in " + junk, 0), 0u) << error;
  std::filesystem::remove(junk);

  TempCa ca("Unit Test CA");
  EXPECT_TRUE(create(settings(ca.path()), &error)) << error;
}

// Pools keep TLS connections across a reload only while the identity is unchanged: any setting
// that decides what a connection was checked against must change it.
TEST(TlsClient, IdentityFollowsWhatConnectionsWereCheckedAgainst) {
  TempCa a("CA A"), b("CA B");
  std::string error;
  auto id = [&](const ClientSettings& s) {
    auto c = create(s, &error);
    EXPECT_TRUE(c) << error;
    return c ? c->identity() : std::string();
  };
  const std::string base = id(settings(a.path()));
  EXPECT_EQ(base, id(settings(a.path())));
  EXPECT_NE(base, id(settings(b.path())));
  EXPECT_NE(base, id(settings("")));  // the system store
  EXPECT_NE(base, id(settings(a.path(), "", false)));
  EXPECT_NE(base, id(settings(a.path(), "", true, 13)));
  EXPECT_NE(base, id(settings(a.path(), "x.internal")));

  // The same path with other contents: other trust anchors, another identity.
  std::filesystem::copy_file(b.path(), a.path(), std::filesystem::copy_options::overwrite_existing);
  EXPECT_NE(base, id(settings(a.path())));
}

}  // namespace
}  // namespace gatehouse::tls
