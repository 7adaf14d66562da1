// One request stream to an HTTP/2 upstream: the heads as fields, the bodies as HTTP/1.1 bytes
// (session.h).
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>

#include "http/h2_fields.h"
#include "http/proxy_headers.h"
#include "upstream/h2/session.h"

namespace gatehouse::upstream::h2 {

using namespace std::string_view_literals;
namespace {

// A request body waits here for the upstream's windows: past this, the caller waits too (and
// with it the client's read).
constexpr size_t kOutHighWater = 64 * 1024;
// The trailers a body may carry, either way.
constexpr size_t kMaxHead = 256 * 1024;

}  // namespace

Stream::Stream(std::shared_ptr<Session> session, const http::ParseLimits& limits)
    : session_(std::move(session)),
      waiter_(session_->ex_),
      room_waiter_(session_->ex_),
      limits_(limits) {}

Stream::~Stream() {
  // What the caller did not read goes back to the connection's window.
  if (unacknowledged_ && !session_->closed_) {
    nghttp2_session_consume_connection(session_->session(), unacknowledged_);
    session_->flush();
  }
}

// --- the request ------------------------------------------------------------------------------

bool Stream::send_now(std::string_view& b) {
  if (failed_ || closed_) return false;  // closed: nobody takes a body any more
  if (!b.empty() && !out_ended_ && out_.size() - out_at_ < kOutHighWater) take_body(b);
  return !failed_;
}

net::Task<bool> Stream::send_rest(std::string_view b) {
  bool ok = send_now(b);
  while (ok && !b.empty()) {
    co_await wait_for_room();
    ok = send_now(b);
  }
  co_return ok;
}

// The request head's fields as HEADERS (RFC 9113 8.3.1): the pseudo-header fields first, Host as
// :authority; the connection-specific fields (8.2.2) dropped, but for "TE: trailers"; each cookie
// a field of its own (8.2.3), so that HPACK indexes them one by one.
bool Stream::submit(const http::OutgoingRequest& head) {
  if (failed_ || id_ != 0) return !failed_;
  head_request_ = head.method() == "HEAD";
  framing_ = head.framing();
  wants_trailers_ = false;
  body_left_ = head.content_length();
  if (framing_ == http::Framing::kChunked) chunked_.keep_trailers(kMaxHead);
  out_ended_ = framing_ == http::Framing::kNone ||
               (framing_ == http::Framing::kContentLength && body_left_ == 0);

  std::string_view authority;
  for (size_t i = 0; i < head.fields(); ++i) {
    auto f = head.field(i);
    if (http::field_is(f.name, "host")) {
      authority = f.value;
      break;
    }
  }
  http::FieldBlock block(0);
  block.add(":method", head.method());
  block.add(":scheme", session_->conn_.tls() ? "https" : "http");
  block.add(":authority", authority);
  block.add(":path", head.target());
  for (size_t i = 0; i < head.fields(); ++i) {
    auto f = head.field(i);
    if (http::field_is(f.name, "host")) continue;
    const bool te_trailers = http::field_is(f.name, "te") && http::iequals(f.value, "trailers");
    wants_trailers_ = wants_trailers_ || te_trailers;
    if (http::h2_connection_specific(f.name) && !te_trailers) continue;
    if (http::field_is(f.name, "cookie")) {
      std::string_view rest = f.value;
      while (!rest.empty()) {
        size_t semi = rest.find(';');
        std::string_view one = http::trim_ows(rest.substr(0, semi));
        if (!one.empty()) block.add("cookie", one);
        rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
      }
      continue;
    }
    block.add(f.name, f.value, f.unique);
  }
  const auto& nv = block.nv();
  nghttp2_data_provider body;
  body.source.ptr = this;
  body.read_callback = &http::read_data<Stream>;
  const int32_t id = nghttp2_submit_request(session_->session(), nullptr, nv.data(), nv.size(),
                                            out_ended_ ? nullptr : &body, nullptr);
  if (id < 0) {
    // The connection's stream ids are spent (or it is closing): nothing was sent, so the
    // request may go again at once, on another connection.
    failed_ = refused_ = true;
    session_->going_away_ = true;
    return false;
  }
  id_ = id;
  session_->streams_.emplace(id, shared_from_this());
  session_->flush();
  return true;
}

// Body bytes in the head's framing: Content-Length bytes as they are, a chunked body's payload
// (its framing checked by the caller already), then its trailers.
void Stream::take_body(std::string_view& b) {
  if (framing_ == http::Framing::kContentLength) {
    const size_t take = static_cast<size_t>(std::min<uint64_t>(b.size(), body_left_));
    out_.append(b.substr(0, take));
    body_left_ -= take;
    out_ended_ = body_left_ == 0;
  } else {
    std::vector<std::string_view> pieces;
    auto r = chunked_.feed(b, &pieces);
    if (r.error) {
      cancel();
      return;
    }
    for (auto p : pieces) out_.append(p);
    if (r.done) {
      out_ended_ = true;
      http::parse_trailer_fields(chunked_.trailers(), &trailers_out_);
    }
  }
  b = {};
  if (deferred_) {
    deferred_ = false;
    nghttp2_session_resume_data(session_->session(), id_);
  }
  session_->flush();
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
    deferred_ = true;
    return -1;
  }
  if (n) wake();
  return static_cast<long>(n);
}

void Stream::send_trailers() { http::submit_trailers(session_->session(), id_, trailers_out_); }

// --- the response -----------------------------------------------------------------------------

void Stream::field(std::string_view name, std::string_view value) {
  if (!in_head_) {  // the trailers
    if (trailers_in_.size() + name.size() + value.size() > kMaxHead) {
      cancel();  // trailers past any sense: the response fails
      return;
    }
    trailers_in_.append(name).append(": "sv).append(value).append("\r\n"sv);
    return;
  }
  ReceivedHead& h = head_in_;
  if (name == ":status") {
    h.status = 0;
    for (char c : value) h.status = h.status * 10 + (c - '0');  // nghttp2 checked: three digits
    h.size += sizeof "HTTP/1.1 200 \r\n" - 1;
    has_length_ = false;
    return;
  }
  if (name[0] == ':') return;
  h.size += name.size() + value.size() + 4;  // "name: value\r\n"
  if (h.size > limits_.max_head_bytes || h.fields.size() >= limits_.max_headers) {
    h.too_large = true;
    return;
  }
  if (name == "content-length") has_length_ = true;
  h.add(name, value);
}

// A response head ended (a 1xx, or the final one), or the stream did (its trailers, or the last
// DATA): `ended`.
void Stream::head_end(bool ended) {
  if (in_head_ && head_in_.status != 0) {
    if (head_in_.too_large) {
      cancel();  // read_head() tells
      return;
    }
    if (head_in_.status < 200) {
      interim_.push_back(std::move(head_in_));  // the final head follows
      head_in_ = {};
      wake();
      return;
    }
    answered_ = true;
    in_head_ = false;
    const bool body = !head_request_ && head_in_.status != 204 && head_in_.status != 304;
    if (body && (!has_length_ || (wants_trailers_ && !ended))) {
      // A body without a length: chunked for HTTP/1.1 (RFC 9112 6.1), or empty when the HEADERS
      // ended the stream (said, so that an HTTP/1.1 client need not wait for a close). A call
      // that takes trailers (gRPC's, whose status comes in them) gets them that way too, its
      // Content-Length dropped: a length-delimited HTTP/1.1 body cannot carry them.
      chunked_in_ = !ended;
      if (ended) {
        head_in_.add("content-length", "0");
      }
    }
  }
  if (ended) end_response();
  wake();
}

net::Task<Stream::Head> Stream::read_head(http::ResponseHead* head) {
  Head got;
  while ((got = take_head(head)) == Head::kNotYet) co_await wait();
  co_return got;
}

Stream::Head Stream::take_head(http::ResponseHead* head) {
  if (!interim_.empty()) {
    interim_read_ = std::move(interim_.front());
    interim_.erase(interim_.begin());
    fill(interim_read_, false, head);
    return Head::kOk;
  }
  if (answered_) {
    fill(head_in_, true, head);
    return Head::kOk;
  }
  if (!failed_) return Head::kNotYet;
  return head_in_.too_large ? Head::kTooLarge : Head::kFailed;
}

// The head as the HTTP/1.1 parser would have made it of the same fields (nghttp2 checked them:
// RFC 9113 8.2 and 8.3; one Content-Length, of digits).
void Stream::fill(const ReceivedHead& from, bool final, http::ResponseHead* head) const {
  head->reset();
  head->status = from.status;
  head->reason = {};
  head->minor_version = 1;
  std::string_view bytes = from.bytes;
  for (auto [name_len, value_len] : from.fields) {
    http::Header h;
    h.name = bytes.substr(0, name_len);
    h.value = bytes.substr(name_len, value_len);
    bytes.remove_prefix(name_len + value_len);
    h.id = http::classify_field(h.name, &h.hop_by_hop);
    if (h.id == http::HeaderId::kContentLength && final && chunked_in_) continue;
    if (h.id == http::HeaderId::kContentLength) {
      head->content_length = 0;
      for (char c : h.value) head->content_length = head->content_length * 10 + (c - '0');
    }
    head->headers.push_back(h);
  }
  const bool body = final && !head_request_ && from.status != 204 && from.status != 304;
  if (!body) {
    head->framing = http::Framing::kNone;
  } else if (chunked_in_) {
    head->framing = http::Framing::kChunked;
  } else {
    head->framing = head->content_length ? http::Framing::kContentLength : http::Framing::kNone;
  }
}

void Stream::data(std::string_view bytes) {
  if (failed_ || in_head_) {  // given up on, or DATA before a head (nghttp2 refuses that)
    nghttp2_session_consume(session_->session(), id_, bytes.size());
    return;
  }
  if (chunked_in_) {
    http::append_chunk(bytes, false, nullptr, &in_);
  } else {
    in_.append(bytes);
  }
  unacknowledged_ += bytes.size();
  wake();
}

void Stream::end_response() {
  if (ended_) return;
  ended_ = true;
  if (chunked_in_) in_.append("0\r\n"sv).append(trailers_in_).append("\r\n"sv);
}

net::Task<std::tuple<boost::system::error_code, size_t>> Stream::read_some(
    net::asio::mutable_buffer b) {
  boost::system::error_code ec;
  size_t n = 0;
  while (!read_now(b, &ec, &n)) co_await wait();
  co_return std::make_tuple(ec, n);
}

bool Stream::read_now(net::asio::mutable_buffer b, boost::system::error_code* ec, size_t* n) {
  *n = std::min(b.size(), in_.size() - in_at_);
  if (*n) {
    std::memcpy(b.data(), in_.data() + in_at_, *n);
    in_at_ += *n;
    http::compact(in_, in_at_);
    // The DATA bytes go back to the upstream's windows as the caller takes them (the framing
    // written here is not DATA: at most what arrived is given back).
    const uint64_t ack = std::min<uint64_t>(*n, unacknowledged_);
    unacknowledged_ -= ack;
    if (ack && !session_->closed_) {
      nghttp2_session_consume(session_->session(), id_, ack);
      session_->flush();
    }
    ec->clear();
    return true;
  }
  if (ended_) {
    *ec = net::asio::error::eof;
  } else if (failed_) {
    *ec = net::asio::error::connection_reset;
  } else {
    return false;
  }
  return true;
}

// --- the stream's end --------------------------------------------------------------------------

void Stream::closed(uint32_t error_code) {
  if (closed_) return;
  closed_ = true;
  if (!ended_) {
    failed_ = true;
    refused_ = error_code == NGHTTP2_REFUSED_STREAM && !answered_;
  }
  wake();
}

void Stream::cancel() {
  if (!ended_) failed_ = true;
  if (id_ && !closed_ && !session_->closed_) {
    nghttp2_submit_rst_stream(session_->session(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_CANCEL);
    session_->flush();
  }
  wake();
}

net::Task<std::tuple<boost::system::error_code>> Stream::wait() { return waiter_.wait(); }

net::Task<std::tuple<boost::system::error_code>> Stream::wait_for_room() {
  return room_waiter_.wait();
}

// The caller is resumed by the session, once nghttp2 has returned (resume_woken()): at the end of
// the read that brought the news, or, for news from elsewhere, in a turn of its own.
void Stream::wake() {
  if (!(waiter_.waiting() || room_waiter_.waiting()) || woken_) return;
  woken_ = true;
  session_->woken_.push_back(shared_from_this());
  session_->schedule_resume();
}

// Both waits: whichever has no news asks again and waits on.
void Stream::resume() {
  woken_ = false;
  waiter_.resume();
  room_waiter_.resume();
}

}  // namespace gatehouse::upstream::h2
