#include "filters/key_auth/key_auth.h"

#include <gtest/gtest.h>

#include "http/message.h"

namespace gatehouse::filters {
namespace {

std::vector<config::Consumer> consumers() {
  config::Consumer app{"mobile-app", {"clients", "beta"}, {crypto::sha256("s3cret")}};
  config::Consumer partner{"partner", {}, {crypto::sha256("p-key-1"), crypto::sha256("p-key-2")}};
  return {app, partner};
}

TEST(KeyAuth, FindsTheConsumerByAnyOfItsKeys) {
  KeyAuth k("x-api-key", "", consumers());
  ASSERT_NE(k.find("s3cret"), nullptr);
  EXPECT_EQ(k.find("s3cret")->name, "mobile-app");
  EXPECT_EQ(k.find("s3cret")->groups_header, "clients, beta");
  EXPECT_EQ(k.find("p-key-2")->name, "partner");
  EXPECT_EQ(k.find("s3cret "), nullptr);
  EXPECT_EQ(k.find("S3CRET"), nullptr);
  EXPECT_EQ(k.find(""), nullptr);
}

TEST(KeyAuth, ContractExampleDigestIsSha256OfTest) {
  // examples/contract.yaml gives mobile-app the key whose SHA-256 is this.
  EXPECT_EQ(
      crypto::parse_sha256_hex("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
      crypto::sha256("test"));
  EXPECT_FALSE(crypto::parse_sha256_hex("9f86"));
  EXPECT_FALSE(crypto::parse_sha256_hex(std::string(64, 'g')));
}

TEST(KeyAuth, QueryParameterIsFoundAndDecoded) {
  EXPECT_EQ(query_param("a=1&api_key=s3%63ret&b=2", "api_key"), "s3cret");
  EXPECT_EQ(query_param("api_keyx=1&api_key=v", "api_key"), "v");
  EXPECT_EQ(query_param("a=1", "api_key"), "");
  EXPECT_EQ(query_param("", "api_key"), "");
}

TEST(KeyAuth, SuccessSetsIdentityAndHidesTheCredential) {
  KeyAuth k("x-api-key", "api_key", consumers());
  http::RequestHead req;
  req.headers.push_back({"X-Api-Key", "s3cret"});
  RequestContext ctx;
  ctx.request = &req;
  ASSERT_EQ(k.on_request(ctx), FilterStatus::kContinue);
  ASSERT_NE(ctx.consumer, nullptr);
  EXPECT_EQ(ctx.consumer->name, "mobile-app");
  EXPECT_EQ(ctx.upstream_remove, std::vector<std::string>{"x-api-key"});
  EXPECT_EQ(ctx.upstream_remove_query, std::vector<std::string>{"api_key"});
  http::HeaderList want{{"X-Consumer-Name", "mobile-app"}, {"X-Consumer-Groups", "clients, beta"}};
  EXPECT_EQ(ctx.upstream_add, want);
}

TEST(KeyAuth, MissingAndWrongKeysGetTheSame401) {
  KeyAuth k("x-api-key", "", consumers());
  http::RequestHead none, wrong;
  wrong.headers.push_back({"x-api-key", "guess"});
  std::string first_message;
  for (auto* req : {&none, &wrong}) {
    RequestContext ctx;
    ctx.request = req;
    ASSERT_EQ(k.on_request(ctx), FilterStatus::kRespond);
    EXPECT_EQ(ctx.reply.status, 401);
    EXPECT_EQ(ctx.reply.code, "unauthorized");
    ASSERT_EQ(ctx.reply.headers.size(), 1u);
    EXPECT_EQ(ctx.reply.headers[0].first, "WWW-Authenticate");
    if (first_message.empty()) first_message = ctx.reply.message;
    EXPECT_EQ(ctx.reply.message, first_message) << "no hint of what was wrong";
    EXPECT_EQ(ctx.consumer, nullptr);
  }
}

}  // namespace
}  // namespace gatehouse::filters
