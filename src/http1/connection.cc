#include "http1/connection.h"

#include <cstring>

#include "config/snapshot.h"
#include "exchange/peer.h"
#include "http/chunked.h"
#include "http/parser.h"
#include "http/proxy_headers.h"
#include "websocket/frames.h"

namespace gatehouse::http1 {
namespace {

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

}  // namespace

Connection::Connection(exchange::WorkerContext& worker, exchange::RequestStatePool& pool,
                       net::Stream client, bool handshaken)
    : w_(worker),
      client_(std::move(client)),
      timer_(worker.io().get_executor()),
      handshaken_(handshaken || !client_.tls()),
      pool_(pool) {
  auto peer =
      exchange::peer_of(client_.socket(), w_.view()->snapshot->config.server.trusted_proxies);
  client_ip_ = std::move(peer.ip);
  client_trusted_ = peer.trusted;
  boost::system::error_code ec;
  client_.socket().set_option(net::tcp::no_delay(true), ec);
  client_.socket().non_blocking(true, ec);  // for send_now(): never block the worker
  w_.add(this);
}

Connection::~Connection() { w_.remove(this); }

void Connection::start(exchange::WorkerContext& worker, exchange::RequestStatePool& pool,
                       net::Socket socket, std::shared_ptr<const tls::ServerContext> tls) {
  net::Stream client(std::move(socket));
  if (tls) client.start_tls_server(std::move(tls));
  auto self = std::make_shared<Connection>(worker, pool, std::move(client), false);
  if (self->client_.tls()) {
    self->spawn();  // the handshake first
  } else {
    self->wait_idle();
  }
}

void Connection::start(exchange::WorkerContext& worker, exchange::RequestStatePool& pool,
                       net::Stream client, std::string_view first) {
  auto self = std::make_shared<Connection>(worker, pool, std::move(client), true);
  if (first.empty()) {
    if (self->client_.tls()) {
      self->spawn();
    } else {
      self->wait_idle();
    }
    return;
  }
  self->take_state(first);
  self->busy_ = true;
  self->spawn();
}

// The completion handler holds the connection for as long as run() runs (one coroutine frame
// fewer than a lambda coroutine that holds it), and waits for the next request when run()
// returned because the connection went idle.
void Connection::spawn() {
  net::asio::co_spawn(w_.io().get_executor(), run(),
                      [self = shared_from_this()](std::exception_ptr) {
                        if (self->idle_) self->wait_idle();
                      });
}

// A plain connection between requests: no coroutine at all, a read into first_ whose handler
// holds the connection. The idle timeout or a drain closes the socket, which ends the read; run()
// takes the view current when the bytes arrive.
void Connection::wait_idle() {
  idle_ = false;
  if (closed_) return;
  if (w_.draining()) return close_now();
  // Nor a view: a snapshot a reload retired is freed without waiting for idle clients. The idle
  // timeout is read from the worker's current one, without taking a reference to it.
  view_.reset();
  snap_ = nullptr;
  set_deadline(Phase::kClientIdle, w_.view()->snapshot->config.server.timeouts.idle);
  client_.socket().async_read_some(
      net::asio::buffer(first_, sizeof first_),
      [self = shared_from_this()](boost::system::error_code ec, size_t n) {
        if (ec || n == 0 || self->closed_) return self->close_now();  // closed, reset, timed out
        self->take_state({self->first_, n});
        self->busy_ = true;  // a drain from now on lets this request finish
        self->spawn();
      });
}

void Connection::drain() {
  if (!busy_) close_now();
  close_after_ = true;
}

void Connection::close_now() {
  if (closed_) return;
  if (tunnel_) tunnel_->shutdown(websocket::kGoingAway);  // a drain's end: 1001 to both sides
  closed_ = true;
  client_.close();
  if (s_) s_->exchange.abort();
  timer_.cancel();
}

// --- deadlines -------------------------------------------------------------------------------
// One timer per connection, re-armed lazily: moving a deadline later costs a store, and the timer
// re-arms itself when it fires early. Only a deadline earlier than the armed one touches the timer.

void Connection::set_deadline(Phase phase, net::Clock::duration after) {
  phase_ = phase;
  deadline_ = net::coarse_now() + after;
  if (deadline_ < armed_at_) arm_timer(deadline_);
}

void Connection::arm_timer(net::Clock::time_point at) {
  armed_at_ = at;
  timer_.expires_at(at);
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec != net::asio::error::operation_aborted) self->on_timer();
  });
}

void Connection::on_timer() {
  armed_at_ = net::Clock::time_point::max();
  if (closed_) return;
  // The precise clock here (rare: only when the timer fires): the coarse one can lag the timer's
  // own expiry by a tick, and would re-arm it in a tight loop until it caught up.
  if (net::Clock::now() < deadline_) {
    arm_timer(deadline_);
    return;
  }
  // A request waiting for a bulkhead slot gets 503, one waiting on the upstream 504; the client
  // connection stays usable. Any other deadline (the client's, or a body's stream) closes it.
  using Upstream = upstream::RequestSource::Phase;
  switch (phase_) {
    case Phase::kQueued:
      deadline_ = net::Clock::time_point::max();
      s_->exchange.deadline_passed(Upstream::kQueued);
      break;
    case Phase::kUpstreamConnect:
      deadline_ = net::Clock::time_point::max();
      s_->exchange.deadline_passed(Upstream::kConnect);
      break;
    case Phase::kUpstreamResponse:
      deadline_ = net::Clock::time_point::max();
      s_->exchange.deadline_passed(Upstream::kResponse);
      break;
    case Phase::kBodyRead: {
      // The body took too long as a whole (a trickle that each stall limit lets through): the
      // read in progress ends, the exchange answers 408 and the connection closes after it. The
      // stall limit stays as a backstop, should the body be waiting on the upstream instead.
      body_timed_out_ = true;
      boost::system::error_code ignored;
      client_.socket().cancel(ignored);
      set_deadline(Phase::kStream, snap_->config.server.timeouts.idle);
      break;
    }
    case Phase::kSend:
      // The client stopped taking the response: a reset, so that what the kernel still holds
      // for it is dropped at once rather than kept for a peer that does not read.
      client_.reset();
      close_now();
      break;
    default:
      // A response body that stalled (or a client that stopped reading it): when the close is
      // what ends that body, only a reset keeps the client from taking it for complete.
      if (phase_ == Phase::kStream && response_started_ && close_ends_body_) client_.reset();
      close_now();
  }
}

void Connection::set_deadline(upstream::RequestSource::Phase phase, net::Clock::duration after) {
  using Upstream = upstream::RequestSource::Phase;
  switch (phase) {
    case Upstream::kQueued:
      return set_deadline(Phase::kQueued, after);
    case Upstream::kConnect:
      return set_deadline(Phase::kUpstreamConnect, after);
    case Upstream::kResponse:
      return set_deadline(Phase::kUpstreamResponse, after);
    case Upstream::kStream:
      // While the request body is still coming, its own deadline binds when it is the earlier.
      if (body_pending_ && !body_timed_out_ && body_deadline_ - net::coarse_now() <= after) {
        phase_ = Phase::kBodyRead;
        deadline_ = body_deadline_;
        if (deadline_ < armed_at_) arm_timer(deadline_);
        return;
      }
      return set_deadline(Phase::kStream, after);
    case Upstream::kSend:
      return set_deadline(Phase::kSend, after);
  }
}

// --- client I/O ------------------------------------------------------------------------------

bool Connection::write_client_now(std::string_view& a, std::string_view& b, bool* ok) {
  size_t total = a.size() + b.size();
  *ok = client_.send_now(a, b);
  bytes_out_ += total - a.size() - b.size();
  if (!*ok) close_after_ = true;
  return !*ok || (a.empty() && b.empty());
}

net::Task<bool> Connection::write_client(std::string_view a, std::string_view b) {
  bool ok;
  if (write_client_now(a, b, &ok)) co_return ok;
  ok = co_await client_.send_rest(a, b, &bytes_out_);
  if (!ok) close_after_ = true;
  co_return ok;
}

net::Task<bool> Connection::read_client() {
  auto [ptr, room] = s_->in.prepare(net::kReadChunk, net::kStreamBuffer);
  if (room == 0) co_return false;
  auto [ec, n] = co_await client_.read_some(net::asio::buffer(ptr, room));
  if (ec || n == 0) co_return false;
  s_->in.commit(n);
  co_return true;
}

// The first bytes of a request, read while idle (into first_): now it needs a state.
void Connection::take_state(std::string_view bytes) {
  if (!s_) s_ = pool_.take();
  const size_t want = std::max(bytes.size(), net::kReadChunk);  // the head's reads follow
  auto [ptr, room] = s_->in.prepare(want, want);
  std::memcpy(ptr, bytes.data(), bytes.size());
  s_->in.commit(bytes.size());
}

void Connection::go_idle() {
  if (s_ && s_->in.empty()) pool_.give(std::move(s_));
}

// --- the connection loop ---------------------------------------------------------------------

// The view is the worker's own (no other core touches its count), and copied only on change.
void Connection::refresh_view() {
  if (view_ != w_.view()) {
    view_ = w_.view();
    snap_ = view_->snapshot.get();
  }
}

net::Task<> Connection::run() {
  if (!handshaken_) {
    handshaken_ = true;
    // The handshake counts against header_read: a client that stalls it is cut off the same way.
    refresh_view();
    set_deadline(Phase::kClientRead, snap_->config.server.timeouts.header_read);
    if (!co_await client_.handshake()) {
      close_now();
      co_return;
    }
    set_deadline(Phase::kClientIdle, snap_->config.server.timeouts.idle);
  }
  while (!closed_) {
    refresh_view();  // the limits and timeouts for reading the head
    if (!s_ || s_->in.empty()) {
      busy_ = false;
      if (!client_.tls()) {
        idle_ = true;  // spawn()'s handler waits without a coroutine
        co_return;
      }
      // TLS reads go through OpenSSL in a coroutine: the wait stays in this one, rather than in
      // read_head(), so that no frame but this one is held.
      if (w_.draining()) break;
      set_deadline(Phase::kClientIdle, snap_->config.server.timeouts.idle);
      auto [ec, n] = co_await client_.read_some(net::asio::buffer(first_, sizeof first_));
      if (ec || n == 0) break;  // closed, reset, or the idle timeout
      take_state({first_, n});
    }
    busy_ = true;
    Head head = co_await read_head();
    if (head == Head::kClose) break;
    // A request starts when its head has arrived: a reload that came while this connection sat
    // idle applies to it.
    refresh_view();
    if (head == Head::kRequest) {
      co_await s_->exchange.serve(s_->req, *this);
    } else {
      auto& r = s_->refusal;
      co_await s_->exchange.refuse(r.status, r.code, std::move(r.message), *this);
    }
    s_->exchange.finish(*this);
    busy_ = false;
    if (close_after_ || closed_) break;
    go_idle();
  }
  if (!closed_ && reset_on_close_) {
    // A close-delimited body cut short: a close would tell the client that it ended there
    // (RFC 9112 6.3 item 8); a reset says that it did not (RFC 9112 8, an incomplete message).
    client_.reset();
  } else if (!closed_) {
    // Lingering close (RFC 9112 9.6): stop sending, then read and drop what the client still sends
    // for a moment, so unread request bytes cannot turn our close into a reset that destroys the
    // response before the client reads it.
    client_.shutdown_send();
    set_deadline(Phase::kClientIdle, std::chrono::seconds(2));
    if (!s_) s_ = pool_.take();
    for (int i = 0; i < 64 && !closed_; ++i) {
      s_->in.consume(s_->in.size());
      bool more = co_await read_client();
      if (!more) break;
    }
    s_->in.consume(s_->in.size());
    go_idle();
  }
  close_now();
}

net::Task<Connection::Head> Connection::read_head() {
  const auto& limits = snap_->config.server.limits;
  const auto& timeouts = snap_->config.server.timeouts;
  const size_t max_head = limits.max_header_bytes;
  set_deadline(Phase::kClientRead, timeouts.header_read);
  net::Buffer& in = s_->in;
  size_t scanned = 0;
  while (true) {
    size_t end = http::find_head_end(in.data(), scanned);
    if (end && end <= max_head) {
      // Parse in place; the views into the buffer stay valid until release_head().
      s_->exchange.begin();
      reset_request();
      bytes_in_ = end;
      http::ParseError err;
      http::ParseLimits pl{max_head, limits.max_uri_bytes, limits.max_headers};
      if (http::parse_request_head(in.data().substr(0, end), pl, &s_->req, &err) ==
          http::ParseStatus::kComplete) {
        begin_request();
        co_return Head::kRequest;
      }
      close_after_ = true;  // never forwarded, never reused
      s_->refusal = {err.status, std::string(err.code), std::string(err.message), {}};
      co_return Head::kError;
    }
    scanned = in.size();
    if (end || in.size() >= max_head) {
      s_->exchange.begin();
      reset_request();
      bytes_in_ = in.size();
      close_after_ = true;
      if (in.data().find('\n') != std::string_view::npos)
        s_->refusal = {431, "header_too_large", "the request header section is too large", {}};
      else
        s_->refusal = {414, "uri_too_long", "the request line is too long", {}};
      co_return Head::kError;
    }
    auto [ptr, room] = in.prepare(net::kReadChunk, max_head + net::kReadChunk);
    auto [ec, n] = co_await client_.read_some(
        net::asio::buffer(ptr, std::min(room, max_head + 1 - in.size())));
    if (ec || n == 0) co_return Head::kClose;  // closed, reset, or cut off by the timer
    in.commit(n);
  }
}

// --- the request body, for the upstream client ---------------------------------------------

void Connection::body_consumed(size_t n, bool done) {
  s_->in.consume(n);
  bytes_in_ += n;
  if (done) body_pending_ = false;
}

net::Task<bool> Connection::body_read_more() {
  if (body_timed_out_) co_return false;
  if (req_expect_continue_ && !continue_sent_) {
    continue_sent_ = true;
    // The client waited for this before sending its body: the body's time starts now.
    body_deadline_ = net::coarse_now() + snap_->config.server.timeouts.body_read;
    if (phase_ == Phase::kStream && body_deadline_ < deadline_) {
      phase_ = Phase::kBodyRead;
      deadline_ = body_deadline_;
      if (deadline_ < armed_at_) arm_timer(deadline_);
    }
    if (!co_await write_client(kContinue)) co_return false;
  }
  // Not `co_return co_await read_client()`: GCC 12 miscompiles that form here (the frame is later
  // resumed with a bad `this`).
  bool more = co_await read_client();
  co_return more;
}

// --- the response ----------------------------------------------------------------------------

// The framing the client gets: the upstream's (a chunked body de-chunked and ended by the close
// for an HTTP/1.0 client), or, for a body the filters rewrite, chunked to an HTTP/1.1 client and
// ended by the close to an HTTP/1.0 one.
void Connection::start_response(const http::ResponseHead& head, const http::HeaderList& add,
                                const std::vector<std::string>& remove, std::string_view request_id,
                                bool rewritten, bool* payload) {
  const bool dechunk = head.framing == http::Framing::kChunked && req_http10_;
  rechunk_ = rewritten && !req_http10_;
  close_ends_body_ =
      rewritten ? req_http10_ : head.framing == http::Framing::kUntilClose || dechunk;
  if (close_ends_body_) close_after_ = true;
  *payload = dechunk || rewritten;
  http::ResponseInfo info;
  if (head.status == 101) info.upgrade = "websocket";  // the only upgrade the exchange asks for
  info.request_id_header = snap_->config.observability.request_id_header;
  info.request_id = request_id;
  info.chunked = rewritten ? rechunk_ : head.framing == http::Framing::kChunked && !dechunk;
  info.close = close_after_;
  info.client_http10 = req_http10_;
  info.add = &add;
  info.remove = &remove;
  s_->head_out.clear();
  take_interim_left();
  http::build_client_response(head, info, &s_->head_out);
  head_left_ = s_->head_out;
}

// RFC 9110 15.2: a proxy forwards 1xx responses, but a server must not send one to an HTTP/1.0
// client. Written without waiting: what does not go out now goes first with the final response
// (take_interim_left), and while some is pending, further interim responses are dropped (they
// are hints; a client that does not read must not make the gateway buffer them).
void Connection::interim_response(const http::ResponseHead& head) {
  if (req_http10_ || !interim_left_.empty()) return;
  s_->interim_out.clear();
  http::build_interim_response(head, &s_->interim_out);
  std::string_view rest = s_->interim_out, none;
  bool ok;
  write_client_now(rest, none, &ok);
  interim_left_ = ok ? rest : std::string_view();
}

// What an interim response left unsent goes before the final response's head in head_out.
void Connection::take_interim_left() {
  s_->head_out.append(interim_left_);
  interim_left_ = {};
}

void Connection::cut_response() {
  close_after_ = true;
  if (close_ends_body_) reset_on_close_ = true;
}

bool Connection::send_now(std::string_view& body, bool* ok) {
  response_started_ = true;
  return write_client_now(head_left_, body, ok);
}

net::Task<bool> Connection::send(std::string_view body) {
  return write_client(std::exchange(head_left_, {}), body);
}

net::Task<bool> Connection::send_payload(const std::vector<std::string_view>& pieces) {
  response_started_ = true;
  auto& iov = s_->iov;
  iov.clear();
  if (!head_left_.empty()) iov.push_back(net::asio::buffer(head_left_.data(), head_left_.size()));
  head_left_ = {};
  for (auto s : pieces) iov.push_back(net::asio::buffer(s.data(), s.size()));
  bool ok = co_await client_.send_all(iov, &bytes_out_);
  if (!ok) close_after_ = true;
  co_return ok;
}

net::Task<bool> Connection::send_chunk(std::string_view data, const http::HeaderList* trailers) {
  response_started_ = true;
  if (!rechunk_) {  // HTTP/1.0: the bytes as they are, the close ends them
    bool ok = co_await write_client(std::exchange(head_left_, {}), data);
    co_return ok;
  }
  s_->chunk_out.clear();
  http::append_chunk(data, trailers != nullptr, trailers, &s_->chunk_out);
  bool ok = co_await write_client(std::exchange(head_left_, {}), s_->chunk_out);
  co_return ok;
}

// A WebSocket tunnel, once the upstream switched: the 101 goes out, then the client's connection
// is the tunnel's (its deadlines the tunnel's own idle timeout) until either side closes.
net::Task<websocket::Tunnel::Bytes> Connection::tunnel(net::Stream& upstream,
                                                       std::string_view upstream_first,
                                                       const config::WebSocket& limits) {
  websocket::ConnectionEnd client_end(client_), upstream_end(upstream);
  websocket::Tunnel t(client_.socket().get_executor(), client_end, upstream_end, limits);
  close_after_ = true;  // the connection ends with the tunnel
  set_deadline(Phase::kStream, std::chrono::hours(24 * 365));
  response_started_ = true;
  const bool sent = co_await write_client(std::exchange(head_left_, {}));
  if (sent) {
    release_head();
    // What the client sent after its handshake (its first frames) starts the tunnel.
    std::string first(s_->in.data());
    s_->in.consume(s_->in.size());
    body_pending_ = false;
    tunnel_ = &t;
    co_await t.run(first, upstream_first);
    tunnel_ = nullptr;
    bytes_in_ += t.bytes().to_upstream;
    bytes_out_ += t.bytes().to_client;
  }
  co_return t.bytes();
}

// The gateway's own answer: JSON with the request id (src/http/error_response.cc).
net::Task<> Connection::answer(const http::ErrorResponse& e, std::string_view request_id,
                               std::string_view trace_id) {
  release_head();
  if (body_pending_) {
    // An unread body would be taken for the next request: skip it when it is all here, else close.
    if (req_framing_ == http::Framing::kContentLength && s_->in.size() >= req_length_) {
      s_->in.consume(req_length_);
      bytes_in_ += req_length_;
    } else {
      close_after_ = true;
    }
    body_pending_ = false;
  }
  if (response_started_) {
    close_after_ = true;  // too late for a status: the client sees the connection close
    co_return;
  }
  s_->head_out.clear();
  take_interim_left();
  http::build_error_response(e, snap_->config.observability.request_id_header, request_id, trace_id,
                             close_after_, req_is_head_, &s_->head_out);
  set_deadline(Phase::kSend, snap_->config.server.timeouts.send);
  // A shared body goes after the head in the same write, never copied into it.
  std::string_view shared = req_is_head_ ? std::string_view() : e.shared();
  co_await write_client(s_->head_out, shared);
  response_started_ = true;
}

// --- per-request bookkeeping -----------------------------------------------------------------

void Connection::reset_request() {
  bytes_in_ = bytes_out_ = 0;
  response_started_ = false;
  body_pending_ = false;
  head_consumed_ = true;
  req_is_head_ = req_http10_ = req_expect_continue_ = false;
  req_framing_ = http::Framing::kNone;
  req_length_ = 0;
  continue_sent_ = false;
  body_deadline_ = net::Clock::time_point::max();
  body_timed_out_ = false;
  head_left_ = {};
  interim_left_ = {};
  close_ends_body_ = reset_on_close_ = false;
}

// The facts of a parsed request the codec needs after its head's views are gone.
void Connection::begin_request() {
  head_consumed_ = false;
  const http::RequestHead& req = s_->req;
  close_after_ = close_after_ || !req.keep_alive || w_.draining();
  body_pending_ = req.framing != http::Framing::kNone;
  req_is_head_ = req.method == "HEAD";
  req_http10_ = req.minor_version == 0;
  req_expect_continue_ = req.expect_continue;
  req_framing_ = req.framing;
  req_length_ = req.content_length;
  if (body_pending_ && !req_expect_continue_)
    body_deadline_ = net::coarse_now() + snap_->config.server.timeouts.body_read;
}

void Connection::release_head() {
  if (head_consumed_) return;
  s_->in.consume(s_->req.head_bytes);
  head_consumed_ = true;
}

}  // namespace gatehouse::http1
