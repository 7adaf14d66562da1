// The exchange without sockets: a fake worker and a fake codec (Downstream) around the real
// routing, filters, response phase and access record. Requests that reach an upstream are tested
// end to end in tests/integration/.
#include "exchange/exchange.h"

#include <gtest/gtest.h>

#include "http/parser.h"

namespace gatehouse::exchange {
namespace {

class FakeWorker final : public WorkerContext {
 public:
  explicit FakeWorker(const std::string& yaml) : rng_(1) {
    std::vector<config::ConfigError> errors;
    auto cfg = config::parse_config(yaml, "test.yaml", &errors);
    EXPECT_TRUE(cfg) << (errors.empty() ? "" : errors[0].to_string());
    view_ = std::make_shared<View>();
    view_->snapshot = config::make_snapshot(std::move(*cfg), 1);
    view_->upstreams = upstreams_.adopt(view_->snapshot->upstreams, nullptr, rng_);
    for (const auto& r : view_->snapshot->config.routes) {
      std::vector<uint32_t> weights;
      for (const auto& t : r.to) weights.push_back(t.weight);
      view_->splits.emplace_back(std::move(weights));
    }
  }
  net::asio::io_context& io() override { return io_; }
  const std::shared_ptr<View>& view() const override { return view_; }
  upstream::Random& rng() override { return rng_; }
  observe::MetricsShard& metrics() override { return metrics_; }
  void log_access(const observe::AccessRecord& r) override {
    records.push_back(
        {std::string(r.method), std::string(r.route), r.status, std::string(r.error)});
  }
  bool draining() const override { return false; }
  filters::WorkerState& filter_state() override { return state_; }
  void add(Drainable*) override {}
  void remove(Drainable*) override {}

  struct Record {
    std::string method, route;
    int status;
    std::string error;
  };
  std::vector<Record> records;

 private:
  net::asio::io_context io_;
  upstream::Random rng_;
  upstream::WorkerUpstreams upstreams_;
  std::shared_ptr<View> view_;
  observe::MetricsShard metrics_;
  filters::WorkerState state_;
};

// A codec that records the answer instead of writing it.
class FakeDownstream final : public Downstream {
 public:
  std::string_view body_buffered() override { return {}; }
  void body_consumed(size_t, bool) override {}
  net::Task<bool> body_read_more() override { co_return false; }
  void set_deadline(Phase, net::Clock::duration) override {}
  std::string_view peer_ip() const override { return "192.0.2.7"; }
  bool peer_trusted() const override { return false; }
  bool secure() const override { return false; }
  void release_head() override {}
  void start_response(const http::ResponseHead&, const http::HeaderList&,
                      const std::vector<std::string>&, std::string_view, bool*) override {}
  bool send_now(std::string_view&, bool* ok) override { return *ok = true; }
  net::Task<bool> send(std::string_view) override { co_return true; }
  net::Task<bool> send_payload(const std::vector<std::string_view>&) override { co_return true; }
  net::Task<> answer(const http::ErrorResponse& e, std::string_view request_id) override {
    answered = e;
    answered_id = request_id;
    co_return;
  }
  void close_after() override {}
  uint64_t bytes_received() const override { return 0; }
  uint64_t bytes_sent() const override { return 0; }

  std::optional<http::ErrorResponse> answered;
  std::string answered_id;
};

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
