// TargetPool with real loopback TCP connections: LIFO reuse, the max_idle bound, the liveness
// check outside kTrustWindow, or kResendableTrust for a request that can be resent (peer closed,
// unsolicited bytes), the sweep of idle connections the
// peer closed, retirement, and the TLS session kept for resumption.
#include "upstream/pool.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <chrono>

#include "loopback.h"

namespace gatehouse::upstream {
namespace {

using namespace std::chrono_literals;
using test::tcp_pair;
using test::TcpPair;

class PoolTest : public ::testing::Test {
 protected:
  net::asio::io_context io_;  // before the pool: its idle connections use it
  TargetPool pool_{net::tcp::endpoint(net::asio::ip::address_v4::loopback(), 9), "127.0.0.1:9"};
  // Past the trust window, so that take_idle checks the connection.
  const net::Clock::time_point t0_ = net::Clock::now();
  const net::Clock::time_point later_ = t0_ + TargetPool::kTrustWindow + 1ms;

  // Gives back one connection at t0_, then its peer closes it (the FIN has arrived).
  void give_back_one_the_peer_closes() {
    TcpPair p = tcp_pair(io_);
    const int fd = p.client.socket().native_handle();
    pool_.give_back(std::move(p.client), 4, t0_);
    p.server.close();
    ASSERT_TRUE(test::wait_readable(fd));
  }
};

TEST_F(PoolTest, EmptyPoolHasNothingToTake) {
  EXPECT_FALSE(pool_.take_idle(t0_));
  EXPECT_FALSE(pool_.take_idle(later_));
  EXPECT_EQ(pool_.idle_count(), 0u);
}

TEST_F(PoolTest, GivenBackConnectionIsTakenAgain) {
  TcpPair p = tcp_pair(io_);
  const uint16_t port = p.client_port();
  pool_.give_back(std::move(p.client), 4, t0_);
  EXPECT_EQ(pool_.idle_count(), 1u);
  auto s = pool_.take_idle(later_);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->socket().local_endpoint().port(), port) << "the same connection";
  EXPECT_EQ(pool_.idle_count(), 0u);
  EXPECT_FALSE(pool_.take_idle(later_)) << "handed out once";
}

TEST_F(PoolTest, MostRecentlyUsedIsTakenFirst) {
  TcpPair a = tcp_pair(io_), b = tcp_pair(io_), c = tcp_pair(io_);
  const uint16_t pa = a.client_port(), pb = b.client_port(), pc = c.client_port();
  pool_.give_back(std::move(a.client), 4, t0_);
  pool_.give_back(std::move(b.client), 4, t0_);
  pool_.give_back(std::move(c.client), 4, t0_);
  std::vector<uint16_t> order;
  while (auto s = pool_.take_idle(later_)) order.push_back(s->socket().local_endpoint().port());
  EXPECT_EQ(order, (std::vector<uint16_t>{pc, pb, pa}));
}

TEST_F(PoolTest, MaxIdleBoundClosesTheExtra) {
  TcpPair a = tcp_pair(io_), b = tcp_pair(io_), c = tcp_pair(io_);
  pool_.give_back(std::move(a.client), 2, t0_);
  pool_.give_back(std::move(b.client), 2, t0_);
  pool_.give_back(std::move(c.client), 2, t0_);
  EXPECT_EQ(pool_.idle_count(), 2u);
  EXPECT_TRUE(test::peer_closed(c.server_fd())) << "the third was closed";
  EXPECT_FALSE(test::peer_closed(a.server_fd(), 20ms)) << "the kept ones stay open";
  EXPECT_FALSE(test::peer_closed(b.server_fd(), 20ms));
}

TEST_F(PoolTest, MaxIdleZeroKeepsNone) {
  TcpPair a = tcp_pair(io_);
  pool_.give_back(std::move(a.client), 0, t0_);
  EXPECT_EQ(pool_.idle_count(), 0u);
  EXPECT_TRUE(test::peer_closed(a.server_fd()));
}

TEST_F(PoolTest, ConnectionThePeerClosedIsNotHandedOutPastTheTrustWindow) {
  TcpPair closed = tcp_pair(io_), open = tcp_pair(io_);
  const uint16_t open_port = open.client_port();
  pool_.give_back(std::move(open.client), 4, t0_);
  const int closed_fd = closed.client.socket().native_handle();
  pool_.give_back(std::move(closed.client), 4, t0_);
  closed.server.close();
  ASSERT_TRUE(test::wait_readable(closed_fd)) << "the FIN has arrived";
  // The most recent one is dead: it is dropped, and the older live one is handed out.
  auto s = pool_.take_idle(later_);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->socket().local_endpoint().port(), open_port);
  EXPECT_EQ(pool_.idle_count(), 0u);
}

TEST_F(PoolTest, ConnectionThePeerClosedIsTrustedWithinTheWindow) {
  // The documented trade-off: within kTrustWindow there is no check (the proxy's resend of an
  // idempotent request covers it).
  give_back_one_the_peer_closes();
  EXPECT_TRUE(pool_.take_idle(t0_ + TargetPool::kTrustWindow / 2));
}

TEST_F(PoolTest, ARequestThatCanBeResentTrustsAConnectionLonger) {
  // Past the millisecond, a request that could not be resent has the connection checked; one
  // that can be resent at once (an idempotent method) takes it unchecked for kResendableTrust.
  give_back_one_the_peer_closes();
  EXPECT_TRUE(pool_.take_idle(t0_ + TargetPool::kResendableTrust / 2, true));
}

TEST_F(PoolTest, ARequestThatCanBeResentStillHasAnOldConnectionChecked) {
  give_back_one_the_peer_closes();
  EXPECT_FALSE(pool_.take_idle(t0_ + TargetPool::kResendableTrust + 1ms, true));
  EXPECT_EQ(pool_.idle_count(), 0u) << "the dead connection was closed";
}

TEST_F(PoolTest, OnlyDeadConnectionsLeaveNothing) {
  TcpPair p = tcp_pair(io_);
  const int fd = p.client.socket().native_handle();
  pool_.give_back(std::move(p.client), 4, t0_);
  p.server.close();
  ASSERT_TRUE(test::wait_readable(fd));
  EXPECT_FALSE(pool_.take_idle(later_));
  EXPECT_EQ(pool_.idle_count(), 0u);
}

TEST_F(PoolTest, ConnectionWithUnsolicitedBytesIsDiscarded) {
  TcpPair p = tcp_pair(io_);
  const int fd = p.client.socket().native_handle();
  pool_.give_back(std::move(p.client), 4, t0_);
  const char junk[] = "HTTP/1.1 200 OK\r\n";
  ASSERT_EQ(::send(p.server_fd(), junk, sizeof junk - 1, MSG_NOSIGNAL),
            static_cast<ssize_t>(sizeof junk - 1));
  ASSERT_TRUE(test::wait_readable(fd));
  EXPECT_FALSE(pool_.take_idle(later_)) << "a response nobody asked for: not reusable";
  EXPECT_TRUE(test::peer_closed(p.server_fd())) << "and it was closed";
}

TEST_F(PoolTest, GivingBackClosesOldIdleConnectionsThePeerClosedOncePerSweepInterval) {
  // LIFO reuse seldom reaches the oldest idle connections: when the upstream closes one, a later
  // give_back closes it here too (instead of leaving it in CLOSE_WAIT until a burst takes it),
  // and keeps the live ones in their order.
  TcpPair a = tcp_pair(io_), b = tcp_pair(io_), c = tcp_pair(io_), d = tcp_pair(io_),
          e = tcp_pair(io_);
  const uint16_t pb = b.client_port(), pd = d.client_port(), pe = e.client_port();
  const int fa = a.client.socket().native_handle(), fc = c.client.socket().native_handle();
  pool_.give_back(std::move(a.client), 8, t0_);  // the first give_back sweeps (nothing to close)
  pool_.give_back(std::move(b.client), 8, t0_);
  pool_.give_back(std::move(c.client), 8, t0_);
  a.server.close();
  c.server.close();
  ASSERT_TRUE(test::wait_readable(fa));
  ASSERT_TRUE(test::wait_readable(fc));
  // Within the sweep interval of the last sweep: nothing is checked.
  pool_.give_back(std::move(d.client), 8, t0_ + TargetPool::kSweepInterval / 2);
  EXPECT_EQ(pool_.idle_count(), 4u);
  // Past it: the two the peer closed are closed; the one just given back is not checked.
  pool_.give_back(std::move(e.client), 8, t0_ + TargetPool::kSweepInterval + 1ms);
  EXPECT_EQ(pool_.idle_count(), 3u);
  std::vector<uint16_t> order;
  while (auto s = pool_.take_idle(t0_ + TargetPool::kSweepInterval + 2ms))
    order.push_back(s->socket().local_endpoint().port());
  EXPECT_EQ(order, (std::vector<uint16_t>{pe, pd, pb}));
}

TEST_F(PoolTest, SweepKeepsLiveIdleConnectionsOpen) {
  TcpPair a = tcp_pair(io_), b = tcp_pair(io_);
  pool_.give_back(std::move(a.client), 4, t0_);
  pool_.give_back(std::move(b.client), 4, t0_ + TargetPool::kSweepInterval + 1ms);
  EXPECT_EQ(pool_.idle_count(), 2u);
  EXPECT_FALSE(test::peer_closed(a.server_fd(), 20ms)) << "open and quiet: kept";
}

TEST_F(PoolTest, RetireClosesIdleConnectionsAndKeepsNoneAfter) {
  TcpPair a = tcp_pair(io_), b = tcp_pair(io_), c = tcp_pair(io_);
  pool_.give_back(std::move(a.client), 4, t0_);
  pool_.give_back(std::move(b.client), 4, t0_);
  EXPECT_FALSE(pool_.retired());
  pool_.retire();
  EXPECT_TRUE(pool_.retired());
  EXPECT_EQ(pool_.idle_count(), 0u);
  EXPECT_TRUE(test::peer_closed(a.server_fd()));
  EXPECT_TRUE(test::peer_closed(b.server_fd()));
  // A request that was still using a connection finishes: its connection is closed, not kept.
  pool_.give_back(std::move(c.client), 4, t0_);
  EXPECT_EQ(pool_.idle_count(), 0u);
  EXPECT_TRUE(test::peer_closed(c.server_fd()));
  EXPECT_FALSE(pool_.take_idle(t0_));
}

tls::SessionPtr new_session() { return tls::SessionPtr(SSL_SESSION_new()); }

TEST_F(PoolTest, KeptSessionIsHandedOverOnce) {
  EXPECT_FALSE(pool_.take_session()) << "none kept yet";
  auto s = new_session();
  ASSERT_TRUE(s);
  auto* raw = s.get();
  pool_.keep_session(std::move(s));
  auto taken = pool_.take_session();
  EXPECT_EQ(taken.get(), raw);
  EXPECT_FALSE(pool_.take_session()) << "a ticket is offered by one connection only";
}

TEST_F(PoolTest, NewerSessionReplacesTheKeptOne) {
  pool_.keep_session(new_session());
  auto s = new_session();
  auto* raw = s.get();
  pool_.keep_session(std::move(s));
  EXPECT_EQ(pool_.take_session().get(), raw);
}

TEST_F(PoolTest, NullSessionDoesNotDropTheKeptOne) {
  auto s = new_session();
  auto* raw = s.get();
  pool_.keep_session(std::move(s));
  pool_.keep_session(nullptr);  // a connection whose server gave no resumable session
  EXPECT_EQ(pool_.take_session().get(), raw);
}

TEST_F(PoolTest, RetiredPoolKeepsNoSession) {
  pool_.keep_session(new_session());
  pool_.retire();
  EXPECT_FALSE(pool_.take_session()) << "retire drops the kept session";
  pool_.keep_session(new_session());
  EXPECT_FALSE(pool_.take_session()) << "and keeps none after";
}

}  // namespace
}  // namespace gatehouse::upstream
