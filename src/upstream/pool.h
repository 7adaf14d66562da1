// Idle keep-alive connections to one target, owned by one worker (no locks).
//
// Before a connection that sat idle is reused, one non-blocking peek checks that the upstream has
// not closed it (or sent bytes nobody asked for). A connection back in the pool for less than
// kTrustWindow is reused without the check: under load that is nearly every lease, and it saves a
// system call per request. (A watch with async_wait would cost an epoll_ctl per lease in Asio, the
// same price.) The window left open -- an upstream closing a connection within a millisecond of a
// response that did not say "Connection: close" -- is covered by the proxy's one retry of an
// idempotent request (its body from the replay copy) on a new connection.
//
// A request the proxy may resend at once that way (an idempotent method, its body replayable) is
// trusted longer, kResendableTrust: a connection found dead then costs one resend, where checking
// costs a system call on every lease past the millisecond, which HTTP/2's bursts made 0.3 per
// request (connections cycle every millisecond or two). 100 ms stays far below the keep-alive
// timeouts upstreams close idle connections at (seconds: nginx 75 s, Node 5 s), so the resend stays
// rare; nginx and HAProxy never peek, and resend the same way.
//
// Reuse is LIFO, so under a steady load the oldest idle connections are seldom taken: when the
// upstream closes them (its keep-alive timeout), they would stay open on this side, in CLOSE_WAIT,
// until a burst reached them -- a descriptor each, up to max_idle per worker per target. So at
// most once every kSweepInterval, giving a connection back also checks those idle past the trust
// window, as take_idle would, and closes the ones the upstream closed.
//
// TLS connections are pooled established, so reuse skips the handshake. An idle TLS connection may
// hold records the upstream sent after the last response (TLS 1.3 session tickets): the check
// reads them through OpenSSL instead of peeking at the raw bytes, which would take them for data.
// For an HTTP/2 upstream, the pool holds its multiplexed connections instead (upstream/h2/): a
// request takes a stream on the first one with room (below the upstream's
// SETTINGS_MAX_CONCURRENT_STREAMS), and a new connection is made only when none has any.
//
// The pool also keeps the last resumable TLS session for the target, offered once by the next new
// connection (a TLS 1.3 ticket is meant for one use, RFC 8446 C.4).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net/asio.h"
#include "net/stream.h"
#include "tls/client_context.h"

namespace gatehouse::upstream {

namespace h2 {
class Session;
}

class TargetPool {
 public:
  static constexpr std::chrono::microseconds kTrustWindow{1000};
  static constexpr std::chrono::milliseconds kResendableTrust{100};
  static constexpr std::chrono::seconds kSweepInterval{1};

  TargetPool(net::tcp::endpoint endpoint, std::string address)
      : endpoint_(endpoint), address_(std::move(address)) {}
  TargetPool(const TargetPool&) = delete;
  TargetPool& operator=(const TargetPool&) = delete;

  // The most recently used idle connection that is still open, or nullopt. `resendable`: the
  // request can go again at once on a new connection if this one turns out dead.
  std::optional<net::Stream> take_idle(net::Clock::time_point now, bool resendable = false);
  // Keeps the connection for reuse if fewer than max_idle are kept (and the pool is not retired);
  // closes it otherwise. At most once every kSweepInterval, also closes the idle connections the
  // upstream closed meanwhile.
  void give_back(net::Stream s, size_t max_idle, net::Clock::time_point now);
  // HTTP/2: a connection that takes another stream now, or null; and a new one to share.
  std::shared_ptr<h2::Session> session_with_room();
  void add_session(std::shared_ptr<h2::Session> s);

  // TLS session resumption: the kept session (null if none), handed over; and the one to keep.
  tls::SessionPtr take_session() { return std::move(session_); }
  void keep_session(tls::SessionPtr s) {
    if (s && !retired_) session_ = std::move(s);
  }
  // The target left the configuration: close the idle connections, keep none from now on.
  void retire();
  bool retired() const { return retired_; }

  const net::tcp::endpoint& endpoint() const { return endpoint_; }
  const std::string& address() const { return address_; }
  size_t idle_count() const { return idle_.size(); }

 private:
  struct Idle {
    net::Stream stream;
    net::Clock::time_point since;
  };
  net::tcp::endpoint endpoint_;
  std::string address_;  // "ip:port", for logs
  void sweep(net::Clock::time_point now);

  std::vector<Idle> idle_;
  std::vector<std::shared_ptr<h2::Session>> sessions_;  // HTTP/2
  net::Clock::time_point last_sweep_{};
  tls::SessionPtr session_;
  bool retired_ = false;
};

}  // namespace gatehouse::upstream
