#include "filters/cache/policy.h"

#include <gtest/gtest.h>

namespace gatehouse::filters::cache {
namespace {

RequestFacts get(std::string_view cc = "", bool authorization = false) {
  return RequestFacts{"GET", http::parse_cache_control(cc), authorization};
}
ResponseFacts response(int status, std::string_view cc = "") {
  ResponseFacts r;
  r.status = status;
  r.cc = http::parse_cache_control(cc);
  return r;
}
NotStored check(const RequestFacts& q, const ResponseFacts& r) {
  return storable(q, r, false, false);
}

TEST(CachePolicy, StoresFinalResponsesWithFreshnessToGo) {
  EXPECT_EQ(check(get(), response(200, "max-age=60")), NotStored::kNone);
  EXPECT_EQ(check(get(), response(200)), NotStored::kNone) << "heuristically cacheable";
  EXPECT_EQ(check(get(), response(404)), NotStored::kNone);
  EXPECT_EQ(check(get(), response(302)), NotStored::kNoFreshness);
  EXPECT_EQ(check(get(), response(302, "max-age=5")), NotStored::kNone);
  EXPECT_EQ(check(get(), response(302, "public")), NotStored::kNone);
  EXPECT_EQ(storable(get(), response(302), false, true), NotStored::kNone) << "the route's ttl";
  auto expires = response(500);
  expires.expires = true;
  EXPECT_EQ(check(get(), expires), NotStored::kNone);
  EXPECT_EQ(check(get(), response(500)), NotStored::kNoFreshness);
}

TEST(CachePolicy, MethodsAndStatusesItDoesNotStore) {
  RequestFacts post = get();
  post.method = "POST";
  EXPECT_EQ(check(post, response(200, "max-age=60")), NotStored::kMethod);
  RequestFacts head = get();
  head.method = "HEAD";
  EXPECT_EQ(check(head, response(200, "max-age=60")), NotStored::kMethod);
  EXPECT_EQ(check(get(), response(206, "max-age=60")), NotStored::kStatus);
  EXPECT_EQ(check(get(), response(304, "max-age=60")), NotStored::kStatus);
  EXPECT_EQ(check(get(), response(103, "max-age=60")), NotStored::kStatus);
}

TEST(CachePolicy, NoStorePrivateAndMustUnderstand) {
  EXPECT_EQ(check(get(), response(200, "no-store, max-age=60")), NotStored::kNoStore);
  EXPECT_EQ(check(get("no-store"), response(200, "max-age=60")), NotStored::kNoStore);
  EXPECT_EQ(check(get(), response(200, "no-store, must-understand, max-age=60")), NotStored::kNone)
      << "RFC 9111 5.2.2.3: must-understand with a status the cache understands";
  EXPECT_EQ(check(get(), response(200, "private, max-age=60")), NotStored::kPrivate);
  EXPECT_EQ(check(get(), response(200, "private=\"x-user\", max-age=60")), NotStored::kPrivate);
  EXPECT_EQ(check(get(), response(200, "no-cache, max-age=60")), NotStored::kNone)
      << "no-cache is stored, and validated before each use";
}

// RFC 9111 3.5.
TEST(CachePolicy, RequestsWithAuthorization) {
  const auto authorized = get("", true);
  EXPECT_EQ(check(authorized, response(200, "max-age=60")), NotStored::kAuthorization);
  EXPECT_EQ(check(authorized, response(200, "public, max-age=60")), NotStored::kNone);
  EXPECT_EQ(check(authorized, response(200, "s-maxage=60")), NotStored::kNone);
  EXPECT_EQ(check(authorized, response(200, "must-revalidate, max-age=60")), NotStored::kNone);
}

TEST(CachePolicy, SetCookieAndVaryStar) {
  auto cookie = response(200, "max-age=60");
  cookie.set_cookie = true;
  EXPECT_EQ(check(get(), cookie), NotStored::kSetCookie);
  EXPECT_EQ(storable(get(), cookie, true, false), NotStored::kNone);
  auto star = response(200, "max-age=60");
  star.vary_star = true;
  EXPECT_EQ(check(get(), star), NotStored::kVaryStar);
}

http::MessageHead head_with(std::vector<std::pair<std::string_view, std::string_view>> fields) {
  http::MessageHead h;
  for (auto [n, v] : fields) h.headers.push_back({n, v});
  return h;
}

TEST(Vary, NamesLowerCasedSortedOnce) {
  auto spec = parse_vary({"Accept-Encoding, accept-language", " ACCEPT-ENCODING ,"});
  EXPECT_EQ(spec.names, (std::vector<std::string>{"accept-encoding", "accept-language"}));
  EXPECT_FALSE(spec.star);
  EXPECT_TRUE(parse_vary({"accept, *"}).star);
  EXPECT_TRUE(parse_vary({}).names.empty());
}

// RFC 9111 4.1: whitespace, combined field lines and case-insensitive values may be normalised.
TEST(Vary, RequestsThatSelectTheSameVariant) {
  auto spec = parse_vary({"Accept-Encoding, X-Tenant"});
  auto a = head_with({{"Accept-Encoding", "gzip, br"}, {"X-Tenant", "acme"}});
  auto b = head_with({{"accept-encoding", "GZIP,br"}, {"x-tenant", "acme"}});
  auto c =
      head_with({{"Accept-Encoding", "gzip"}, {"Accept-Encoding", " br "}, {"X-Tenant", "acme"}});
  EXPECT_EQ(vary_key(spec, a), vary_key(spec, b));
  EXPECT_EQ(vary_key(spec, a), vary_key(spec, c)) << "two field lines are one list";
  auto d = head_with({{"Accept-Encoding", "gzip, br"}, {"X-Tenant", "ACME"}});
  EXPECT_NE(vary_key(spec, a), vary_key(spec, d)) << "other values keep their case";
  auto e = head_with({{"Accept-Encoding", "br, gzip"}, {"X-Tenant", "acme"}});
  EXPECT_NE(vary_key(spec, a), vary_key(spec, e)) << "order is kept";
  auto absent = head_with({{"Accept-Encoding", "gzip, br"}});
  auto empty = head_with({{"Accept-Encoding", "gzip, br"}, {"X-Tenant", ""}});
  EXPECT_NE(vary_key(spec, absent), vary_key(spec, empty)) << "absent is not empty";
  EXPECT_EQ(vary_key(parse_vary({}), a), "") << "no Vary: one variant";
}

}  // namespace
}  // namespace gatehouse::filters::cache
