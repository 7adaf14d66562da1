#include "http2/stream.h"

#include <nghttp2/nghttp2.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "config/snapshot.h"
#include "http/error_response.h"
#include "http/h2_fields.h"
#include "http/parser.h"
#include "http/proxy_headers.h"
#include "http2/connection.h"

namespace gatehouse::http2 {

using namespace std::string_view_literals;
namespace {

// A response body waits here, per stream, for the client's windows: past this, the exchange
// waits too (and with it the upstream read).
constexpr size_t kOutHighWater = 64 * 1024;

}  // namespace

Stream::Stream(Connection& c, int32_t id)
    : id(id),
      c_(c),
      s_(c.pool().take()),
      exchange_(s_->exchange),
      head_text_(s_->head_out),
      req_(s_->req),
      body_wait_(c.worker().io().get_executor()),
      room_wait_(c.worker().io().get_executor()) {}

Stream::~Stream() { c_.pool().give(std::move(s_)); }

// --- the request ------------------------------------------------------------------------------

void Stream::field(std::string_view name, std::string_view value) {
  if (head_done_) {  // trailers
    if (!name.empty() && name[0] != ':') trailers_in_.emplace_back(name, value);
    return;
  }
  // RFC 9113 6.5.2's measure of a header list: each field's name and value plus 32.
  field_bytes_ += name.size() + value.size() + 32;
  if (field_bytes_ > c_.worker().view()->snapshot->config.server.limits.max_header_bytes)
    too_large_ = true;
  if (too_large_ || name.empty()) return;
  if (name[0] == ':') {  // nghttp2 lets none through after a regular field (RFC 9113 8.3)
    if (name == ":method") {
      method_ = value;
    } else if (name == ":authority") {
      authority_ = value;
    } else if (name == ":path") {
      path_ = value;
    } else if (name == ":protocol") {
      protocol_ = value;  // nghttp2 lets it through on CONNECT only (RFC 8441 4)
    }
    return;
  }
  if (!line_written_) write_request_line();
  if (name == "cookie") {
    // RFC 9113 8.2.3: cookie-pairs may come as fields of their own; HTTP/1.1 takes them as one.
    if (!cookie_.empty()) cookie_ += "; ";
    cookie_ += value;
    return;
  }
  if (name == "host" && !authority_.empty()) {
    // :authority is the Host (RFC 9113 8.3.1); one that names another target is refused.
    if (!http::iequals(value, authority_)) host_differs_ = true;
    return;
  }
  if (name == "content-length") has_length_ = true;
  head_text_.append(name).append(": "sv).append(value).append("\r\n"sv);
}

// The request as HTTP/1.1 would carry it, its fields appended as they come.
void Stream::write_request_line() {
  line_written_ = true;
  head_text_.clear();  // a pooled state's: an HTTP/1.1 connection's response head, say
  extended_connect_ = method_ == "CONNECT" && !protocol_.empty();
  head_text_.append(extended_connect_ ? std::string_view("GET") : std::string_view(method_));
  head_text_.append(" "sv).append(path_.empty() ? authority_ : path_).append(" HTTP/1.1\r\n"sv);
  if (!authority_.empty()) head_text_.append("host: "sv).append(authority_).append("\r\n"sv);
  if (extended_connect_) {
    // RFC 8441 5: the HTTP/1.1 handshake it stands for (RFC 6455 4.1), with a key of its own
    // (the upstream proves it read this one; the client has none to check over HTTP/2).
    unsigned char nonce[16], key[25];
    RAND_bytes(nonce, sizeof nonce);
    EVP_EncodeBlock(key, nonce, sizeof nonce);
    head_text_.append("upgrade: "sv).append(protocol_).append("\r\nconnection: upgrade\r\n"sv);
    head_text_.append("sec-websocket-key: "sv).append(reinterpret_cast<char*>(key), 24);
    head_text_.append("\r\n"sv);
  }
}

void Stream::head_complete(bool ended) {
  head_done_ = true;
  body_ended_ = ended;
  exchange_.begin();
  head_request_ = method_ == "HEAD";
  const auto& limits = c_.worker().view()->snapshot->config.server.limits;
  if (!line_written_) write_request_line();
  // An extended CONNECT's DATA is the tunnel's, not a body.
  chunked_ = !ended && !has_length_ && !extended_connect_;
  if (!cookie_.empty()) head_text_.append("cookie: "sv).append(cookie_).append("\r\n"sv);
  if (chunked_) head_text_.append("transfer-encoding: chunked\r\n"sv);
  head_text_.append("\r\n"sv);
  if (too_large_) {
    refusal_ = {431, "header_too_large", "the request header section is too large", {}};
  } else if (host_differs_) {
    // RFC 9113 8.3.1: one request, one target.
    refusal_ = {400, "bad_request", "the Host field differs from :authority", {}};
  } else {
    http::ParseError err;
    http::ParseLimits pl{head_text_.size() + 1, limits.max_uri_bytes, limits.max_headers + 3};
    parsed_ = http::parse_request_head(head_text_, pl, &req_, &err) == http::ParseStatus::kComplete;
    if (!parsed_) refusal_ = {err.status, std::string(err.code), std::string(err.message), {}};
  }
}

void Stream::body_piece(std::string_view data) {
  bytes_in_ += data.size();
  if (served_ || closed_) {
    // Nobody reads it any more: the client's window is given back at once.
    nghttp2_session_consume(c_.session(), id, data.size());
    return;
  }
  if (chunked_) {
    char size[20];
    int n = std::snprintf(size, sizeof size, "%zx\r\n", data.size());
    body_.append(size, static_cast<size_t>(n)).append(data).append("\r\n"sv);
  } else {
    body_.append(data);
  }
  unacknowledged_ += data.size();
  wake(body_wait_);
}

void Stream::body_end() {
  if (body_ended_) return;
  body_ended_ = true;
  if (chunked_) {
    body_.append("0\r\n"sv);
    for (const auto& [n, v] : trailers_in_)
      body_.append(n).append(": "sv).append(v).append("\r\n"sv);
    body_.append("\r\n"sv);
  }
  wake(body_wait_);
}

// A response complete before its request (a gRPC call the server ended while the client still
// streams, an answer to a body too large, a tunnel the gateway closed): the stream is done, and
// the client may stop sending (RFC 9113 8.1: RST_STREAM NO_ERROR), so that it does not stay half
// open.
void Stream::response_ended() {
  if (!body_ended_ && !closed_)
    nghttp2_submit_rst_stream(c_.session(), NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR);
}

void Stream::closed() {
  if (closed_) return;
  closed_ = true;
  if (!served_) exchange_.abort();
  wake(body_wait_);
  wake(room_wait_);
}

// --- the exchange -----------------------------------------------------------------------------

net::Task<> Stream::serve() {
  if (!parsed_) {
    co_await exchange_.refuse(refusal_.status, refusal_.code, std::move(refusal_.message), *this);
  } else {
    co_await exchange_.serve(req_, *this);
  }
  served_ = true;
  exchange_.finish(*this);
  exchange_.end();
  if (!closed_) {
    // What the exchange did not read of the body is given back to the client's windows.
    if (unacknowledged_) nghttp2_session_consume(c_.session(), id, unacknowledged_);
    unacknowledged_ = 0;
    if (!responded_) {
      http::ErrorResponse e{502, "upstream_bad_response", "no response", {}};
      co_await answer(e, {}, {});
    }
    end_body();
  }
}

std::string_view Stream::body_buffered() {
  if (extended_connect_) return {};  // the tunnel's first bytes, kept for it
  return std::string_view(body_).substr(body_at_);
}

void Stream::body_consumed(size_t n, bool done) {
  if (extended_connect_) return;
  body_at_ += n;
  http::compact(body_, body_at_);
  // The DATA bytes go back to the client's windows as the exchange passes them on (a chunked
  // body's framing is not DATA: at most what arrived is given back).
  const uint64_t ack = std::min<uint64_t>(n, unacknowledged_);
  unacknowledged_ -= ack;
  if (done && unacknowledged_) {
    // The exchange has all of the body.
    nghttp2_session_consume(c_.session(), id, ack + unacknowledged_);
    unacknowledged_ = 0;
  } else if (ack && !closed_) {
    nghttp2_session_consume(c_.session(), id, ack);
  }
  c_.flush();
}

net::Task<bool> Stream::body_read_more() {
  if (req_.expect_continue && !continue_sent_ && !closed_) {
    // RFC 9110 10.1.1, over HTTP/2 (RFC 9113 8.1): an interim HEADERS.
    continue_sent_ = true;
    http::FieldBlock block(100);
    const auto& nv = block.nv();
    nghttp2_submit_headers(c_.session(), NGHTTP2_FLAG_NONE, id, nullptr, nv.data(), nv.size(),
                           nullptr);
    c_.flush();
  }
  while (!closed_ && !body_abandoned_ && body_at_ == body_.size() && !body_ended_) {
    body_wait_.expires_at(net::Clock::time_point::max());
    co_await body_wait_.async_wait(net::use_task);
  }
  co_return !closed_ && !body_abandoned_ && body_at_ < body_.size();
}

void Stream::abandon_body() {
  body_abandoned_ = true;
  wake(body_wait_);
}

void Stream::interim_response(const http::ResponseHead& head) {
  if (closed_ || responded_) return;
  http::FieldBlock block(head.status);
  for (const auto& h : head.headers) {
    if (h.hop_by_hop || http::h2_connection_specific(h.name) ||
        h.id == http::HeaderId::kContentLength)
      continue;
    block.add(h.name, h.value);
  }
  const auto& nv = block.nv();
  nghttp2_submit_headers(c_.session(), NGHTTP2_FLAG_NONE, id, nullptr, nv.data(), nv.size(),
                         nullptr);
  c_.flush();
}

// --- deadlines --------------------------------------------------------------------------------

// The connection's timer keeps every stream's deadline (Connection::on_timer): a request's
// deadlines cost a store each, and the timer is touched only when one is earlier than all others.
void Stream::set_deadline(upstream::RequestSource::Phase phase, net::Clock::duration after) {
  phase_ = phase;
  deadline_ = net::coarse_now() + after;
  c_.wake_at(deadline_);
}

void Stream::deadline_passed() {
  deadline_ = net::Clock::time_point::max();
  using Phase = upstream::RequestSource::Phase;
  switch (phase_) {
    case Phase::kQueued:
    case Phase::kConnect:
    case Phase::kResponse:
      // 503 or 504 from the exchange; the stream goes on to carry it.
      exchange_.deadline_passed(phase_);
      break;
    case Phase::kStream:
    case Phase::kSend:
      // A body stalled either way, or the client stopped taking the response: the stream ends.
      reset(NGHTTP2_CANCEL);
      exchange_.abort();
      break;
  }
}

std::string_view Stream::peer_ip() const { return c_.peer_ip(); }
bool Stream::peer_trusted() const { return c_.peer_trusted(); }
bool Stream::secure() const { return c_.secure(); }
std::string_view Stream::tls_version() const { return c_.tls_version(); }

// --- the response -----------------------------------------------------------------------------

void Stream::submit_head(http::FieldBlock& block, bool has_body) {
  const auto& nv = block.nv();
  nghttp2_data_provider body;
  body.source.ptr = this;
  body.read_callback = &http::read_data<Stream>;
  responded_ = true;
  if (!has_body) out_ended_ = true;
  nghttp2_submit_response(c_.session(), id, nv.data(), nv.size(), has_body ? &body : nullptr);
  c_.flush();
}

void Stream::start_response(const http::ResponseHead& head, const http::HeaderList& add,
                            const std::vector<std::string>& remove, std::string_view request_id,
                            bool rewritten, bool* payload) {
  *payload = true;  // HTTP/2 frames the body itself: chunked bodies come de-chunked
  http::ResponseInfo info;
  info.request_id_header = c_.worker().view()->snapshot->config.observability.request_id_header;
  info.request_id = request_id;
  info.add = &add;
  info.remove = &remove;
  const int status = client_status(head.status);
  http::FieldBlock block(status);
  http::for_each_client_field(head, info, [&](std::string_view n, std::string_view v) {
    if (http::h2_connection_specific(n)) return;
    if (extended_connect_ && http::iequals(n, "sec-websocket-accept")) return;  // HTTP/1.1's
    block.add(n, v, http::iequals(n, info.request_id_header));
  });
  // A head that ends the response (an empty body; a gRPC trailers-only answer, whose status
  // must arrive as one HEADERS with END_STREAM) goes without DATA.
  const bool has_body = !head_request_ && status != 204 && status != 304 &&
                        (rewritten || extended_connect_ || head.framing != http::Framing::kNone);
  submit_head(block, has_body);
}

// The stream's DATA as the client's side of a WebSocket tunnel.
class Stream::TunnelEnd final : public websocket::End {
 public:
  explicit TunnelEnd(Stream& s) : s_(s) {}

  net::Task<std::tuple<boost::system::error_code, size_t>> read_some(
      net::asio::mutable_buffer b) override {
    while (!s_.closed_ && s_.body_at_ == s_.body_.size() && !s_.body_ended_) {
      s_.body_wait_.expires_at(net::Clock::time_point::max());
      co_await s_.body_wait_.async_wait(net::use_task);
    }
    const size_t n = std::min(b.size(), s_.body_.size() - s_.body_at_);
    boost::system::error_code ec;
    if (n) {
      std::memcpy(b.data(), s_.body_.data() + s_.body_at_, n);
      s_.body_at_ += n;
      http::compact(s_.body_, s_.body_at_);
      s_.acknowledge(n);
    } else if (s_.closed_) {
      ec = net::asio::error::connection_reset;
    } else {
      ec = net::asio::error::eof;  // END_STREAM: the client closed its side
    }
    co_return std::make_tuple(ec, n);
  }
  bool send_now(std::string_view& a, std::string_view& b) override {
    if (s_.closed_ || s_.out_ended_) return false;
    if (!s_.room()) return true;
    s_.queue(a);
    s_.queue(b);
    a = b = {};
    return true;
  }
  net::Task<bool> send_rest(std::string_view a, std::string_view b, uint64_t* counter) override {
    const bool open = co_await s_.wait_for_room();
    if (open) {
      s_.queue(a);
      s_.queue(b);
      if (counter) *counter += a.size() + b.size();
    }
    co_return open;
  }
  void shutdown_send() override { s_.end_body(); }
  // END_STREAM after what is queued; the stream closes when the client ends its side too (or
  // with the RST_STREAM read_body sends after the last DATA).
  void close() override { s_.end_body(); }

 private:
  Stream& s_;
};

net::Task<websocket::Tunnel::Bytes> Stream::tunnel(net::Stream& upstream,
                                                   std::string_view upstream_first,
                                                   const config::WebSocket& limits) {
  TunnelEnd client(*this);
  websocket::ConnectionEnd upstream_end(upstream);
  websocket::Tunnel t(c_.worker().io().get_executor(), client, upstream_end, limits);
  set_deadline(upstream::RequestSource::Phase::kStream, std::chrono::hours(24 * 365));
  // What the client sent after its CONNECT (its first frames) starts the tunnel.
  std::string first = body_.substr(body_at_);
  body_at_ = body_.size();
  http::compact(body_, body_at_);
  acknowledge(first.size());
  tunnel_ = &t;
  co_await t.run(first, upstream_first);
  tunnel_ = nullptr;
  co_return t.bytes();
}

// DATA bytes taken out of the stream go back to the client's windows.
void Stream::acknowledge(size_t n) {
  const uint64_t ack = std::min<uint64_t>(n, unacknowledged_);
  unacknowledged_ -= ack;
  if (ack && !closed_) {
    nghttp2_session_consume(c_.session(), id, ack);
    c_.flush();
  }
}

bool Stream::room() const { return out_.size() - out_at_ < kOutHighWater; }

void Stream::queue(std::string_view bytes) {
  if (out_ended_ || closed_) return;
  out_.append(bytes);
  bytes_out_ += bytes.size();
  nghttp2_session_resume_data(c_.session(), id);
  c_.flush();
}

void Stream::end_body() {
  if (closed_) return;
  if (!out_ended_) {
    out_ended_ = true;
    nghttp2_session_resume_data(c_.session(), id);
  }
  c_.flush();
}

net::Task<bool> Stream::wait_for_room() {
  while (!closed_ && !room()) {
    room_wait_.expires_at(net::Clock::time_point::max());
    co_await room_wait_.async_wait(net::use_task);
  }
  co_return !closed_;
}

void Stream::wake(net::Timer& t) { t.cancel(); }

bool Stream::send_now(std::string_view& body, bool* ok) {
  // Nothing to send after a head that ended the response (which may have closed the stream
  // already): done, not a client gone.
  *ok = !closed_ || (body.empty() && out_ended_);
  if (closed_) return true;
  if (!room()) return false;
  queue(body);
  body = {};
  return true;
}

bool Stream::send_payload_now(const std::vector<std::string_view>& pieces, bool* ok) {
  *ok = !closed_ || (out_ended_ && std::all_of(pieces.begin(), pieces.end(),
                                               [](std::string_view p) { return p.empty(); }));
  if (closed_) return true;
  if (!room()) return false;
  for (auto p : pieces) queue(p);
  return true;
}

// One co_return each, after the co_await: GCC 12 miscompiles `if (!co_await x) co_return ...;`
// followed by another co_return in some of these (the finished frame was later resumed).
net::Task<bool> Stream::send(std::string_view body) {
  const bool open = co_await wait_for_room();
  if (open) queue(body);
  co_return open;
}

net::Task<bool> Stream::send_payload(const std::vector<std::string_view>& pieces) {
  const bool open = co_await wait_for_room();
  if (open) {
    for (auto p : pieces) queue(p);
  }
  co_return open;
}

net::Task<bool> Stream::send_chunk(std::string_view data, const http::HeaderList* trailers) {
  const bool open = co_await wait_for_room();
  if (open) {
    queue(data);
    // The last piece: its trailers go after the DATA. The stream ends when the exchange does
    // (serve()), not here: an end now could close the stream, and abort the exchange, while
    // the exchange is still finishing.
    if (trailers) trailers_out_ = *trailers;
  }
  co_return open;
}

long Stream::read_body(uint8_t* to, size_t space, bool* eof, bool* trailers) {
  const size_t n = std::min(space, out_.size() - out_at_);
  std::memcpy(to, out_.data() + out_at_, n);
  out_at_ += n;
  http::compact(out_, out_at_);
  if (out_ended_ && out_.empty()) {
    *eof = true;
    *trailers = !trailers_out_.empty();
  } else if (n == 0) {
    return -1;
  }
  if (n) wake(room_wait_);
  return static_cast<long>(n);
}

void Stream::send_trailers() { http::submit_trailers(c_.session(), id, trailers_out_); }

// The gateway's own answer: the same head and body as over HTTP/1.1 (src/http/error_response.cc),
// in HEADERS and DATA.
net::Task<> Stream::answer(const http::ErrorResponse& e, std::string_view request_id,
                           std::string_view trace_id) {
  if (closed_) co_return;
  if (responded_) {
    reset(NGHTTP2_INTERNAL_ERROR);  // too late for a status
    co_return;
  }
  std::string text;
  http::build_error_response(e,
                             c_.worker().view()->snapshot->config.observability.request_id_header,
                             request_id, trace_id, false, head_request_, &text);
  http::ResponseHead head;
  http::ParseError err;
  http::ParseLimits pl{text.size() + 1, text.size() + 1, 10000};
  if (http::parse_response_head(text, pl, head_request_ ? "HEAD" : "GET", &head, &err) !=
      http::ParseStatus::kComplete) {
    reset(NGHTTP2_INTERNAL_ERROR);
    co_return;
  }
  http::FieldBlock block(e.status);
  for (const auto& h : head.headers) {
    if (!http::h2_connection_specific(h.name)) block.add(h.name, h.value);
  }
  // An empty body (a gRPC trailers-only answer) ends the stream with the HEADERS.
  const bool has_body = !head_request_ && e.status != 204 && e.status != 304 &&
                        (text.size() > head.head_bytes || !e.shared().empty());
  submit_head(block, has_body);
  if (has_body) {
    queue(std::string_view(text).substr(head.head_bytes));
    queue(e.shared());
  }
  end_body();
}

void Stream::cut_response() { reset(NGHTTP2_INTERNAL_ERROR); }

void Stream::reset(uint32_t error_code) {
  if (closed_) return;
  c_.reset_by_gateway(id);
  nghttp2_submit_rst_stream(c_.session(), NGHTTP2_FLAG_NONE, id, error_code);
  c_.flush();
}

}  // namespace gatehouse::http2
