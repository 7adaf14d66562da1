// The exchange without sockets: a fake worker and a fake codec (Downstream) around the real
// routing, filters, response phase and access record. Requests that reach an upstream are tested
// end to end in tests/integration/.
#include "exchange/exchange.h"

#include <gtest/gtest.h>

#include "fakes.h"
#include "http/parser.h"

namespace gatehouse::exchange {
namespace {

const std::string kConfig = R"(server:
  listen: [ { address: 127.0.0.1:8080 } ]
  limits: { max_body_bytes: 1KiB }
consumers:
  - { name: alpha, api_keys: [ { sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 } ] }
upstreams:
  app: { targets: [ { address: 127.0.0.1:9 } ] }
routes:
  - { name: items, match: { path: /items/*, methods: [GET] }, to: app }
  - name: keyed
    match: { path: /keyed/* }
    to: app
    plugins:
      key_auth: {}
      response_headers: { add: { x-frame-options: DENY } }
)";

// Serves one request given as raw bytes; returns what the codec was asked to answer.
FakeDownstream serve(FakeWorker& w, Exchange& x, const std::string& raw) {
  http::RequestHead req;
  http::ParseError err;
  EXPECT_EQ(http::parse_request_head(raw, http::ParseLimits{}, &req, &err),
            http::ParseStatus::kComplete);
  FakeDownstream down;
  x.begin();
  net::asio::co_spawn(w.io().get_executor(), x.serve(req, down), net::asio::detached);
  w.io().run();
  w.io().restart();
  x.finish(down);
  return down;
}

std::string header(const http::ErrorResponse& e, std::string_view name) {
  for (const auto& [n, v] : e.headers) {
    if (http::iequals(n, name)) return v;
  }
  return "";
}

TEST(ExchangeTest, NoRouteIs404WithARequestIdAndAnAccessRecord) {
  FakeWorker w(kConfig);
  Exchange x(w);
  auto d = serve(w, x, "GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(d.answered);
  EXPECT_EQ(d.answered->status, 404);
  EXPECT_EQ(d.answered->code, "no_route");
  EXPECT_EQ(d.answered_id.size(), 32u);
  ASSERT_EQ(w.records.size(), 1u);
  EXPECT_EQ(w.records[0].status, 404);
  EXPECT_EQ(w.records[0].error, "no_route");
}

TEST(ExchangeTest, WrongMethodIs405WithAllow) {
  FakeWorker w(kConfig);
  Exchange x(w);
  auto d = serve(w, x, "DELETE /items/1 HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(d.answered);
  EXPECT_EQ(d.answered->status, 405);
  EXPECT_EQ(header(*d.answered, "allow"), "GET");
}

TEST(ExchangeTest, DeclaredBodyOverTheLimitIs413BeforeRouting) {
  FakeWorker w(kConfig);
  Exchange x(w);
  auto d = serve(w, x, "POST /nowhere HTTP/1.1\r\nHost: a\r\nContent-Length: 2048\r\n\r\n");
  ASSERT_TRUE(d.answered);
  EXPECT_EQ(d.answered->status, 413);
}

TEST(ExchangeTest, RefusedPathIs400) {
  FakeWorker w(kConfig);
  Exchange x(w);
  auto d = serve(w, x, "GET /items/a%2Fb HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(d.answered);
  EXPECT_EQ(d.answered->status, 400);
  EXPECT_EQ(d.answered->message, "an encoded '/' or '\\' in the path is not allowed");
}

TEST(ExchangeTest, AFiltersAnswerGoesThroughTheResponsePhase) {
  FakeWorker w(kConfig);
  Exchange x(w);
  auto d = serve(w, x, "GET /keyed/1 HTTP/1.1\r\nHost: a\r\nX-Request-Id: abc-123\r\n\r\n");
  ASSERT_TRUE(d.answered);
  EXPECT_EQ(d.answered->status, 401);
  EXPECT_EQ(header(*d.answered, "www-authenticate"), "ApiKey realm=\"gatehouse\"");
  EXPECT_EQ(header(*d.answered, "x-frame-options"), "DENY") << "added by response_headers";
  EXPECT_EQ(d.answered_id, "abc-123") << "a well-formed client request id is kept";
  ASSERT_EQ(w.records.size(), 1u);
  EXPECT_EQ(w.records[0].route, "keyed");
}

TEST(ExchangeTest, RefusedHeadsAreAnsweredAndLogged) {
  FakeWorker w(kConfig);
  Exchange x(w);
  FakeDownstream d;
  x.begin();
  net::asio::co_spawn(w.io().get_executor(), x.refuse(431, "header_too_large", "too large", d),
                      net::asio::detached);
  w.io().run();
  x.finish(d);
  ASSERT_TRUE(d.answered);
  EXPECT_EQ(d.answered->status, 431);
  EXPECT_FALSE(d.answered_id.empty());
  ASSERT_EQ(w.records.size(), 1u);
  EXPECT_EQ(w.records[0].error, "header_too_large");
}

}  // namespace
}  // namespace gatehouse::exchange
