// net::DrainingBuffer (src/net/draining_read.h): after a read that came back short, the next read
// on the socket makes no recv() until epoll reports bytes, and no bytes are missed for it. And
// net::Stream's use of it for a peer that answers (an upstream): a read after a send waits for
// the answer without a recv; a read without a send still sees an end that came with the last bytes.
//
// recv() is counted by interposing it in this test binary (its own executable, so that no other
// test runs with the wrapper): Asio's reads are compiled here and call ::recv, which resolves to
// the definition below, which counts calls on the socket under test and forwards to libc's.
#include "net/draining_read.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <array>
#include <boost/asio/read.hpp>
#include <chrono>
#include <cstring>
#include <string>

#include "net/stream.h"

namespace {
int watched_fd = -1;
int recv_calls = 0;
}  // namespace

extern "C" ssize_t recv(int fd, void* buf, size_t len, int flags) {
  using Recv = ssize_t (*)(int, void*, size_t, int);
  static const auto real = reinterpret_cast<Recv>(dlsym(RTLD_NEXT, "recv"));
  if (fd == watched_fd) ++recv_calls;
  return real(fd, buf, len, flags);
}

namespace gatehouse::net {
namespace {

// A connected pair on loopback: `server` is the socket under test, `client` writes to it.
struct Pair {
  asio::io_context io{1};
  Socket server{io.get_executor()}, client{io.get_executor()};
  Pair() {
    Acceptor acceptor(io.get_executor(), tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server);
    watched_fd = server.native_handle();
    recv_calls = 0;
  }
  ~Pair() { watched_fd = -1; }
  void send(const std::string& s) { asio::write(client, asio::buffer(s)); }
};

struct Read {
  bool done = false;
  boost::system::error_code ec;
  size_t n = 0;
};

template <class Buffer>
void start_read(Pair& p, Buffer b, Read& r) {
  p.server.async_read_some(b, [&r](boost::system::error_code ec, size_t n) {
    r.done = true;
    r.ec = ec;
    r.n = n;
  });
}

// Runs handlers until `r` is done (an event: the bytes or the end arriving), bounded.
void run_until(Pair& p, const Read& r) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!r.done && std::chrono::steady_clock::now() < give_up) {
    p.io.restart();
    p.io.run_one_for(std::chrono::milliseconds(100));
  }
}

// A first read that waits for `text`, which epoll reports (as a response an upstream has not sent
// yet is): it comes back short, and the event that reported it is consumed with it.
void first_read(Pair& p, asio::mutable_buffer b, const std::string& text) {
  Read r;
  start_read(p, DrainingBuffer(b), r);
  p.io.restart();
  p.io.poll();
  ASSERT_FALSE(r.done);
  p.send(text);
  run_until(p, r);
  ASSERT_TRUE(r.done);
  ASSERT_EQ(r.n, text.size());
}

// The short read's own recv, then nothing until the next bytes come: one recv for them.
TEST(DrainingRead, AfterAShortReadTheNextReadWaitsForEpollWithoutARecv) {
  Pair p;
  std::array<char, 64> buf;
  first_read(p, asio::buffer(buf), "hello");
  const int after_first = recv_calls;

  Read second;
  start_read(p, DrainingBuffer(asio::buffer(buf)), second);
  p.io.restart();
  p.io.poll();
  EXPECT_FALSE(second.done);
  EXPECT_EQ(recv_calls, after_first) << "a recv was tried on a socket known to be empty";

  p.send("world!");
  run_until(p, second);
  ASSERT_TRUE(second.done);
  EXPECT_FALSE(second.ec);
  EXPECT_EQ(std::string(buf.data(), second.n), "world!");
  EXPECT_EQ(recv_calls, after_first + 1);
}

// Asio's own buffer, for contrast: the next read's first try is a recv that finds nothing.
TEST(DrainingRead, AsiosOwnReadTriesFirstEvenAfterAShortRead) {
  Pair p;
  std::array<char, 64> buf;
  p.send("hello");
  Read first;
  start_read(p, asio::buffer(buf), first);
  run_until(p, first);
  ASSERT_EQ(first.n, 5u);
  const int after_first = recv_calls;
  Read second;
  start_read(p, asio::buffer(buf), second);
  EXPECT_EQ(recv_calls, after_first + 1);
  EXPECT_FALSE(second.done);
  p.server.cancel();
  run_until(p, second);
}

// Bytes that arrive between the short read and the next one are not missed: epoll reports them.
TEST(DrainingRead, BytesArrivingBeforeTheNextReadStartsAreRead) {
  Pair p;
  std::array<char, 64> buf;
  first_read(p, asio::buffer(buf), "one");
  p.send("two");
  pollfd pfd{p.server.native_handle(), POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 5000), 1);  // in the socket now, before the read starts
  Read second;
  start_read(p, DrainingBuffer(asio::buffer(buf)), second);
  run_until(p, second);
  ASSERT_TRUE(second.done);
  EXPECT_EQ(std::string(buf.data(), second.n), "two");
}

// A read that filled its buffer may have left bytes behind: the next one tries at once.
TEST(DrainingRead, AFullReadLeavesTheNextReadToTryAtOnce) {
  Pair p;
  std::array<char, 4> buf;
  p.send("abcdefgh");
  pollfd pfd{p.server.native_handle(), POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 5000), 1);
  Read first;
  start_read(p, DrainingBuffer(asio::buffer(buf)), first);
  run_until(p, first);
  ASSERT_EQ(first.n, 4u);
  Read second;
  start_read(p, DrainingBuffer(asio::buffer(buf)), second);
  p.io.restart();
  p.io.poll();
  ASSERT_TRUE(second.done);
  EXPECT_EQ(std::string(buf.data(), second.n), "efgh");
}

// The peer's close after a short read ends the waiting read (end of stream).
TEST(DrainingRead, ThePeersCloseEndsAWaitingRead) {
  Pair p;
  std::array<char, 64> buf;
  first_read(p, asio::buffer(buf), "last");
  Read second;
  start_read(p, DrainingBuffer(asio::buffer(buf)), second);
  p.client.close();
  run_until(p, second);
  ASSERT_TRUE(second.done);
  EXPECT_EQ(second.ec, asio::error::eof);
}

// net::Stream over the pair's server side, as the upstream client holds a connection.
struct StreamRead {
  Read r;
  std::array<char, 64> buf;
};
void stream_read(Pair& p, Stream& s, StreamRead& sr) {
  asio::co_spawn(
      p.io.get_executor(),
      [&]() -> Task<> {
        auto [ec, n] = co_await s.read_some(asio::buffer(sr.buf));
        sr.r = {true, ec, n};
      },
      asio::detached);
}

// The server side as an upstream connection is held: non-blocking, expecting answers.
Stream answering(Pair& p) {
  Stream s(std::move(p.server));
  s.socket().non_blocking(true);
  s.expect_answers();
  return s;
}

// Sends `request`, then starts the read of its answer, and runs what is ready without waiting.
void ask(Pair& p, Stream& s, std::string_view request, StreamRead& answer) {
  std::string_view none;
  ASSERT_TRUE(s.send_now(request, none));
  stream_read(p, s, answer);
  p.io.restart();
  p.io.poll();
}

// The answer to a request: after the send, the read waits for it without trying first.
TEST(DrainingRead, AStreamThatExpectsAnswersReadsTheAnswerToASendWithoutATry) {
  Pair p;
  Stream s = answering(p);
  StreamRead first;
  ask(p, s, "ping", first);
  p.send("pong");
  run_until(p, first.r);
  ASSERT_EQ(first.r.n, 4u);
  const int after_first = recv_calls;

  StreamRead second;
  ask(p, s, "ping", second);
  EXPECT_FALSE(second.r.done);
  EXPECT_EQ(recv_calls, after_first) << "the answer was tried for before epoll reported it";
  p.send("pong2");
  run_until(p, second.r);
  ASSERT_TRUE(second.r.done);
  EXPECT_EQ(std::string(second.buf.data(), second.r.n), "pong2");
}

// A peer that sends part of an answer and closes at once (an upstream cut short): the bytes and
// the end arrive together, with one edge, and the read after them (no send between) sees the end
// at once rather than waiting for an edge that will not come.
TEST(DrainingRead, AStreamSeesAnEndThatCameWithTheLastBytes) {
  Pair p;
  Stream s = answering(p);
  StreamRead first;
  ask(p, s, "GET", first);
  std::array<char, 3> got;
  asio::read(p.client, asio::buffer(got));  // the request read: the close is a FIN, not a reset
  p.send("partial");
  p.client.close();
  run_until(p, first.r);
  ASSERT_EQ(first.r.n, 7u);
  StreamRead second;
  stream_read(p, s, second);
  run_until(p, second.r);
  ASSERT_TRUE(second.r.done) << "the end was not seen";
  EXPECT_EQ(second.r.ec, asio::error::eof);
}

}  // namespace
}  // namespace gatehouse::net
