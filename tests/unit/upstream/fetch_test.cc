// upstream::Fetch, the one-shot request of the health checker and the JWKS fetcher, against the
// scripted loopback server (loopback.h).
#include "upstream/fetch.h"

#include <gtest/gtest.h>

#include <atomic>
#include <optional>
#include <thread>

#include "loopback.h"

namespace gatehouse::upstream {
namespace {

FetchRequest get(uint16_t port, std::chrono::milliseconds timeout) {
  FetchRequest r;
  r.endpoint = net::tcp::endpoint(net::asio::ip::address_v4::loopback(), port);
  r.head.start("GET", "/");
  r.head.add("Host", "x");
  r.head.finish();
  r.want_body = true;
  r.timeout = timeout;
  return r;
}

// One fetch on its own io_context, run to its end.
FetchResult fetch_once(const FetchRequest& r) {
  net::asio::io_context io;
  FetchResult res;
  bool done = false;
  net::asio::co_spawn(
      io.get_executor(),
      [&]() -> net::Task<> {
        Fetch f(io.get_executor());
        res = co_await f.run(r);
        done = true;
      },
      net::asio::detached);
  EXPECT_TRUE(test::run_until(io, [&] { return done; }));
  return res;
}

TEST(FetchTest, ReadsTheStatusAndBody) {
  test::HttpServer s([](const test::HttpServer::Request&) {
    return test::HttpServer::respond(200, "hello", true);
  });
  FetchResult res = fetch_once(get(s.port(), std::chrono::seconds(2)));
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "hello");
  EXPECT_EQ(res.error, "");
}

TEST(FetchTest, AnUnansweredRequestTimesOut) {
  test::HttpServer s([](const test::HttpServer::Request&) { return test::HttpServer::hang(); });
  FetchResult res = fetch_once(get(s.port(), std::chrono::milliseconds(50)));
  EXPECT_EQ(res.status, 0);
  EXPECT_EQ(res.error, "timed out");
}

// The deadline passes while the response is already waiting: both are ready when the io_context
// runs again. The response wins (the reactor hands out socket events before timers), the fetch
// ends and its Fetch is destroyed; the deadline's handler, queued already, must not touch it. Here
// the next Fetch is built in the same storage, so a handler holding the old `this` (the bug) would
// close the new fetch's connection ("timed out"); on other memory it was a use-after-free.
TEST(FetchTest, ADeadlineThatExpiredWithTheResponseLeavesLaterFetchesAlone) {
  std::atomic<bool> answer{false};
  test::HttpServer s([&](const test::HttpServer::Request& req) {
    if (req.number == 1) {
      while (!answer) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return test::HttpServer::respond(200, "ok", true);
  });
  net::asio::io_context io;
  std::optional<Fetch> slot;
  FetchResult first, second;
  bool done = false;
  net::asio::co_spawn(
      io.get_executor(),
      [&]() -> net::Task<> {
        slot.emplace(io.get_executor());
        first = co_await slot->run(get(s.port(), std::chrono::milliseconds(50)));
        slot.reset();
        slot.emplace(io.get_executor());
        second = co_await slot->run(get(s.port(), std::chrono::seconds(2)));
        done = true;
      },
      net::asio::detached);
  ASSERT_TRUE(test::run_until(io, [&] { return s.requests() >= 1; }));
  answer = true;
  // Not a wait for a result: this lets the response arrive and the deadline pass, both, while the
  // io_context is not running.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_TRUE(test::run_until(io, [&] { return done; }));
  ASSERT_EQ(first.status, 200) << first.error;
  EXPECT_EQ(second.status, 200) << second.error;
}

}  // namespace
}  // namespace gatehouse::upstream
