// upstream::Client against in-process loopback upstreams (tests/unit/upstream/loopback.h), with a
// config loaded from YAML as a worker loads it: the response relayed, keep-alive reuse through
// the pool, the resend of a request whose pooled connection died, retries (connect failure,
// status, reset; never a POST without an Idempotency-Key), the bulkhead and its queue, and the
// response timeout.
#include "upstream/client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/snapshot.h"
#include "loopback.h"

namespace gatehouse::upstream {
namespace {

using namespace std::chrono_literals;
using test::HttpServer;

// The request side of a call: a body held whole from the start, and the phase deadlines a real
// downstream keeps (when one passes, the client is told, as the exchange's owner does).
class FakeSource final : public RequestSource {
 public:
  FakeSource(net::asio::io_context& io, Client& client, std::string body)
      : timer_(io.get_executor()), client_(client), body_(std::move(body)) {}
  ~FakeSource() { timer_.cancel(); }

  std::string_view body_buffered() override { return std::string_view(body_).substr(consumed_); }
  void body_consumed(size_t n, bool done) override {
    consumed_ += n;
    if (done) body_done = true;
  }
  net::Task<bool> body_read_more() override { co_return false; }  // nothing more will come
  void interim_response(const http::ResponseHead& head) override {
    interim.push_back(std::to_string(head.status) + " " + std::string(head.get("link")));
  }
  void set_deadline(Phase phase, net::Clock::duration after) override {
    phases.push_back(phase);
    timer_.expires_after(after);
    std::weak_ptr<int> alive = alive_;
    timer_.async_wait([this, phase, alive](boost::system::error_code ec) {
      if (ec || alive.expired() || phase == Phase::kStream) return;
      client_.deadline_passed(phase);
    });
  }

  bool body_done = false;
  std::vector<Phase> phases;
  std::vector<std::string> interim;  // "status link" of each interim response passed on

 private:
  net::Timer timer_;
  Client& client_;
  std::string body_;
  size_t consumed_ = 0;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

struct Request {
  std::string method = "GET";
  std::string path = "/";
  std::string body;
  bool idempotency_key = false;
};
Request get(std::string path) { return Request{"GET", std::move(path), "", false}; }
Request post(std::string path, std::string body, bool idempotency_key = false) {
  return Request{"POST", std::move(path), std::move(body), idempotency_key};
}

// What a call gave.
struct Result {
  bool done = false;  // send() returned
  bool sent = false;  // send() returned true: an upstream response head
  int status = 0;     // the response's, or the error's
  std::string code;   // the error's
  std::string message;
  std::string retry_after;  // the error's Retry-After header
  std::string x_upstream;   // the response's X-Upstream header
  std::string body;
  bool relayed = false;  // the body was read and finish() called
};

net::Task<> send_call(Client& c, FakeSource& src, Result* out) {
  bool sent = co_await c.send(src);
  out->sent = sent;
  if (sent) {
    out->status = c.response().status;
    out->x_upstream = std::string(c.response().get("x-upstream"));
  } else {
    out->status = c.error().status;
    out->code = c.error().code;
    out->message = c.error().message;
    for (const auto& [name, value] : c.error().headers) {
      if (name == "Retry-After") out->retry_after = value;
    }
  }
  out->done = true;
}

net::Task<> relay_body(Client& c, Result* out) {
  c.begin_body();
  bool up_ok = true;
  while (true) {
    Client::Piece piece = c.body_piece(nullptr);
    out->body.append(piece.bytes);
    c.body_sent(piece.bytes.size());
    if (piece.error) {
      up_ok = false;
      break;
    }
    if (piece.done) break;
    bool more = co_await c.read_body();
    if (!more) {
      up_ok = c.body_ended_by_close();
      break;
    }
  }
  c.finish(up_ok, true);
  out->relayed = true;
}

std::string config_yaml(const std::string& upstream, const std::string& settings) {
  return "server:\n  listen: [ { address: 127.0.0.1:8080 } ]\nupstreams:\n  " + upstream + ":\n" +
         settings + "routes:\n  - { name: r, match: { path: /* }, to: " + upstream + " }\n";
}

class ClientTest : public ::testing::Test {
 protected:
  // The upstream's name: one no other test uses (the bulkhead is process-wide, by name).
  static std::string name() {
    return std::string("client-") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }

  // Loads a config whose one upstream has these settings (YAML lines indented by 4), as a worker
  // adopts a snapshot.
  void load(const std::string& settings) {
    std::vector<config::ConfigError> errors;
    auto cfg = config::parse_config(config_yaml(name(), settings), "test.yaml", &errors);
    ASSERT_TRUE(cfg) << (errors.empty() ? "" : errors[0].to_string());
    snap_ = config::make_snapshot(std::move(*cfg), 1);
    ups_ = worker_.adopt(snap_->upstreams, rng_);
    ASSERT_EQ(ups_.size(), 1u);
  }
  Upstream& up() { return ups_[0]; }
  observe::UpstreamMetrics& up_metrics() { return metrics_.upstreams[name()]; }

  // Starts a call; false (with the error in *out) when no target takes it.
  bool start(Client& c, const Request& r, Result* out) {
    c.reset();
    Call call;
    call.route = &snap_->config.routes.at(0);
    call.upstream = &up();
    call.method = r.method;
    call.idempotency_key = r.idempotency_key;
    call.head_request = r.method == "HEAD";
    const bool has_body = !r.body.empty() || r.method == "POST" || r.method == "PUT";
    call.body_framing = has_body ? http::Framing::kContentLength : http::Framing::kNone;
    call.content_length = r.body.size();
    call.max_body_bytes = 1 << 20;
    call.stream_idle = 5s;
    if (!c.start(call)) {
      out->done = true;
      out->status = c.error().status;
      out->code = c.error().code;
      return false;
    }
    auto& head = c.head();
    head.start(r.method, r.path);
    head.add("Host", "test");
    if (r.idempotency_key) head.add("Idempotency-Key", "k-1");
    const std::string length = std::to_string(r.body.size());
    if (has_body) {
      head.add("Content-Length", length);
      head.set_body(http::Framing::kContentLength, r.body.size());
    }
    head.finish();
    return true;
  }

  // Sends the request in the background; run the io_context to see it through.
  void spawn_send(Client& c, FakeSource& src, Result* out) {
    net::asio::co_spawn(io_.get_executor(), send_call(c, src, out), net::asio::detached);
  }
  // Sends and waits for the response head (or the failure).
  void send(Client& c, FakeSource& src, Result* out) {
    spawn_send(c, src, out);
    ASSERT_TRUE(test::run_until(io_, [&] { return out->done; })) << "send() did not return";
  }
  // Reads the response body and finishes the call.
  void relay(Client& c, Result* out) {
    net::asio::co_spawn(io_.get_executor(), relay_body(c, out), net::asio::detached);
    ASSERT_TRUE(test::run_until(io_, [&] { return out->relayed; })) << "the body did not end";
  }
  // A whole call: start, send, relay the body when a response came.
  Result call(Client& c, const Request& r) {
    Result out;
    if (!start(c, r, &out)) return out;
    FakeSource src(io_, c, r.body);
    send(c, src, &out);
    if (out.sent) relay(c, &out);
    return out;
  }

  // Before the upstream records, which point into it; the pools' connections use io_.
  net::asio::io_context io_;
  Random rng_{1};
  observe::MetricsShard metrics_;
  WorkerUpstreams worker_;
  std::shared_ptr<const config::Snapshot> snap_;
  std::vector<Upstream> ups_;
};

std::string target(const HttpServer& s) { return "{ address: " + s.address() + " }"; }
std::string target(uint16_t port) { return "{ address: 127.0.0.1:" + std::to_string(port) + " }"; }

std::string request_line(const HttpServer::Request& r) {
  return r.head.substr(0, r.head.find("\r\n"));
}

TEST_F(ClientTest, GetGetsTheResponseHeadAndBody) {
  HttpServer s([](const HttpServer::Request&) {
    return HttpServer::Reply{
        "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Upstream: one\r\n\r\nhello world"};
  });
  load("    targets: [ " + target(s) + " ]\n");
  Client c(io_.get_executor(), metrics_, rng_);
  Result r = call(c, get("/items/1"));
  ASSERT_TRUE(r.sent) << r.code << ": " << r.message;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.x_upstream, "one");
  EXPECT_EQ(r.body, "hello world");
  EXPECT_EQ(c.target(), s.address());
  ASSERT_EQ(s.requests(), 1);
  EXPECT_EQ(request_line(s.received()[0]), "GET /items/1 HTTP/1.1");
  ASSERT_TRUE(c.outcome());
  EXPECT_EQ(*c.outcome(), observe::UpstreamOutcome::kOk);
}

// 100 Continue answers an expectation the gateway never sends upstream: dropped. Other interim
// responses go to the downstream as they come, and the final response is read after them.
TEST_F(ClientTest, InterimResponsesArePassedOnExcept100AndTheFinalOneFollows) {
  HttpServer s([](const HttpServer::Request&) {
    return HttpServer::Reply{
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
        "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"};
  });
  load("    targets: [ " + target(s) + " ]\n");
  Client c(io_.get_executor(), metrics_, rng_);
  Result r;
  ASSERT_TRUE(start(c, get("/"), &r));
  FakeSource src(io_, c, "");
  send(c, src, &r);
  ASSERT_TRUE(r.sent) << r.code << ": " << r.message;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(src.interim, (std::vector<std::string>{"103 </a.css>", "102 "}));
  relay(c, &r);
  EXPECT_EQ(r.body, "ok");
  // Read in step: the connection went back to the pool and serves the next call.
  EXPECT_EQ(call(c, get("/again")).body, "ok");
  EXPECT_EQ(s.accepted(), 1);
}

TEST_F(ClientTest, LargeBodyArrivesWhole) {
  std::string big(300 * 1024, 'x');
  for (size_t i = 0; i < big.size(); i += 1000) big[i] = static_cast<char>('a' + i / 1000 % 26);
  HttpServer s([&](const HttpServer::Request&) { return HttpServer::respond(200, big); });
  load("    targets: [ " + target(s) + " ]\n");
  Client c(io_.get_executor(), metrics_, rng_);
  Result r = call(c, {});
  ASSERT_TRUE(r.sent);
  EXPECT_EQ(r.body.size(), big.size());
  EXPECT_TRUE(r.body == big) << "read through read_body() in many pieces, in order";
  EXPECT_EQ(up().targets[0].pool->idle_count(), 1u);
}

TEST_F(ClientTest, ChunkedBodyPassesThroughAndEndsClean) {
  const std::string chunked = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  HttpServer s([&](const HttpServer::Request&) {
    return HttpServer::Reply{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked};
  });
  load("    targets: [ " + target(s) + " ]\n");
  Client c(io_.get_executor(), metrics_, rng_);
  Result r = call(c, {});
  ASSERT_TRUE(r.sent);
  EXPECT_EQ(r.body, chunked) << "relayed in its own framing";
  EXPECT_EQ(up().targets[0].pool->idle_count(), 1u) << "ended where its framing said";
}

TEST_F(ClientTest, PostSendsItsBody) {
  HttpServer s([](const HttpServer::Request&) { return HttpServer::respond(200); });
  load("    targets: [ " + target(s) + " ]\n");
  Client c(io_.get_executor(), metrics_, rng_);
  Result r = call(c, post("/orders", "{\"n\":1}"));
  ASSERT_TRUE(r.sent);
  ASSERT_EQ(s.requests(), 1);
  EXPECT_EQ(request_line(s.received()[0]), "POST /orders HTTP/1.1");
  EXPECT_EQ(s.received()[0].body, "{\"n\":1}");
}

TEST_F(ClientTest, ConnectionIsPooledAfterACleanResponseAndReused) {
  HttpServer s([](const HttpServer::Request& r) {
    return HttpServer::respond(200, "n" + std::to_string(r.number));
  });
  load("    targets: [ " + target(s) + " ]\n");
  Client c(io_.get_executor(), metrics_, rng_);
  Result first = call(c, {});
  ASSERT_TRUE(first.sent);
  EXPECT_EQ(first.body, "n1");
  EXPECT_EQ(up().targets[0].pool->idle_count(), 1u) << "back in the pool";
  Result second = call(c, {});
  ASSERT_TRUE(second.sent);
  EXPECT_EQ(second.body, "n2");
  EXPECT_EQ(s.requests(), 2);
  EXPECT_EQ(s.accepted(), 1) << "the second call reused the first connection";
  EXPECT_EQ(up().targets[0].pool->idle_count(), 1u);
}

TEST_F(ClientTest, ConnectionCloseResponseIsNotPooled) {
  HttpServer s([](const HttpServer::Request&) { return HttpServer::respond(200, "bye", true); });
  load("    targets: [ " + target(s) + " ]\n");
  Client c(io_.get_executor(), metrics_, rng_);
  ASSERT_TRUE(call(c, {}).sent);
  EXPECT_EQ(up().targets[0].pool->idle_count(), 0u);
  ASSERT_TRUE(call(c, {}).sent);
  EXPECT_EQ(s.accepted(), 2);
}

TEST_F(ClientTest, MaxIdlePerTargetZeroPoolsNothing) {
  HttpServer s([](const HttpServer::Request&) { return HttpServer::respond(200, "ok"); });
  load("    targets: [ " + target(s) + " ]\n    max_idle_per_target: 0\n");
  Client c(io_.get_executor(), metrics_, rng_);
  ASSERT_TRUE(call(c, {}).sent);
  EXPECT_EQ(up().targets[0].pool->idle_count(), 0u);
  ASSERT_TRUE(call(c, {}).sent);
  EXPECT_EQ(s.accepted(), 2);
}

TEST_F(ClientTest, AbandonedResponseClosesTheConnection) {
  HttpServer s([](const HttpServer::Request&) { return HttpServer::respond(200, "unread"); });
  load("    targets: [ " + target(s) + " ]\n");
  Client c(io_.get_executor(), metrics_, rng_);
  Result r;
  ASSERT_TRUE(start(c, {}, &r));
  FakeSource src(io_, c, "");
  send(c, src, &r);
  ASSERT_TRUE(r.sent);
  c.abandon();
  EXPECT_EQ(up().targets[0].pool->idle_count(), 0u);
  EXPECT_TRUE(test::run_until(io_, [&] { return s.closed() == 1; })) << "the server saw it close";
}

// The upstream closes a kept-alive connection just as the next request arrives on it.
HttpServer::Reply close_second_on_first_connection(const HttpServer::Request& r) {
  if (r.connection == 1 && r.number == 2) return HttpServer::close_unanswered();
  return HttpServer::respond(200, "ok");
}

TEST_F(ClientTest, GetWhosePooledConnectionDiedIsSentAgainOnANewOne) {
  HttpServer s(close_second_on_first_connection);
  load("    targets: [ " + target(s) + " ]\n");  // no retry policy
  Client c(io_.get_executor(), metrics_, rng_);
  ASSERT_TRUE(call(c, {}).sent);
  Result r = call(c, {});
  ASSERT_TRUE(r.sent) << r.code << ": " << r.message;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(s.requests(), 3);
  EXPECT_EQ(s.accepted(), 2) << "sent again on a new connection";
  EXPECT_EQ(up_metrics().retries, (std::array<uint64_t, 5>{})) << "not a policy retry";
}

TEST_F(ClientTest, PostWhosePooledConnectionDiedIsNotSentAgain) {
  HttpServer s(close_second_on_first_connection);
  load("    targets: [ " + target(s) + " ]\n");
  Client c(io_.get_executor(), metrics_, rng_);
  ASSERT_TRUE(call(c, {}).sent);
  Result r = call(c, post("/", "a"));
  EXPECT_FALSE(r.sent);
  EXPECT_EQ(r.status, 502);
  EXPECT_EQ(r.code, "upstream_reset");
  EXPECT_EQ(s.requests(), 2);
  EXPECT_EQ(s.accepted(), 1);
}

TEST_F(ClientTest, ConnectFailureIsRetriedOnAnotherTarget) {
  HttpServer live([](const HttpServer::Request&) { return HttpServer::respond(200, "live"); });
  const uint16_t dead = test::closed_port();
  // Round robin over equal weights picks the first target first: the dead one.
  load("    targets: [ " + target(dead) + ", " + target(live) +
       " ]\n    retry: { attempts: 1, backoff: 1ms, on: [connect_failure] }\n");
  Client c(io_.get_executor(), metrics_, rng_);
  Result r = call(c, {});
  ASSERT_TRUE(r.sent) << r.code << ": " << r.message;
  EXPECT_EQ(r.body, "live");
  EXPECT_EQ(c.target(), live.address());
  EXPECT_EQ(live.requests(), 1);
  EXPECT_EQ(up_metrics().retries[0], 1u) << "one retry, for a connect failure";
}

TEST_F(ClientTest, ConnectFailureWithoutRetryPolicyIs502) {
  HttpServer live([](const HttpServer::Request&) { return HttpServer::respond(200, "live"); });
  const uint16_t dead = test::closed_port();
  load("    targets: [ " + target(dead) + ", " + target(live) + " ]\n");
  Client c(io_.get_executor(), metrics_, rng_);
  Result r = call(c, {});
  EXPECT_FALSE(r.sent);
  EXPECT_EQ(r.status, 502);
  EXPECT_EQ(r.code, "upstream_connect_failed");
  EXPECT_EQ(live.requests(), 0);
  ASSERT_TRUE(c.outcome());
  EXPECT_EQ(*c.outcome(), observe::UpstreamOutcome::kConnectError);
}

TEST_F(ClientTest, StatusNamedByTheRetryPolicyIsRetried) {
  HttpServer s([](const HttpServer::Request& r) {
    return r.number == 1 ? HttpServer::respond(503, "busy") : HttpServer::respond(200, "fine");
  });
  load("    targets: [ " + target(s) + " ]\n    retry: { attempts: 1, backoff: 1ms, on: [503] }\n");
  Client c(io_.get_executor(), metrics_, rng_);
  Result r = call(c, {});
  ASSERT_TRUE(r.sent);
  EXPECT_EQ(r.status, 200) << "the 503 was not relayed";
  EXPECT_EQ(r.body, "fine");
  EXPECT_EQ(s.requests(), 2);
  EXPECT_EQ(up_metrics().retries[3], 1u) << "one retry, for a status";
}

TEST_F(ClientTest, LastTrysStatusIsRelayedWhenAttemptsRunOut) {
  HttpServer s([](const HttpServer::Request&) { return HttpServer::respond(503, "busy"); });
  load("    targets: [ " + target(s) + " ]\n    retry: { attempts: 2, backoff: 1ms, on: [503] }\n");
  Client c(io_.get_executor(), metrics_, rng_);
  Result r = call(c, {});
  ASSERT_TRUE(r.sent);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "busy");
  EXPECT_EQ(s.requests(), 3) << "the first try and two retries";
}

TEST_F(ClientTest, StatusNotNamedByTheRetryPolicyIsRelayed) {
  HttpServer s([](const HttpServer::Request&) { return HttpServer::respond(503, "busy"); });
  load("    targets: [ " + target(s) + " ]\n    retry: { attempts: 1, backoff: 1ms, on: [502] }\n");
  Client c(io_.get_executor(), metrics_, rng_);
  Result r = call(c, {});
  ASSERT_TRUE(r.sent);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "busy");
  EXPECT_EQ(s.requests(), 1);
}

// The first request is read and its connection closed without an answer; later ones are answered.
HttpServer::Reply reset_first(const HttpServer::Request& r) {
  if (r.number == 1) return HttpServer::close_unanswered();
  return HttpServer::respond(200, "second");
}

TEST_F(ClientTest, PostWithoutIdempotencyKeyIsNotRetriedAfterAReset) {
  HttpServer s(reset_first);
  load("    targets: [ " + target(s) +
       " ]\n    retry: { attempts: 1, backoff: 1ms, on: [reset] }\n");
  Client c(io_.get_executor(), metrics_, rng_);
  Result r = call(c, post("/pay", "amount=5"));
  EXPECT_FALSE(r.sent);
  EXPECT_EQ(r.status, 502);
  EXPECT_EQ(r.code, "upstream_reset");
  EXPECT_EQ(s.requests(), 1) << "not sent twice";
  EXPECT_EQ(up_metrics().retries[1], 0u);
}

TEST_F(ClientTest, PostWithIdempotencyKeyIsRetriedAfterAResetWithItsBody) {
  HttpServer s(reset_first);
  load("    targets: [ " + target(s) +
       " ]\n    retry: { attempts: 1, backoff: 1ms, on: [reset] }\n");
  Client c(io_.get_executor(), metrics_, rng_);
  Result r = call(c, post("/pay", "amount=5", true));
  ASSERT_TRUE(r.sent) << r.code << ": " << r.message;
  EXPECT_EQ(r.body, "second");
  ASSERT_EQ(s.requests(), 2);
  EXPECT_EQ(s.received()[1].body, "amount=5") << "the body sent again from the replay copy";
  EXPECT_EQ(up_metrics().retries[1], 1u) << "one retry, for a reset";
}

TEST_F(ClientTest, GetIsRetriedAfterAReset) {
  HttpServer s(reset_first);
  load("    targets: [ " + target(s) +
       " ]\n    retry: { attempts: 1, backoff: 1ms, on: [reset] }\n");
  Client c(io_.get_executor(), metrics_, rng_);
  Result r = call(c, {});
  ASSERT_TRUE(r.sent);
  EXPECT_EQ(r.body, "second");
  EXPECT_EQ(s.requests(), 2);
}

TEST_F(ClientTest, ResponseTimeoutIs504) {
  HttpServer s([](const HttpServer::Request&) { return HttpServer::hang(); });
  load("    targets: [ " + target(s) + " ]\n    timeouts: { response: 100ms }\n");
  Client c(io_.get_executor(), metrics_, rng_);
  Result r = call(c, {});
  EXPECT_FALSE(r.sent);
  EXPECT_EQ(r.status, 504);
  EXPECT_EQ(r.code, "upstream_timeout");
  ASSERT_TRUE(c.outcome());
  EXPECT_EQ(*c.outcome(), observe::UpstreamOutcome::kTimeout);
}

TEST_F(ClientTest, FullBulkheadAnswers503AtOnce) {
  HttpServer s([](const HttpServer::Request&) { return HttpServer::respond(200, "ok"); });
  load("    targets: [ " + target(s) + " ]\n    max_concurrent_requests: 1\n");
  ASSERT_TRUE(up().bulkhead());
  Client holder(io_.get_executor(), metrics_, rng_), other(io_.get_executor(), metrics_, rng_);

  // The first call holds the only slot until its body is relayed.
  Result first;
  ASSERT_TRUE(start(holder, {}, &first));
  FakeSource first_src(io_, holder, "");
  send(holder, first_src, &first);
  ASSERT_TRUE(first.sent);
  EXPECT_EQ(up().bulkhead()->in_flight(), 1);

  Result refused = call(other, {});
  EXPECT_FALSE(refused.sent);
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(refused.code, "upstream_overloaded");
  EXPECT_EQ(refused.retry_after, "1");
  EXPECT_EQ(up_metrics().rejected, 1u);
  EXPECT_EQ(s.requests(), 1) << "the refused call never reached the upstream";

  relay(holder, &first);
  EXPECT_EQ(up().bulkhead()->in_flight(), 0) << "finish() gave the slot back";
  Result later = call(other, {});
  ASSERT_TRUE(later.sent);
  EXPECT_EQ(later.status, 200);
}

TEST_F(ClientTest, QueuedCallGetsTheSlotWhenItFrees) {
  HttpServer s([](const HttpServer::Request& r) {
    return HttpServer::respond(200, "n" + std::to_string(r.number));
  });
  load("    targets: [ " + target(s) +
       " ]\n    max_concurrent_requests: 1\n    max_pending: 1\n    timeouts: { queue: 5s }\n");
  Client holder(io_.get_executor(), metrics_, rng_), waiter(io_.get_executor(), metrics_, rng_),
      third(io_.get_executor(), metrics_, rng_);

  Result first;
  ASSERT_TRUE(start(holder, {}, &first));
  FakeSource first_src(io_, holder, "");
  send(holder, first_src, &first);
  ASSERT_TRUE(first.sent);

  Result queued;
  ASSERT_TRUE(start(waiter, {}, &queued));
  FakeSource queued_src(io_, waiter, "");
  spawn_send(waiter, queued_src, &queued);
  ASSERT_TRUE(test::run_until(io_, [&] { return up().bulkhead()->waiting() == 1; }));
  EXPECT_FALSE(queued.done);

  Result full = call(third, {});
  EXPECT_FALSE(full.sent) << "the queue holds one";
  EXPECT_EQ(full.status, 503);
  EXPECT_EQ(full.code, "upstream_overloaded");

  relay(holder, &first);  // frees the slot: it goes to the waiting call
  ASSERT_TRUE(test::run_until(io_, [&] { return queued.done; }));
  ASSERT_TRUE(queued.sent) << queued.code << ": " << queued.message;
  relay(waiter, &queued);
  EXPECT_EQ(queued.body, "n2");
  EXPECT_EQ(up_metrics().queued, 1u);
}

TEST_F(ClientTest, QueuedCallGets503WhenNoSlotFreesInTime) {
  HttpServer s([](const HttpServer::Request&) { return HttpServer::respond(200, "ok"); });
  load("    targets: [ " + target(s) +
       " ]\n    max_concurrent_requests: 1\n    max_pending: 1\n    timeouts: { queue: 50ms }\n");
  Client holder(io_.get_executor(), metrics_, rng_), waiter(io_.get_executor(), metrics_, rng_);

  Result first;
  ASSERT_TRUE(start(holder, {}, &first));
  FakeSource first_src(io_, holder, "");
  send(holder, first_src, &first);
  ASSERT_TRUE(first.sent);

  Result r = call(waiter, {});
  EXPECT_FALSE(r.sent);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.code, "upstream_overloaded");
  EXPECT_NE(r.message.find("freed no request slot"), std::string::npos) << r.message;
  EXPECT_EQ(up().bulkhead()->waiting(), 0u) << "it left the queue";
  relay(holder, &first);
  EXPECT_EQ(up().bulkhead()->in_flight(), 0);
}

}  // namespace
}  // namespace gatehouse::upstream
