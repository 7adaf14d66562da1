// One HTTP/2 request stream (RFC 9113 5.1) as the exchange's Downstream.
//
// The request arrives as HPACK-decoded fields, which nghttp2 has already checked against RFC 9113
// 8.2 and 8.3 (lower-case names, no connection-specific fields, TE only "trailers", the pseudo-
// header fields, Content-Length against the DATA). They are written out as the HTTP/1.1 request
// head they stand for (:method, :path, Host from :authority, the Cookie fields joined, RFC 9113
// 8.2.3) and parsed by the same strict parser as an HTTP/1.1 client's: one set of rules for every
// protocol, and the exchange sees the same RequestHead. A body without Content-Length goes on
// chunked (RFC 9112 7.1), with the request's trailers in its last chunk.
//
// The response goes out as HEADERS and DATA: the fields the HTTP/1.1 codec would send, in lower
// case, without the connection-specific ones; the body through a bounded buffer that nghttp2
// reads as the client's flow-control windows allow.
//
// WebSocket over HTTP/2 (RFC 8441): an extended CONNECT (`:protocol websocket`) is written as the
// HTTP/1.1 upgrade it stands for (GET, Upgrade, a Sec-WebSocket-Key of its own), so the exchange
// routes, authenticates and sends it upstream as any WebSocket handshake. The upstream's 101
// becomes a 200, and the stream's DATA both ways is the tunnel's client side (a TunnelEnd).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "exchange/exchange.h"
#include "exchange/request_state.h"
#include "http/error_response.h"
#include "http/message.h"
#include "net/asio.h"

namespace gatehouse::http {
class FieldBlock;
}

namespace gatehouse::http2 {

class Connection;

class Stream final : public exchange::Downstream, public std::enable_shared_from_this<Stream> {
 public:
  Stream(Connection& c, int32_t id);
  ~Stream();

  const int32_t id;
  const net::Clock::time_point begun_at = net::coarse_now();  // its first header field
  bool head_done() const { return head_done_; }

  // --- the request, from nghttp2's callbacks
  // One field of the request's header section (or of its trailers, once the head is complete).
  // A section over server.limits.max_header_bytes is answered 431.
  void field(std::string_view name, std::string_view value);
  // The header section ended: the request head is written and parsed. `ended`: no body follows.
  void head_complete(bool ended);
  void body_piece(std::string_view data);
  void body_end();
  // The response's END_STREAM was sent.
  void response_ended();
  // nghttp2 closed the stream (its response sent, or a reset): the exchange is cut short if it
  // still runs.
  void closed();

  // --- the exchange, run by the connection
  net::Task<> serve();
  // What nghttp2 reads of the response body (its data source): up to `room` bytes into `to`.
  // -1: nothing yet (the stream waits for more); *eof: the body ends with these.
  long read_body(uint8_t* to, size_t space, bool* eof, bool* trailers);
  void send_trailers();
  // The exchange's deadline (an upstream::RequestSource::Phase's), max when none runs; the
  // connection calls deadline_passed() once it has passed.
  net::Clock::time_point deadline() const {
    return closed_ || served_ ? net::Clock::time_point::max() : deadline_;
  }
  void deadline_passed();
  // The tunnel, while the stream is one (the connection's drain closes it).
  websocket::Tunnel* tunnel_now() const { return tunnel_; }

 private:
  // exchange::Downstream
  std::string_view body_buffered() override;
  void body_consumed(size_t n, bool done) override;
  net::Task<bool> body_read_more() override;
  void interim_response(const http::ResponseHead& head) override;
  void set_deadline(upstream::RequestSource::Phase phase, net::Clock::duration after) override;
  std::string_view peer_ip() const override;
  bool peer_trusted() const override;
  bool secure() const override;
  std::string_view tls_version() const override;
  std::string_view protocol() const override { return "HTTP/2"; }
  bool carries_trailers() const override { return true; }
  bool full_duplex() const override { return true; }
  void abandon_body() override;
  bool body_whole() const override { return body_ended_; }
  std::string_view client_method(std::string_view method) const override {
    return extended_connect_ ? "CONNECT" : method;
  }
  int client_status(int status) const override {
    return extended_connect_ ? tunnel_status(status) : status;
  }
  // An extended CONNECT's answer: 200 once the upstream switched (RFC 8441 5), never another
  // 2xx, which would tell the client a tunnel is open where there is none (502 instead).
  static int tunnel_status(int status) {
    return status == 101 ? 200 : status / 100 == 2 ? 502 : status;
  }
  void release_head() override {}  // the head's bytes are the stream's own, kept to the end
  bool body_timed_out() const override { return false; }
  void start_response(const http::ResponseHead& head, const http::HeaderList& add,
                      const std::vector<std::string>& remove, std::string_view request_id,
                      bool rewritten, bool* payload) override;
  bool send_now(std::string_view& body, bool* ok) override;
  net::Task<bool> send(std::string_view body) override;
  bool send_payload_now(const std::vector<std::string_view>& pieces, bool* ok) override;
  net::Task<bool> send_payload(const std::vector<std::string_view>& pieces) override;
  net::Task<bool> send_chunk(std::string_view data, const http::HeaderList* trailers) override;
  net::Task<> answer(const http::ErrorResponse& e, std::string_view request_id,
                     std::string_view trace_id) override;
  net::Task<websocket::Tunnel::Bytes> tunnel(net::Stream& upstream, std::string_view upstream_first,
                                             const config::WebSocket& limits) override;
  void close_after() override {}  // the connection goes on: other streams use it
  void cut_response() override;
  uint64_t bytes_received() const override { return bytes_in_; }
  uint64_t bytes_sent() const override { return bytes_out_; }

  // Submits the response's HEADERS (`block`: its status and fields).
  void submit_head(http::FieldBlock& block, bool has_body);
  // The body bytes waiting for the client, and room for more.
  bool room() const;
  void queue(std::string_view bytes);
  void end_body();
  net::Task<bool> wait_for_room();
  void wake(net::Timer& t);
  void reset(uint32_t error_code);  // RST_STREAM
  void acknowledge(size_t n);       // n DATA bytes taken: WINDOW_UPDATE as nghttp2 sees fit

  class TunnelEnd;  // the stream's DATA as the tunnel's client side

  Connection& c_;
  // The exchange, the request head and its text (head_out), from the worker's pool.
  std::unique_ptr<exchange::RequestState> s_;
  exchange::Exchange& exchange_;

  // The request's head as HTTP/1.1 text (what req_'s views see), written as its fields come.
  void write_request_line();
  std::string method_, authority_, path_, cookie_, protocol_;
  bool extended_connect_ =
      false;  // :protocol websocket (RFC 8441): a tunnel, if the route takes it
  std::string& head_text_;
  bool line_written_ = false;
  bool has_length_ = false;
  bool host_differs_ = false;
  size_t field_bytes_ = 0;
  bool too_large_ = false;
  bool head_done_ = false;
  http::RequestHead& req_;
  bool parsed_ = false;
  http::ErrorResponse refusal_;  // why the head did not parse

  // The request body, as the exchange reads it (chunked when it has no Content-Length).
  std::string body_;
  size_t body_at_ = 0;
  bool chunked_ = false;
  bool body_ended_ = false;
  bool body_abandoned_ = false;  // the exchange reads no more of it
  uint64_t unacknowledged_ = 0;  // DATA bytes not yet given back to the client's window
  std::vector<std::pair<std::string, std::string>> trailers_in_;
  net::Timer body_wait_;
  bool continue_sent_ = false;

  // The response.
  bool responded_ = false;  // HEADERS submitted
  bool head_request_ = false;
  std::string out_;  // body bytes nghttp2 has not taken yet
  size_t out_at_ = 0;
  bool out_ended_ = false;
  http::HeaderList trailers_out_;
  net::Timer room_wait_;

  websocket::Tunnel* tunnel_ = nullptr;
  bool served_ = false;  // the exchange is over
  bool closed_ = false;  // by nghttp2: no more frames either way
  uint64_t bytes_in_ = 0, bytes_out_ = 0;

  // The exchange's deadlines (upstream::RequestSource::Phase), one at a time.
  upstream::RequestSource::Phase phase_{};
  net::Clock::time_point deadline_ = net::Clock::time_point::max();
};

}  // namespace gatehouse::http2
