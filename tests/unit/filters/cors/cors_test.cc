#include "filters/cors/cors.h"

#include <gtest/gtest.h>

#include <map>

namespace gatehouse::filters {
namespace {

Cors::Settings app_settings() {
  Cors::Settings s;
  s.origins = {"https://app.example.com", "http://localhost:3000"};
  s.methods = {"GET", "POST"};
  s.headers = {"content-type", "x-trace"};
  s.expose_headers = {"x-total"};
  s.credentials = true;
  s.max_age_seconds = 600;
  return s;
}

struct Result {
  FilterStatus status;
  int reply_status = 0;
  std::map<std::string, std::string> headers;  // reply headers, or response_add
};

Result run(const Cors& cors, std::string_view method, std::vector<http::Header> headers) {
  http::RequestHead req;
  req.method = method;
  req.headers = std::move(headers);
  RequestContext ctx;
  ctx.request = &req;
  Result r{cors.on_request(ctx)};
  r.reply_status = ctx.reply.status;
  // The response phase, with the request head gone as it is by then: the filter kept what it needs.
  ctx.request = nullptr;
  if (r.status == FilterStatus::kContinue) {
    EXPECT_EQ(cors.on_response(ctx), FilterStatus::kContinue);
  }
  for (auto& [n, v] : r.status == FilterStatus::kRespond ? ctx.reply.headers : ctx.response_add)
    r.headers[n] = v;
  return r;
}

TEST(Cors, PreflightFromAnAllowedOriginIsAnsweredHere) {
  Cors cors(app_settings());
  auto r = run(cors, "OPTIONS",
               {{"Origin", "https://app.example.com"},
                {"Access-Control-Request-Method", "POST"},
                {"Access-Control-Request-Headers", "Content-Type, X-Trace"}});
  EXPECT_EQ(r.status, FilterStatus::kRespond);
  EXPECT_EQ(r.reply_status, 204);
  EXPECT_EQ(r.headers["Access-Control-Allow-Origin"], "https://app.example.com");
  EXPECT_EQ(r.headers["Access-Control-Allow-Methods"], "GET, POST");
  EXPECT_EQ(r.headers["Access-Control-Allow-Headers"], "content-type, x-trace");
  EXPECT_EQ(r.headers["Access-Control-Allow-Credentials"], "true");
  EXPECT_EQ(r.headers["Access-Control-Max-Age"], "600");
  EXPECT_NE(r.headers["Vary"].find("Origin"), std::string::npos);
}

// Every way a preflight can fail gets 204 with no CORS headers: the browser then refuses.
TEST(Cors, PreflightTable) {
  Cors cors(app_settings());
  struct Case {
    const char* origin;
    const char* method;
    const char* headers;
    bool allowed;
  } cases[] = {
      {"https://app.example.com", "GET", "", true},
      {"http://localhost:3000", "POST", "x-trace", true},
      {"https://evil.example.com", "GET", "", false},
      {"https://app.example.com.evil.com", "GET", "", false},
      {"http://app.example.com", "GET", "", false},  // scheme is part of the origin
      {"https://app.example.com", "DELETE", "", false},
      {"https://app.example.com", "post", "", false},  // methods are case-sensitive
      {"https://app.example.com", "GET", "authorization", false},
      {"https://app.example.com", "GET", "content-type, authorization", false},
      {"null", "GET", "", false},
  };
  for (const auto& c : cases) {
    std::vector<http::Header> h{{"Origin", c.origin}, {"Access-Control-Request-Method", c.method}};
    if (*c.headers) h.push_back({"Access-Control-Request-Headers", c.headers});
    auto r = run(cors, "OPTIONS", h);
    EXPECT_EQ(r.reply_status, 204) << c.origin << " " << c.method;
    EXPECT_EQ(r.headers.count("Access-Control-Allow-Origin"), c.allowed ? 1u : 0u)
        << c.origin << " " << c.method << " " << c.headers;
  }
}

TEST(Cors, ActualRequestsGetHeadersOnlyForAllowedOrigins) {
  Cors cors(app_settings());
  auto ok = run(cors, "GET", {{"Origin", "https://app.example.com"}});
  EXPECT_EQ(ok.status, FilterStatus::kContinue);
  EXPECT_EQ(ok.headers["Access-Control-Allow-Origin"], "https://app.example.com");
  EXPECT_EQ(ok.headers["Access-Control-Allow-Credentials"], "true");
  EXPECT_EQ(ok.headers["Access-Control-Expose-Headers"], "x-total");
  EXPECT_EQ(ok.headers["Vary"], "Origin");
  auto evil = run(cors, "GET", {{"Origin", "https://evil.example.com"}});
  EXPECT_EQ(evil.status, FilterStatus::kContinue);
  EXPECT_EQ(evil.headers.count("Access-Control-Allow-Origin"), 0u);
  EXPECT_EQ(evil.headers["Vary"], "Origin");
  // OPTIONS without Access-Control-Request-Method is not a preflight: it is forwarded.
  EXPECT_EQ(run(cors, "OPTIONS", {{"Origin", "https://app.example.com"}}).status,
            FilterStatus::kContinue);
}

TEST(Cors, WildcardOriginWithoutCredentials) {
  Cors::Settings s;
  s.origins = {"*"};
  Cors cors(s);
  auto r = run(cors, "OPTIONS",
               {{"Origin", "https://anyone.example"},
                {"Access-Control-Request-Method", "GET"},
                {"Access-Control-Request-Headers", "x-anything"}});
  EXPECT_EQ(r.headers["Access-Control-Allow-Origin"], "*");
  EXPECT_EQ(r.headers["Access-Control-Allow-Headers"], "x-anything") << "reflected when not listed";
  EXPECT_EQ(r.headers.count("Access-Control-Allow-Credentials"), 0u);
  auto get = run(cors, "GET", {{"Origin", "https://anyone.example"}});
  EXPECT_EQ(get.headers["Access-Control-Allow-Origin"], "*");
  EXPECT_EQ(get.headers.count("Vary"), 0u);
}

}  // namespace
}  // namespace gatehouse::filters
