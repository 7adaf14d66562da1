// jwt_auth's own logic over the verification core: the per-worker token cache must never admit
// what a fresh verification would refuse.
#include "filters/jwt_auth/jwt_auth.h"

#include <gtest/gtest.h>
#include <openssl/hmac.h>

#include <string>

namespace gatehouse::filters {
namespace {

const std::string kSecret(40, 's');

std::string b64url(std::string_view in) {
  static const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += abc[(v >> s) & 63];
  }
  if (in.size() - i == 1) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += abc[(v >> 18) & 63];
    out += abc[(v >> 12) & 63];
  } else if (in.size() - i == 2) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    for (int s = 18; s >= 6; s -= 6) out += abc[(v >> s) & 63];
  }
  return out;
}

std::string hs256(const std::string& claims, const std::string& secret = kSecret) {
  std::string input = b64url(R"({"alg":"HS256","kid":"k"})") + "." + b64url(claims);
  unsigned char mac[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return input + "." + b64url(std::string(reinterpret_cast<char*>(mac), len));
}

std::shared_ptr<JwtProvider> provider(const std::string& secret = kSecret) {
  auto p = std::make_shared<JwtProvider>();
  p->name = "test";
  p->rules.algorithms = {jwt::Alg::kHS256};
  p->consumer_claim = "sub";
  p->forward_claims = {{"sub", "x-user"}};
  p->token_from = {{TokenSource::Kind::kHeader, "authorization", true}};
  std::string error;
  jwt::KeySet set;
  set.keys.push_back(jwt::Key::hmac(secret, "k", jwt::Alg::kHS256, &error));
  p->keys = KeyStore::fixed(std::move(set));
  return p;
}

FilterStatus run(const JwtAuth& f, const std::string& bearer, RequestContext* out = nullptr) {
  http::RequestHead req;
  std::string value = "Bearer " + bearer;
  req.headers.push_back({"Authorization", value});
  RequestContext ctx;
  ctx.request = &req;
  auto status = f.on_request(ctx);
  if (out) {
    out->upstream_add = ctx.upstream_add;
    out->reply = ctx.reply;
  }
  return status;
}

TEST(JwtAuth, AdmitsAndForwardsClaims) {
  JwtAuth f(provider(), {}, {}, {});
  f.now = [] { return int64_t{1000}; };
  RequestContext got;
  ASSERT_EQ(run(f, hs256(R"({"sub":"ann","exp":2000})"), &got), FilterStatus::kContinue);
  http::HeaderList want{{"X-Consumer-Name", "ann"}, {"x-user", "ann"}};
  EXPECT_EQ(got.upstream_add, want);
  // Again: from the cache, the same answer.
  ASSERT_EQ(run(f, hs256(R"({"sub":"ann","exp":2000})"), &got), FilterStatus::kContinue);
  EXPECT_EQ(got.upstream_add, want);
}

TEST(JwtAuth, CachedTokenExpiresOnTime) {
  JwtAuth f(provider(), {}, {}, {});
  int64_t t = 1000;
  f.now = [&] { return t; };
  std::string token = hs256(R"({"sub":"ann","exp":1010})");
  EXPECT_EQ(run(f, token), FilterStatus::kContinue);
  t = 1009;
  EXPECT_EQ(run(f, token), FilterStatus::kContinue);
  t = 1010;
  RequestContext got;
  EXPECT_EQ(run(f, token, &got), FilterStatus::kRespond)
      << "exp passed: the cache must not admit it";
  EXPECT_EQ(got.reply.status, 401);
}

TEST(JwtAuth, CachedTokenIsNotAdmittedBeforeNbf) {
  JwtAuth f(provider(), {}, {}, {});
  int64_t t = 1000;
  f.now = [&] { return t; };
  std::string token = hs256(R"({"sub":"ann","nbf":1000,"exp":5000})");
  EXPECT_EQ(run(f, token), FilterStatus::kContinue);
  t = 999;  // a clock step back
  EXPECT_EQ(run(f, token), FilterStatus::kRespond);
}

TEST(JwtAuth, CacheIsPerFilterAndPerKeySet) {
  JwtAuth open(provider(), {}, {}, {});
  JwtAuth scoped(provider(), {"admin"}, {}, {});
  open.now = scoped.now = [] { return int64_t{1000}; };
  std::string token = hs256(R"({"sub":"ann","scope":"read"})");
  EXPECT_EQ(run(open, token), FilterStatus::kContinue);
  RequestContext got;
  EXPECT_EQ(run(scoped, token, &got), FilterStatus::kRespond) << "another route's rules apply";
  EXPECT_EQ(got.reply.status, 403);

  // The provider's keys change: a token verified with the old set is checked again.
  auto p = provider();
  JwtAuth f(p, {}, {}, {});
  f.now = [] { return int64_t{1000}; };
  EXPECT_EQ(run(f, token), FilterStatus::kContinue);
  std::string error;
  jwt::KeySet other;
  other.keys.push_back(jwt::Key::hmac(std::string(40, 'o'), "k", jwt::Alg::kHS256, &error));
  p->keys->set_keys(std::move(other));
  EXPECT_EQ(run(f, token), FilterStatus::kRespond);
}

}  // namespace
}  // namespace gatehouse::filters
