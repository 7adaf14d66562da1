// The body phases (filters/filter.h): a filter that watches the request body, the response body or
// its trailers sees them piece by piece and may change them; the exchange frames what it passes on
// anew. A real upstream on loopback (in the test's io_context) and the fake codec (fakes.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <thread>

#include "exchange/exchange.h"
#include "fakes.h"
#include "http/parser.h"

namespace gatehouse::exchange {
namespace {

// An upstream on its own thread that takes one connection, reads one request (head and body,
// either framing), answers `response` and closes.
class OneShotUpstream {
 public:
  explicit OneShotUpstream(std::string response)
      : acceptor_(io_.get_executor(),
                  net::tcp::endpoint(net::asio::ip::make_address("127.0.0.1"), 0)),
        response_(std::move(response)) {
    net::asio::co_spawn(io_.get_executor(), serve(), net::asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~OneShotUpstream() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }
  uint16_t port() const { return port_; }
  // The request as received, once the upstream is done with its connection.
  const std::string& request() {
    if (thread_.joinable()) thread_.join();
    return request_;
  }

 private:
  bool complete() const {
    auto end = request_.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    std::string head = request_.substr(0, end);
    std::transform(head.begin(), head.end(), head.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (head.find("transfer-encoding: chunked") != std::string::npos)
      return request_.size() >= end + 9 &&
             request_.compare(request_.size() - 5, 5, "0\r\n\r\n") == 0;
    auto cl = head.find("content-length: ");
    if (cl == std::string::npos) return true;
    return request_.size() - end - 4 >= std::stoul(head.substr(cl + 16));
  }
  net::Task<> serve() {
    auto [ec, s] = co_await acceptor_.async_accept(net::use_task);
    if (ec) co_return;
    char buf[4096];
    while (!complete()) {
      auto [rec, n] = co_await s.async_read_some(net::asio::buffer(buf), net::use_task);
      if (rec) co_return;  // the gateway dropped the request
      request_.append(buf, n);
    }
    co_await net::asio::async_write(s, net::asio::buffer(response_), net::use_task);
    s.close();
  }
  net::asio::io_context io_;
  net::Acceptor acceptor_;
  uint16_t port_ = acceptor_.local_endpoint().port();
  std::string response_;
  std::string request_;
  std::thread thread_;
};

// Uppercases the response body and ends it with "!"; adds a trailer; in the request body, masks
// "secret" and refuses "forbidden" (422).
class TestFilter final : public filters::Filter {
 public:
  explicit TestFilter(bool request_body, bool response_body, bool hold_request = false)
      : request_body_(request_body), response_body_(response_body), hold_request_(hold_request) {}
  std::string_view name() const override { return "test"; }
  filters::FilterStatus on_request(filters::RequestContext& ctx) const override {
    if (request_body_) ctx.watch_request_body();
    if (hold_request_) ctx.hold_request_head();
    return filters::FilterStatus::kContinue;
  }
  filters::FilterStatus on_response(filters::RequestContext& ctx) const override {
    if (response_body_) ctx.watch_response_body();
    return filters::FilterStatus::kContinue;
  }
  filters::FilterStatus on_request_body(filters::RequestContext& ctx, std::string& data,
                                        bool) const override {
    if (data.find("forbidden") != std::string::npos) {
      ctx.reply.status = 422;
      ctx.reply.code = "refused_body";
      ctx.reply.message = "the body says forbidden";
      return filters::FilterStatus::kRespond;
    }
    for (auto at = data.find("secret"); at != std::string::npos; at = data.find("secret", at))
      data.replace(at, 6, "******");
    return filters::FilterStatus::kContinue;
  }
  void on_response_body(filters::RequestContext&, std::string& data, bool end) const override {
    for (auto& c : data) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (end) data += "!";
  }
  void on_response_trailers(filters::RequestContext&, http::HeaderList& trailers) const override {
    trailers.emplace_back("X-Filtered", "yes");
  }

 private:
  bool request_body_, response_body_, hold_request_;
};

// Turns the request into a call of its own, as a transcoder does: POST /made?x=1 with a body it
// makes (a GET has none), and a response head held until the body's end, whose trailer
// (X-Status) decides the status.
class CallMaker final : public filters::Filter {
 public:
  std::string_view name() const override { return "call_maker"; }
  filters::FilterStatus on_request(filters::RequestContext& ctx) const override {
    ctx.upstream_target = "/made?x=1";
    ctx.upstream_method = "POST";
    ctx.make_request_body();
    return filters::FilterStatus::kContinue;
  }
  filters::FilterStatus on_request_body(filters::RequestContext&, std::string& data,
                                        bool end) const override {
    if (end) data = "made:" + data;
    return filters::FilterStatus::kContinue;
  }
  filters::FilterStatus on_response(filters::RequestContext& ctx) const override {
    ctx.watch_response_body();
    ctx.hold_response_head();
    return filters::FilterStatus::kContinue;
  }
  void on_response_trailers(filters::RequestContext& ctx,
                            http::HeaderList& trailers) const override {
    for (const auto& [name, value] : trailers) {
      if (!http::iequals(name, "x-status")) continue;
      ctx.status = std::stoi(value);
      ctx.response_add.emplace_back("X-From-Trailer", value);
    }
    trailers.clear();
  }
  void on_response_body(filters::RequestContext& ctx, std::string& data, bool end) const override {
    if (!ctx.slots.get(kHeld)) ctx.slots.set(kHeld, std::string());
    std::string& held = *ctx.slots.get(kHeld);  // the body goes whole, at its end
    held += data;
    data = end ? held : std::string();
  }

 private:
  static inline const filters::SlotKey<std::string> kHeld{"call_maker.held"};
};

std::string config_for(uint16_t port) {
  return R"(server:
  listen: [ { address: 127.0.0.1:8080 } ]
  limits: { max_body_bytes: 64 }
upstreams:
  app: { targets: [ { address: 127.0.0.1:)" +
         std::to_string(port) + R"( } ] }
routes:
  - { name: filtered, match: { path: /f/* }, to: app }
)";
}

// One request (`raw` head, `body` in the framing the head declares) through a route carrying
// TestFilter(request_body, response_body), to an upstream that answers `response`.
struct Run {
  FakeDownstream down;
  std::string upstream_request;
  std::vector<FakeWorker::Record> records;
};
Run run_with(std::shared_ptr<const filters::Filter> filter, const std::string& raw,
             std::string body, std::string response) {
  OneShotUpstream up(std::move(response));
  FakeWorker w(config_for(up.port()),
               [&](config::Config& c) { c.routes[0].filters.push_back(filter); });
  Exchange x(w);
  http::RequestHead req;
  http::ParseError err;
  EXPECT_EQ(http::parse_request_head(raw, http::ParseLimits{}, &req, &err),
            http::ParseStatus::kComplete);
  Run out;
  out.down.body_in = std::move(body);
  x.begin();
  net::asio::co_spawn(w.io().get_executor(), x.serve(req, out.down), net::asio::detached);
  w.io().run();
  x.finish(out.down);
  // A call that never went has no target, and its upstream never gets a connection to read.
  if (w.records.empty() || !w.records[0].target.empty()) out.upstream_request = up.request();
  out.records = w.records;
  return out;
}
Run run(const std::string& raw, std::string body, std::string response, bool request_body,
        bool response_body) {
  return run_with(std::make_shared<TestFilter>(request_body, response_body), raw, std::move(body),
                  std::move(response));
}

std::string joined(const std::vector<std::string>& pieces) {
  std::string s;
  for (const auto& p : pieces) s += p;
  return s;
}

std::string trailer(const FakeDownstream& d, std::string_view name) {
  if (!d.trailers) return "(no last piece)";
  for (const auto& [n, v] : *d.trailers) {
    if (http::iequals(n, name)) return v;
  }
  return "";
}

TEST(BodyPhasesTest, AResponseBodyFilterRewritesALengthDelimitedBody) {
  auto r = run("GET /f/1 HTTP/1.1\r\nHost: a\r\n\r\n", "",
               "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world",
               false, true);
  EXPECT_EQ(r.down.status, 200);
  EXPECT_TRUE(r.down.body_rewritten);
  EXPECT_NE(std::find(r.down.removed.begin(), r.down.removed.end(), "content-length"),
            r.down.removed.end())
      << "the filters decide the length: the upstream's Content-Length must not reach the client";
  EXPECT_EQ(joined(r.down.chunks), "HELLO WORLD!");
  EXPECT_EQ(trailer(r.down, "x-filtered"), "yes");
  EXPECT_TRUE(r.down.relayed.empty());
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].status, 200);
}

TEST(BodyPhasesTest, AChunkedBodysTrailersReachTheFiltersWithoutFramingFields) {
  auto r = run("GET /f/1 HTTP/1.1\r\nHost: a\r\n\r\n", "",
               "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
               "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Upstream: kept\r\nContent-Length: 5\r\n\r\n",
               false, true);
  EXPECT_EQ(joined(r.down.chunks), "HELLO WORLD!");
  EXPECT_EQ(trailer(r.down, "x-upstream"), "kept");
  EXPECT_EQ(trailer(r.down, "content-length"), "") << "a framing field is never a trailer";
  EXPECT_EQ(trailer(r.down, "x-filtered"), "yes");
}

TEST(BodyPhasesTest, ACloseDelimitedBodyEndsThroughTheFiltersAtTheClose) {
  auto r = run("GET /f/1 HTTP/1.1\r\nHost: a\r\n\r\n", "",
               "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close", false, true);
  EXPECT_EQ(joined(r.down.chunks), "UNTIL CLOSE!");
  EXPECT_TRUE(r.down.trailers.has_value()) << "the close is the body's end: the last piece went";
  EXPECT_FALSE(r.down.closed);
}

// The upstream failing mid-body is told to the codec as a cut response (which a close-delimited
// body needs to end with a reset), not as a plain close.
TEST(BodyPhasesTest, BrokenChunkedFramingCutsTheResponseAfterTheValidBytes) {
  auto r = run("GET /f/1 HTTP/1.1\r\nHost: a\r\n\r\n", "",
               "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", false,
               false);
  EXPECT_EQ(r.down.status, 200);
  EXPECT_EQ(r.down.relayed, "5\r\nhello") << "nothing from the broken framing on";
  EXPECT_TRUE(r.down.cut);
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].error, "upstream_reset_mid_body");
}

TEST(BodyPhasesTest, BrokenChunkedFramingCutsARewrittenResponseWithoutItsLastPiece) {
  auto r =
      run("GET /f/1 HTTP/1.1\r\nHost: a\r\n\r\n", "",
          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n", false, true);
  EXPECT_EQ(joined(r.down.chunks), "HELLO");
  EXPECT_FALSE(r.down.trailers.has_value()) << "the body never ended";
  EXPECT_TRUE(r.down.cut);
}

// 103 goes to the codec (which forwards it or not) before the final response; 100 does not.
TEST(BodyPhasesTest, InterimResponsesOtherThan100ArePassedOnBeforeTheFinalOne) {
  auto r = run("GET /f/1 HTTP/1.1\r\nHost: a\r\n\r\n", "",
               "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
               "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
               false, false);
  EXPECT_EQ(r.down.interim, (std::vector<int>{103}));
  EXPECT_EQ(r.down.status, 200);
  EXPECT_EQ(r.down.relayed, "hello");
  EXPECT_FALSE(r.down.cut);
}

TEST(BodyPhasesTest, WithoutAWatcherTheBodyIsRelayedAsItCame) {
  auto r =
      run("GET /f/1 HTTP/1.1\r\nHost: a\r\n\r\n", "",
          "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello", false, false);
  EXPECT_FALSE(r.down.body_rewritten);
  EXPECT_TRUE(r.down.chunks.empty());
  EXPECT_EQ(r.down.relayed, "hello");
}

TEST(BodyPhasesTest, AHeadResponseHasNoBodyToRewrite) {
  auto r = run("HEAD /f/1 HTTP/1.1\r\nHost: a\r\n\r\n", "",
               "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n", false, true);
  EXPECT_EQ(r.down.status, 200);
  EXPECT_FALSE(r.down.body_rewritten);
  EXPECT_TRUE(r.down.chunks.empty());
}

TEST(BodyPhasesTest, ARequestBodyFilterChangesTheBodyThatGoesUpstreamChunked) {
  auto r = run("POST /f/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 14\r\n\r\n", "my secret is x",
               "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", true, false);
  EXPECT_EQ(r.down.status, 204);
  const auto& sent = r.upstream_request;
  auto end = sent.find("\r\n\r\n");
  ASSERT_NE(end, std::string::npos) << sent;
  std::string head = sent.substr(0, end);
  EXPECT_EQ(head.find("Content-Length"), std::string::npos) << head;
  EXPECT_NE(head.find("Transfer-Encoding: chunked"), std::string::npos) << head;
  EXPECT_EQ(sent.substr(end + 4), "e\r\nmy ****** is x\r\n0\r\n\r\n");
}

TEST(BodyPhasesTest, AChunkedRequestBodyIsDeChunkedForTheFilter) {
  auto r = run("POST /f/1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
               "3\r\nsec\r\n3\r\nret\r\n0\r\n\r\n",
               "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", true, false);
  const auto& sent = r.upstream_request;
  EXPECT_NE(sent.find("\r\n\r\n6\r\n******\r\n0\r\n\r\n"), std::string::npos)
      << "the two chunks arrived together and were one piece for the filter: " << sent;
}

TEST(BodyPhasesTest, ARequestBodyFilterMayAnswerInstead) {
  auto r = run("POST /f/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", "forbidden!!!",
               "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", true, false);
  ASSERT_TRUE(r.down.answered);
  EXPECT_EQ(r.down.answered->status, 422);
  EXPECT_EQ(r.down.answered->code, "refused_body");
  EXPECT_EQ(r.down.status, 0) << "no upstream response was relayed";
  EXPECT_EQ(r.upstream_request.find("forbidden"), std::string::npos)
      << "the refused piece never went upstream";
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].status, 422);
}

TEST(BodyPhasesTest, AWatchedChunkedBodyOverTheLimitIs413) {
  std::string big(100, 'a');
  auto r = run("POST /f/1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
               "64\r\n" + big + "\r\n0\r\n\r\n",
               "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", true, false);
  ASSERT_TRUE(r.down.answered);
  EXPECT_EQ(r.down.answered->status, 413);
}

TEST(BodyPhasesTest, AMalformedChunkedBodyUnderAWatcherIs400) {
  auto r = run("POST /f/1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
               "zz\r\nabc\r\n0\r\n\r\n", "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
               true, false);
  ASSERT_TRUE(r.down.answered);
  EXPECT_EQ(r.down.answered->status, 400);
}

// A filter makes the upstream request another call: its method and target, and a body for a
// request that had none (framed chunked, as every filtered body).
TEST(BodyPhasesTest, AFilterMakesTheCallAndTheBodyOfARequestWithoutOne) {
  auto r = run_with(std::make_shared<CallMaker>(), "GET /f/1?q=2 HTTP/1.1\r\nHost: a\r\n\r\n", "",
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
  const auto& sent = r.upstream_request;
  EXPECT_EQ(sent.rfind("POST /made?x=1 HTTP/1.1\r\n", 0), 0u) << sent;
  EXPECT_NE(sent.find("Transfer-Encoding: chunked"), std::string::npos) << sent;
  EXPECT_EQ(sent.substr(sent.find("\r\n\r\n") + 4), "5\r\nmade:\r\n0\r\n\r\n");
  EXPECT_EQ(joined(r.down.chunks), "ok");
}

// A held head goes with the status and headers the filters left at the body's end.
TEST(BodyPhasesTest, AHeldHeadTakesTheStatusTheFiltersSetFromTheTrailers) {
  auto r = run_with(std::make_shared<CallMaker>(), "GET /f/1 HTTP/1.1\r\nHost: a\r\n\r\n", "",
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: 1\r\n"
                    "Connection: close\r\n\r\n5\r\nhello\r\n0\r\nX-Status: 418\r\n\r\n");
  EXPECT_EQ(r.down.status, 418);
  EXPECT_EQ(joined(r.down.chunks), "hello");
  EXPECT_NE(std::find(r.down.added.begin(), r.down.added.end(),
                      std::pair<std::string, std::string>("X-From-Trailer", "418")),
            r.down.added.end());
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].status, 418);
}

// The upstream breaks off before the filters let the head go: nothing was sent, so the gateway
// answers (502), rather than cutting a response that never started.
TEST(BodyPhasesTest, AHeldHeadThatNeverWentIsAnAnswerNotACut) {
  auto r = run_with(std::make_shared<CallMaker>(), "GET /f/1 HTTP/1.1\r\nHost: a\r\n\r\n", "",
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX");
  ASSERT_TRUE(r.down.answered);
  EXPECT_EQ(r.down.answered->status, 502);
  EXPECT_EQ(r.down.status, 0) << "no head was started";
  EXPECT_FALSE(r.down.cut);
}

// A filter that holds the request head refuses the body before the upstream hears of it: no
// target is chosen, no connection made.
TEST(BodyPhasesTest, AHeldRequestHeadRefusedForItsBodyCallsNobody) {
  auto r = run_with(std::make_shared<TestFilter>(true, false, true),
                    "POST /f/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", "forbidden!!!",
                    "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
  ASSERT_TRUE(r.down.answered);
  EXPECT_EQ(r.down.answered->status, 422);
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].target, "") << "the upstream was called";
}

// ... and one it lets through goes as it would have.
TEST(BodyPhasesTest, AHeldRequestHeadGoesWithTheBodysFirstPiece) {
  auto r = run_with(std::make_shared<TestFilter>(true, false, true),
                    "POST /f/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 14\r\n\r\n", "my secret is x",
                    "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(r.down.status, 204);
  EXPECT_NE(r.records[0].target, "");
  EXPECT_NE(r.upstream_request.find("e\r\nmy ****** is x\r\n0\r\n\r\n"), std::string::npos)
      << r.upstream_request;
}

}  // namespace
}  // namespace gatehouse::exchange
