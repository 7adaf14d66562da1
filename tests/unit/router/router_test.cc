#include "router/router.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/snapshot.h"
#include "http/parser.h"

namespace gatehouse::router {
namespace {

// A parsed request; owns the bytes its head points into, so it is never copied or moved.
struct Request {
  std::string data;
  http::RequestHead head;
};

std::unique_ptr<Request> make_request(const std::string& method, const std::string& target,
                                      const std::string& host = "example.com",
                                      const std::string& extra_headers = "") {
  auto r = std::make_unique<Request>();
  r->data = method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + extra_headers + "\r\n";
  http::ParseError err;
  auto status = http::parse_request_head(r->data, http::ParseLimits{}, &r->head, &err);
  EXPECT_EQ(status, http::ParseStatus::kComplete) << err.message << " for " << r->data;
  return r;
}

class RouterTest : public ::testing::Test {
 protected:
  // Loads routes (YAML list items) with upstream "app".
  void load(const std::string& routes) {
    std::string text =
        "server:\n  listen:\n    - address: 127.0.0.1:8080\n"
        "upstreams:\n  app:\n    targets: [ { address: 127.0.0.1:9001 } ]\n"
        "routes:\n" +
        routes;
    std::vector<config::ConfigError> errors;
    auto c = config::parse_config(text, "test.yaml", &errors);
    std::string dump;
    for (auto& e : errors) dump += e.to_string() + "\n";
    ASSERT_TRUE(c.has_value()) << dump;
    snap_ = config::make_snapshot(std::move(*c), 1);
  }

  // The name of the route that takes the request, "405 <allow>" or "404".
  std::string route_for(const std::string& method, const std::string& target,
                        const std::string& host = "example.com",
                        const std::string& extra_headers = "") {
    req_ = make_request(method, target, host, extra_headers);
    snap_->routes.match(req_->head, &match_);
    if (match_.route) {
      EXPECT_TRUE(match_.allow.empty());
      return match_.route->name;
    }
    return match_.allow.empty() ? "404" : "405 " + match_.allow;
  }

  std::string capture(std::string_view name) const {
    for (const auto& [n, v] : match_.captures) {
      if (n == name) return std::string(v);
    }
    return "<none>";
  }

  // The upstream target after the matched route's rewrite.
  std::string rewritten() const {
    std::string out;
    rewrite_target(*match_.route, match_.captures, req_->head.path, req_->head.query, &out);
    return out;
  }

  std::shared_ptr<const config::Snapshot> snap_;
  std::unique_ptr<Request> req_;
  Match match_;
};

TEST_F(RouterTest, ExactPath) {
  load(R"y(  - name: health
    match: { path: /health }
    to: app
)y");
  EXPECT_EQ(route_for("GET", "/health"), "health");
  EXPECT_EQ(route_for("GET", "/health?verbose=1"), "health");
  EXPECT_EQ(route_for("GET", "/health/"), "404");
  EXPECT_EQ(route_for("GET", "/healthz"), "404");
  EXPECT_EQ(route_for("GET", "/Health"), "404");
}

TEST_F(RouterTest, PrefixPath) {
  load(R"y(  - name: api
    match: { path: /api/* }
    to: app
)y");
  EXPECT_EQ(route_for("GET", "/api/products"), "api");
  EXPECT_EQ(route_for("GET", "/api/products/1/reviews"), "api");
  EXPECT_EQ(route_for("GET", "/api/"), "api");
  EXPECT_EQ(route_for("GET", "/api"), "api");
  EXPECT_EQ(route_for("GET", "/apix"), "404");
  EXPECT_EQ(route_for("GET", "/ap"), "404");
  EXPECT_EQ(route_for("GET", "/v1/api/x"), "404");
}

TEST_F(RouterTest, TemplatePathCaptures) {
  load(R"y(  - name: post
    match: { path: "/users/{id}/posts/{post}" }
    to: app
)y");
  EXPECT_EQ(route_for("GET", "/users/42/posts/abc?x=1"), "post");
  EXPECT_EQ(capture("id"), "42");
  EXPECT_EQ(capture("post"), "abc");
  EXPECT_EQ(match_.captures.size(), 2u);

  EXPECT_EQ(route_for("GET", "/users/42/posts"), "404");
  EXPECT_EQ(route_for("GET", "/users/42/posts/abc/x"), "404");
  EXPECT_EQ(route_for("GET", "/users//posts/abc"), "404");  // a parameter is never empty
  EXPECT_EQ(route_for("GET", "/users/42/comments/abc"), "404");
  EXPECT_EQ(route_for("GET", "/users/42/posts/"), "404");
}

TEST_F(RouterTest, RegexPathCaptures) {
  load(R"y(  - name: order
    match: { path_regex: "/orders/(?P<oid>[0-9]+)(/(?P<part>items|notes))?" }
    to: app
)y");
  EXPECT_EQ(route_for("POST", "/orders/123"), "order");
  EXPECT_EQ(capture("oid"), "123");
  EXPECT_EQ(capture("part"), "");
  EXPECT_EQ(route_for("POST", "/orders/9/notes"), "order");
  EXPECT_EQ(capture("oid"), "9");
  EXPECT_EQ(capture("part"), "notes");
  // Full match: no partial hits.
  EXPECT_EQ(route_for("POST", "/orders/abc"), "404");
  EXPECT_EQ(route_for("POST", "/x/orders/1"), "404");
  EXPECT_EQ(route_for("POST", "/orders/1/other"), "404");
}

TEST_F(RouterTest, HostExactIgnoresPortAndCase) {
  load(R"y(  - name: api
    match: { host: api.example.com, path: /* }
    to: app
)y");
  EXPECT_EQ(route_for("GET", "/", "api.example.com"), "api");
  EXPECT_EQ(route_for("GET", "/", "API.Example.COM"), "api");
  EXPECT_EQ(route_for("GET", "/", "api.example.com:8443"), "api");
  EXPECT_EQ(route_for("GET", "/", "api.example.com."), "api");
  EXPECT_EQ(route_for("GET", "/", "www.example.com"), "404");
  EXPECT_EQ(route_for("GET", "/", "api.example.com.evil"), "404");
  EXPECT_EQ(route_for("GET", "/", "x.api.example.com"), "404");
  // Absolute-form: the authority in the target is the host.
  EXPECT_EQ(route_for("GET", "http://api.example.com/x", "other.example.com"), "api");
}

TEST_F(RouterTest, HostWildcard) {
  load(R"y(  - name: tenants
    match: { host: "*.Example.com", path: /* }
    to: app
)y");
  EXPECT_EQ(route_for("GET", "/", "acme.example.com"), "tenants");
  EXPECT_EQ(route_for("GET", "/", "a.b.example.com:8080"), "tenants");
  EXPECT_EQ(route_for("GET", "/", "ACME.EXAMPLE.COM"), "tenants");
  EXPECT_EQ(route_for("GET", "/", "example.com"), "404");
  EXPECT_EQ(route_for("GET", "/", "badexample.com"), "404");
  EXPECT_EQ(route_for("GET", "/", "acme.example.org"), "404");
}

TEST_F(RouterTest, SeveralHosts) {
  load(R"y(  - name: both
    match: { host: [a.example.com, "*.b.example.com"], path: /* }
    to: app
)y");
  EXPECT_EQ(route_for("GET", "/", "a.example.com"), "both");
  EXPECT_EQ(route_for("GET", "/", "x.b.example.com"), "both");
  EXPECT_EQ(route_for("GET", "/", "b.example.com"), "404");
}

TEST_F(RouterTest, HeaderConditions) {
  load(R"y(  - name: exact
    match: { path: /e, headers: { X-Client: mobile } }
    to: app
  - name: regex
    match: { path: /r, headers: { x-version: { regex: "v[0-9]+" } } }
    to: app
  - name: present
    match: { path: /p, headers: { authorization: { present: true } } }
    to: app
  - name: absent
    match: { path: /a, headers: { authorization: { present: false } } }
    to: app
)y");
  EXPECT_EQ(route_for("GET", "/e", "h", "x-client: mobile\r\n"), "exact");
  EXPECT_EQ(route_for("GET", "/e", "h", "X-CLIENT: mobile\r\n"), "exact");
  EXPECT_EQ(route_for("GET", "/e", "h", "x-client: Mobile\r\n"), "404");
  EXPECT_EQ(route_for("GET", "/e", "h", "x-client: mobile-app\r\n"), "404");
  EXPECT_EQ(route_for("GET", "/e", "h"), "404");

  EXPECT_EQ(route_for("GET", "/r", "h", "X-Version: v12\r\n"), "regex");
  EXPECT_EQ(route_for("GET", "/r", "h", "X-Version: v12b\r\n"), "404");  // full match
  EXPECT_EQ(route_for("GET", "/r", "h", "X-Version: xv1\r\n"), "404");
  EXPECT_EQ(route_for("GET", "/r", "h"), "404");

  EXPECT_EQ(route_for("GET", "/p", "h", "Authorization: Bearer x\r\n"), "present");
  EXPECT_EQ(route_for("GET", "/p", "h", "Authorization:\r\n"), "present");  // empty value counts
  EXPECT_EQ(route_for("GET", "/p", "h"), "404");

  EXPECT_EQ(route_for("GET", "/a", "h"), "absent");
  EXPECT_EQ(route_for("GET", "/a", "h", "authorization: x\r\n"), "404");
}

TEST_F(RouterTest, QueryConditions) {
  load(R"y(  - name: debug
    match: { path: /q, query: { debug: "1", trace: { present: true } } }
    to: app
  - name: version
    match: { path: /v, query: { v: { regex: "[0-9]+" }, legacy: { present: false } } }
    to: app
)y");
  EXPECT_EQ(route_for("GET", "/q?debug=1&trace"), "debug");
  EXPECT_EQ(route_for("GET", "/q?trace=&x=y&debug=1"), "debug");
  EXPECT_EQ(route_for("GET", "/q?debug=2&trace"), "404");
  EXPECT_EQ(route_for("GET", "/q?xdebug=1&trace"), "404");
  EXPECT_EQ(route_for("GET", "/q?debug=1"), "404");
  EXPECT_EQ(route_for("GET", "/q"), "404");

  EXPECT_EQ(route_for("GET", "/v?v=12"), "version");
  EXPECT_EQ(route_for("GET", "/v?v=12&legacy=1"), "404");
  EXPECT_EQ(route_for("GET", "/v?v=x"), "404");
}

TEST(QueryParamTest, FindsRawValues) {
  bool found = false;
  EXPECT_EQ(query_param("a=1&b=2", "b", &found), "2");
  EXPECT_TRUE(found);
  EXPECT_EQ(query_param("a=1&a=2", "a", &found), "1");
  EXPECT_TRUE(found);
  EXPECT_EQ(query_param("flag&x=1", "flag", &found), "");
  EXPECT_TRUE(found);
  EXPECT_EQ(query_param("a=%20", "a", &found), "%20");
  query_param("ab=1&b", "a", &found);
  EXPECT_FALSE(found);
  query_param("", "a", &found);
  EXPECT_FALSE(found);
}

// router.h: exact > template > regex > prefix (as in NGINX, a matching regex beats a prefix).
TEST_F(RouterTest, ExactBeatsRegexBeatsPrefixRegardlessOfOrder) {
  const std::string prefix = "  - name: prefix\n    match: { path: /api/* }\n    to: app\n";
  const std::string regex =
      "  - name: regex\n    match: { path_regex: \"/api/v[0-9]+/.*\" }\n    to: app\n";
  const std::string exact = "  - name: exact\n    match: { path: /api/v1/status }\n    to: app\n";
  for (const auto& routes :
       {prefix + regex + exact, exact + regex + prefix, regex + exact + prefix}) {
    SCOPED_TRACE(routes);
    load(routes);
    EXPECT_EQ(route_for("GET", "/api/v1/status"), "exact");
    EXPECT_EQ(route_for("GET", "/api/v1/other"), "regex");
    EXPECT_EQ(route_for("GET", "/api/other"), "prefix");
    ASSERT_EQ(snap_->routes.ordered().size(), 3u);
    EXPECT_EQ(snap_->routes.ordered()[0]->name, "exact");
    EXPECT_EQ(snap_->routes.ordered()[1]->name, "regex");
    EXPECT_EQ(snap_->routes.ordered()[2]->name, "prefix");
  }
}

TEST_F(RouterTest, RegexBeatsCatchAll) {
  load(R"y(  - name: any
    match: { methods: [GET] }
    to: app
  - name: regex
    match: { path_regex: "/r/[a-z]+" }
    to: app
)y");
  EXPECT_EQ(route_for("GET", "/r/abc"), "regex");
  EXPECT_EQ(route_for("GET", "/other"), "any");
}

TEST_F(RouterTest, LongerPrefixWins) {
  load(R"y(  - name: short
    match: { path: /api/* }
    to: app
  - name: long
    match: { path: /api/v2/* }
    to: app
  - name: root
    match: { path: /* }
    to: app
)y");
  EXPECT_EQ(route_for("GET", "/api/v2/x"), "long");
  EXPECT_EQ(route_for("GET", "/api/v2"), "long");
  EXPECT_EQ(route_for("GET", "/api/v3/x"), "short");
  EXPECT_EQ(route_for("GET", "/elsewhere"), "root");
}

TEST_F(RouterTest, TemplateBeatsPrefixAndMoreLiteralsWin) {
  load(R"y(  - name: prefix
    match: { path: /users/* }
    to: app
  - name: any-post
    match: { path: "/users/{id}/{what}" }
    to: app
  - name: posts
    match: { path: "/users/{id}/posts" }
    to: app
)y");
  EXPECT_EQ(route_for("GET", "/users/1/posts"), "posts");
  EXPECT_EQ(route_for("GET", "/users/1/likes"), "any-post");
  EXPECT_EQ(route_for("GET", "/users/1"), "prefix");
}

TEST_F(RouterTest, HostSpecificRouteWinsOverAnyHost) {
  load(R"y(  - name: anyhost-exact
    match: { path: /x }
    to: app
  - name: wildcard
    match: { host: "*.example.com", path: /* }
    to: app
  - name: host
    match: { host: api.example.com, path: /* }
    to: app
)y");
  EXPECT_EQ(route_for("GET", "/x", "api.example.com"), "host");
  EXPECT_EQ(route_for("GET", "/x", "www.example.com"), "wildcard");
  EXPECT_EQ(route_for("GET", "/x", "other.org"), "anyhost-exact");
}

TEST_F(RouterTest, LongerWildcardSuffixWins) {
  load(R"y(  - name: short
    match: { host: "*.example.com", path: /* }
    to: app
  - name: long
    match: { host: "*.eu.example.com", path: /* }
    to: app
)y");
  EXPECT_EQ(route_for("GET", "/", "a.eu.example.com"), "long");
  EXPECT_EQ(route_for("GET", "/", "a.us.example.com"), "short");
}

TEST_F(RouterTest, ExactHostsRankEquallyWhateverTheirLength) {
  load(R"y(  - name: site
    match: { host: [example.com, www.example.com], path: /* }
    to: app
  - name: health
    match: { host: example.com, path: /health }
    to: app
)y");
  EXPECT_EQ(route_for("GET", "/health", "example.com"), "health");
}

TEST_F(RouterTest, MoreConditionsFirstThenMethodList) {
  load(R"y(  - name: plain
    match: { path: /m }
    to: app
  - name: posts
    match: { path: /m, methods: [POST] }
    to: app
  - name: beta
    match: { path: /m, headers: { x-beta: "1" } }
    to: app
)y");
  EXPECT_EQ(route_for("GET", "/m"), "plain");
  EXPECT_EQ(route_for("POST", "/m"), "posts");
  EXPECT_EQ(route_for("POST", "/m", "h", "x-beta: 1\r\n"), "beta");
}

TEST_F(RouterTest, TiesKeepFileOrder) {
  load(R"y(  - name: first
    match: { path: /api/* }
    to: app
  - name: second
    match: { path: /api/* }
    to: app
  - name: r1
    match: { path_regex: "/z/.*" }
    to: app
  - name: r2
    match: { path_regex: "/z/a" }
    to: app
)y");
  EXPECT_EQ(route_for("GET", "/api/x"), "first");
  EXPECT_EQ(route_for("GET", "/z/a"), "r1");
}

TEST_F(RouterTest, MethodNotAllowedListsMethodsOfAllMatchingRoutes) {
  load(R"y(  - name: read
    match: { path: /items, methods: [GET, HEAD] }
    to: app
  - name: write
    match: { path: /items, methods: [POST, GET] }
    to: app
  - name: other
    match: { path: /other, methods: [PUT] }
    to: app
)y");
  EXPECT_EQ(route_for("GET", "/items"), "read");
  EXPECT_EQ(route_for("POST", "/items"), "write");
  EXPECT_EQ(route_for("DELETE", "/items"), "405 GET, HEAD, POST");
  EXPECT_EQ(route_for("get", "/items"), "405 GET, HEAD, POST");  // methods are case-sensitive
  EXPECT_EQ(route_for("DELETE", "/nothing"), "404");
  EXPECT_EQ(route_for("GET", "/other"), "405 PUT");
}

TEST_F(RouterTest, LessSpecificRouteWithoutMethodsBeats405) {
  load(R"y(  - name: strict
    match: { path: /items, methods: [GET] }
    to: app
  - name: fallback
    match: { path: /* }
    to: app
)y");
  EXPECT_EQ(route_for("DELETE", "/items"), "fallback");
  EXPECT_TRUE(match_.captures.empty());
}

TEST_F(RouterTest, CapturesComeOnlyFromTheChosenRoute) {
  load(R"y(  - name: strict
    match: { path: "/a/{x}", methods: [POST] }
    to: app
  - name: loose
    match: { path_regex: "/a/(?P<y>.*)" }
    to: app
)y");
  EXPECT_EQ(route_for("GET", "/a/1"), "loose");
  ASSERT_EQ(match_.captures.size(), 1u);
  EXPECT_EQ(match_.captures[0].first, "y");
  EXPECT_EQ(match_.captures[0].second, "1");
}

TEST_F(RouterTest, StripPrefix) {
  load(R"y(  - name: api
    match: { path: /api/* }
    rewrite: { strip_prefix: /api }
    to: app
  - name: slash
    match: { path: /s/* }
    rewrite: { strip_prefix: /s/ }
    to: app
)y");
  ASSERT_EQ(route_for("GET", "/api/products/1?x=1&y=2"), "api");
  EXPECT_EQ(rewritten(), "/products/1?x=1&y=2");
  ASSERT_EQ(route_for("GET", "/api"), "api");
  EXPECT_EQ(rewritten(), "/");
  ASSERT_EQ(route_for("GET", "/api/"), "api");
  EXPECT_EQ(rewritten(), "/");
  ASSERT_EQ(route_for("GET", "/s/x/y"), "slash");
  EXPECT_EQ(rewritten(), "/x/y");
}

TEST_F(RouterTest, StripPrefixOnlyAtSegmentBoundary) {
  load(R"y(  - name: all
    match: { path: /* }
    rewrite: { strip_prefix: /api }
    to: app
)y");
  ASSERT_EQ(route_for("GET", "/apiary/x?q"), "all");
  EXPECT_EQ(rewritten(), "/apiary/x?q");
  ASSERT_EQ(route_for("GET", "/api/x"), "all");
  EXPECT_EQ(rewritten(), "/x");
  ASSERT_EQ(route_for("GET", "/other"), "all");
  EXPECT_EQ(rewritten(), "/other");
}

TEST_F(RouterTest, ReplacePrefix) {
  load(R"y(  - name: v1
    match: { path: /* }
    rewrite: { replace_prefix: { from: /v1, to: /internal/v2 } }
    to: app
)y");
  ASSERT_EQ(route_for("GET", "/v1/users?page=2"), "v1");
  EXPECT_EQ(rewritten(), "/internal/v2/users?page=2");
  ASSERT_EQ(route_for("GET", "/v1"), "v1");
  EXPECT_EQ(rewritten(), "/internal/v2");
  ASSERT_EQ(route_for("GET", "/v10/users"), "v1");
  EXPECT_EQ(rewritten(), "/v10/users");
}

TEST_F(RouterTest, PathTemplateFromCaptures) {
  load(R"y(  - name: item
    match: { path: "/shop/{cat}/{id}" }
    rewrite: { path: "/items/{id}/in/{cat}" }
    to: app
  - name: order
    match: { path_regex: "/o/(?P<oid>[0-9]+)" }
    rewrite: { path: "/orders/{oid}" }
    to: app
)y");
  ASSERT_EQ(route_for("GET", "/shop/books/42?ref=home"), "item");
  EXPECT_EQ(rewritten(), "/items/42/in/books?ref=home");
  ASSERT_EQ(route_for("GET", "/o/77"), "order");
  EXPECT_EQ(rewritten(), "/orders/77");
}

TEST_F(RouterTest, NoRewriteKeepsPathAndQuery) {
  load(R"y(  - name: all
    match: { path: /* }
    to: app
)y");
  ASSERT_EQ(route_for("GET", "/a/b%20c?x=1"), "all");
  EXPECT_EQ(rewritten(), "/a/b%20c?x=1");
}

TEST_F(RouterTest, RewriteAppendsToTheBuffer) {
  load(R"y(  - name: api
    match: { path: /api/* }
    rewrite: { strip_prefix: /api }
    to: app
)y");
  ASSERT_EQ(route_for("GET", "/api"), "api");
  std::string out = "GET ";
  rewrite_target(*match_.route, match_.captures, req_->head.path, req_->head.query, &out);
  EXPECT_EQ(out, "GET /");
}

}  // namespace
}  // namespace gatehouse::router
