// The HTTP/1.1 codec, server side: one client connection. Reads request heads (keep-alive and
// pipelining), parses them strictly, hands each to the exchange (src/exchange/) as its Downstream,
// and writes what the exchange answers in HTTP/1.1 framing: the upstream's head and body (chunked
// passed through, or de-chunked for HTTP/1.0 clients), or the gateway's own JSON answers. It keeps
// the connection's deadlines (one lazily re-armed timer) and its lingering close. Lives on one
// worker; everything here runs on that worker's thread.
//
// Between requests a connection holds no buffer and (plain TCP) no coroutine: it waits for the
// next request's first bytes with a read into a small array of its own, then takes a
// RequestState (buffer, exchange, scratch) from the worker's pool and runs the requests in a
// coroutine until it is idle again, giving the state back once the response is out and nothing
// is buffered. Waiting with a read, not a readiness wait, keeps Asio's speculative read: a
// request that has already arrived costs no extra system call.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "exchange/context.h"
#include "exchange/exchange.h"
#include "exchange/request_state.h"
#include "http/error_response.h"
#include "http/message.h"
#include "net/asio.h"
#include "net/stream.h"

namespace gatehouse::tls {
class ServerContext;
}

namespace gatehouse::http1 {

class Connection final : public std::enable_shared_from_this<Connection>,
                         public exchange::Drainable,
                         private exchange::Downstream {
 public:
  // `handshaken`: a TLS client's handshake is done (the listener chose the protocol by ALPN).
  Connection(exchange::WorkerContext& worker, exchange::RequestStatePool& pool, net::Stream client,
             bool handshaken);
  ~Connection();
  // Serves a connection accepted on a listener; `tls` when that listener terminates TLS.
  // `pool`: the worker's, for the state of each request.
  static void start(exchange::WorkerContext& worker, exchange::RequestStatePool& pool,
                    net::Socket socket, std::shared_ptr<const tls::ServerContext> tls);
  // Serves a connection whose protocol the listener chose (by ALPN, after the TLS handshake, or
  // by its first bytes, `first`, which are not the HTTP/2 preface).
  static void start(exchange::WorkerContext& worker, exchange::RequestStatePool& pool,
                    net::Stream client, std::string_view first);

  // Drain: an idle connection closes now; a busy one closes after its current response.
  void drain() override;
  void close_now() override;
  bool tunnelling() const override { return tunnel_ != nullptr; }

 private:
  enum class Phase {
    kClientIdle,
    kClientRead,
    kQueued,
    kUpstreamConnect,
    kUpstreamResponse,
    kStream,    // a body streaming either way: a stall
    kBodyRead,  // the request body's own deadline (timeouts.body_read)
    kSend       // the client taking response bytes (timeouts.send)
  };
  enum class Head { kRequest, kError, kClose };

  void spawn();      // run() in a coroutine of its own
  void wait_idle();  // a plain connection's wait for its next request
  net::Task<> run();
  void refresh_view();
  net::Task<Head> read_head();              // the rest of a head whose first bytes are in s_->in
  void take_state(std::string_view bytes);  // a request's first bytes, read while idle
  void go_idle();                           // the state back to the pool, when nothing is buffered
  void reset_request();                     // a head has arrived: a new request's counters
  void begin_request();  // it parsed: the facts the codec needs after its views are gone

  // exchange::Downstream
  std::string_view body_buffered() override { return s_->in.data(); }
  void body_consumed(size_t n, bool done) override;
  net::Task<bool> body_read_more() override;
  bool body_timed_out() const override { return body_timed_out_; }
  void set_deadline(upstream::RequestSource::Phase phase, net::Clock::duration after) override;
  std::string_view peer_ip() const override { return client_ip_; }
  bool peer_trusted() const override { return client_trusted_; }
  bool secure() const override { return client_.tls(); }
  std::string_view tls_version() const override { return client_.tls_version(); }
  std::string_view protocol() const override { return req_http10_ ? "HTTP/1.0" : "HTTP/1.1"; }
  void release_head() override;
  void start_response(const http::ResponseHead& head, const http::HeaderList& add,
                      const std::vector<std::string>& remove, std::string_view request_id,
                      bool rewritten, bool* payload) override;
  bool send_now(std::string_view& body, bool* ok) override;
  net::Task<bool> send(std::string_view body) override;
  net::Task<bool> send_payload(const std::vector<std::string_view>& pieces) override;
  net::Task<bool> send_chunk(std::string_view data, const http::HeaderList* trailers) override;
  net::Task<> answer(const http::ErrorResponse& e, std::string_view request_id,
                     std::string_view trace_id) override;
  net::Task<websocket::Tunnel::Bytes> tunnel(net::Stream& upstream, std::string_view upstream_first,
                                             const config::WebSocket& limits) override;
  void close_after() override { close_after_ = true; }
  void cut_response() override;
  void interim_response(const http::ResponseHead& head) override;
  uint64_t bytes_received() const override { return bytes_in_; }
  uint64_t bytes_sent() const override { return bytes_out_; }

  void take_interim_left();
  bool write_client_now(std::string_view& a, std::string_view& b, bool* ok);
  net::Task<bool> write_client(std::string_view a, std::string_view b = {});
  net::Task<bool> read_client();
  void set_deadline(Phase phase, net::Clock::duration after);
  void arm_timer(net::Clock::time_point at);
  void on_timer();

  exchange::WorkerContext& w_;
  net::Stream client_;
  net::Timer timer_;
  net::Clock::time_point deadline_;
  net::Clock::time_point armed_at_ = net::Clock::time_point::max();
  Phase phase_ = Phase::kClientIdle;
  bool handshaken_;  // TLS: done (or not needed)
  bool closed_ = false;
  bool busy_ = false;
  bool idle_ = false;             // run() returned to wait for the next request without it
  bool close_after_ = false;      // send Connection: close and stop after this response
  bool close_ends_body_ = false;  // the response body goes to the client delimited by the close
  bool reset_on_close_ = false;   // ... and it was cut short: a reset, not a close, must end it

  std::shared_ptr<exchange::View> view_;    // for the limits and timeouts of the next request
  const config::Snapshot* snap_ = nullptr;  // view_->snapshot
  exchange::RequestStatePool& pool_;
  std::unique_ptr<exchange::RequestState>
      s_;  // while a request is in progress or bytes are buffered
  // An idle connection's read lands here: most requests fit, and arrive in one read.
  char first_[256];
  std::string_view head_left_;     // of s_->head_out, the part of the response head not yet sent
  std::string_view interim_left_;  // of s_->interim_out, what has not gone out yet
  bool rechunk_ = false;           // a body the filters rewrite goes chunked
  websocket::Tunnel* tunnel_ = nullptr;  // while the connection is a tunnel

  std::string client_ip_;
  bool client_trusted_ = false;
  uint64_t bytes_in_ = 0, bytes_out_ = 0;
  bool response_started_ = false;  // a byte of the response went to the client
  bool body_pending_ = false;      // request body bytes not yet read from the client
  bool head_consumed_ = true;      // the head's views are dead once it left the buffer
  // Request facts that outlive the head's views (the body is read after the head is consumed).
  bool req_is_head_ = false, req_http10_ = false, req_expect_continue_ = false;
  http::Framing req_framing_ = http::Framing::kNone;
  uint64_t req_length_ = 0;
  bool continue_sent_ = false;  // the client was told 100 Continue
  // timeouts.body_read: when the request body must have arrived (from the end of the head, or
  // from 100 Continue when the client waited for it), and whether it failed to.
  net::Clock::time_point body_deadline_ = net::Clock::time_point::max();
  bool body_timed_out_ = false;
};

}  // namespace gatehouse::http1
