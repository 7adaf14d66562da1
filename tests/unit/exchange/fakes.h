// A fake worker and a fake codec (Downstream) for the exchange's unit tests: the worker holds a
// snapshot made from YAML (optionally edited, to put a test filter on a route); the codec takes the
// request body from a string and records what the exchange asks it to write.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "exchange/exchange.h"

namespace gatehouse::exchange {

class FakeWorker final : public WorkerContext {
 public:
  explicit FakeWorker(const std::string& yaml,
                      const std::function<void(config::Config&)>& edit = nullptr)
      : rng_(1) {
    std::vector<config::ConfigError> errors;
    auto cfg = config::parse_config(yaml, "test.yaml", &errors);
    EXPECT_TRUE(cfg) << (errors.empty() ? "" : errors[0].to_string());
    if (edit) edit(*cfg);
    view_ = std::make_shared<View>();
    view_->snapshot = config::make_snapshot(std::move(*cfg), 1);
    view_->upstreams = upstreams_.adopt(view_->snapshot->upstreams, rng_);
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
  trace::SpanSink& spans() override { return spans_; }
  void log_access(const observe::AccessRecord& r) override {
    records.push_back({std::string(r.method), std::string(r.route), r.status, std::string(r.error),
                       std::string(r.target)});
  }
  bool draining() const override { return false; }
  filters::WorkerState& filter_state() override { return state_; }
  void add(Drainable*) override {}
  void remove(Drainable*) override {}

  struct Record {
    std::string method, route;
    int status;
    std::string error;
    std::string target;  // the upstream target the call went to (empty: none)
  };
  std::vector<Record> records;

 private:
  net::asio::io_context io_;
  upstream::Random rng_;
  trace::SpanSink spans_{1, [] {}};
  upstream::WorkerUpstreams upstreams_;
  std::shared_ptr<View> view_;
  observe::MetricsShard metrics_;
  filters::WorkerState state_;
};

// A codec that records the answer instead of writing it.
class FakeDownstream final : public Downstream {
 public:
  // The request body, all of it buffered already, in the framing its head declares.
  std::string body_in;

  std::string_view body_buffered() override { return body_in; }
  void body_consumed(size_t n, bool) override { body_in.erase(0, n); }
  net::Task<bool> body_read_more() override { co_return false; }
  void set_deadline(Phase, net::Clock::duration) override {}
  std::string_view peer_ip() const override { return "192.0.2.7"; }
  bool peer_trusted() const override { return false; }
  bool secure() const override { return false; }
  std::string_view protocol() const override { return "HTTP/1.1"; }
  void release_head() override {}
  bool body_timed_out() const override { return false; }
  void start_response(const http::ResponseHead& head, const http::HeaderList& add,
                      const std::vector<std::string>& remove, std::string_view, bool rewritten,
                      bool* payload) override {
    status = head.status;
    added = add;
    removed = remove;
    body_rewritten = rewritten;
    *payload = rewritten;
  }
  bool send_now(std::string_view& body, bool* ok) override {
    relayed.append(body);
    body = {};
    return *ok = true;
  }
  net::Task<bool> send(std::string_view body) override {
    relayed.append(body);
    co_return true;
  }
  net::Task<bool> send_payload(const std::vector<std::string_view>& pieces) override {
    for (auto p : pieces) relayed.append(p);
    co_return true;
  }
  net::Task<bool> send_chunk(std::string_view data, const http::HeaderList* last) override {
    chunks.emplace_back(data);
    if (last) trailers = *last;
    co_return true;
  }
  net::Task<websocket::Tunnel::Bytes> tunnel(net::Stream&, std::string_view,
                                             const config::WebSocket&) override {
    co_return websocket::Tunnel::Bytes{};
  }
  net::Task<> answer(const http::ErrorResponse& e, std::string_view request_id,
                     std::string_view) override {
    answered = e;
    answered_id = request_id;
    co_return;
  }
  void close_after() override { closed = true; }
  void cut_response() override { closed = cut = true; }
  void interim_response(const http::ResponseHead& head) override { interim.push_back(head.status); }
  uint64_t bytes_received() const override { return 0; }
  uint64_t bytes_sent() const override { return 0; }

  std::optional<http::ErrorResponse> answered;
  std::string answered_id;
  int status = 0;  // of the relayed response
  std::vector<std::string> removed;
  http::HeaderList added;
  bool body_rewritten = false;
  std::string relayed;              // the body as relayed (not rewritten)
  std::vector<std::string> chunks;  // the rewritten body, piece by piece
  std::optional<http::HeaderList> trailers;
  bool closed = false;
  bool cut = false;          // closed because the upstream failed mid-body
  std::vector<int> interim;  // the statuses of the interim responses passed on
};

}  // namespace gatehouse::exchange
