#include "upstream/fetch.h"

#include <vector>

#include "http/chunked.h"
#include "http/parser.h"
#include "net/buffer.h"
#include "tls/client_context.h"
#include "upstream/h2/session.h"

namespace gatehouse::upstream {
Fetch::~Fetch() {
  if (set_) set_->fetches_.remove(this);
  if (armed_) armed_->running = false;
  if (h2_) h2_->session().close();
}

void Fetch::cancel() {
  cancelled_ = true;
  boost::system::error_code ignored;
  stream_.socket().close(ignored);
  if (h2_) h2_->session().close();
}

// Reads what the peer sends next into in_. False at the end of the stream, a failure, or the
// deadline (which closes the socket).
net::Task<bool> Fetch::read_more(std::string* why) {
  char buf[net::kReadChunk];
  auto [ec, n] = co_await read_some(net::asio::buffer(buf, sizeof buf));
  if (ec || n == 0) {
    *why = cancelled_                    ? "timed out"
           : ec == net::asio::error::eof ? "closed the connection"
                                         : ec.message();
    co_return false;
  }
  in_.append(buf, n);
  co_return true;
}

// The connection, or the HTTP/2 stream on it. (Not `co_await (h2_ ? a : b)`: GCC 12 destroys the
// chosen temporary twice.)
net::Task<std::tuple<boost::system::error_code, size_t>> Fetch::read_some(
    net::asio::mutable_buffer b) {
  return h2_ ? h2_->read_some(b) : stream_.read_some(b);
}

void Fetch::arm(std::chrono::milliseconds timeout) {
  armed_ = std::make_shared<Armed>(Armed{this, true});
  deadline_.expires_after(timeout);
  deadline_.async_wait([armed = armed_](boost::system::error_code ec) {
    if (!ec && armed->running) armed->fetch->cancel();
  });
}

net::Task<FetchResult> Fetch::run(const FetchRequest& r) {
  arm(r.timeout);
  FetchResult out = co_await exchange(r);
  armed_->running = false;
  deadline_.cancel();
  co_return out;
}

net::Task<FetchResult> Fetch::exchange(const FetchRequest& r) {
  FetchResult out;
  auto [cec] = co_await stream_.socket().async_connect(r.endpoint, net::use_task);
  if (cec) {
    out.error = cancelled_ ? "timed out" : "cannot connect: " + cec.message();
    co_return out;
  }
  boost::system::error_code ignored;
  stream_.socket().non_blocking(true, ignored);
  if (r.tls) {
    std::string why = "cannot make a TLS session";
    bool ok = stream_.start_tls_client(*r.tls, r.server_name, nullptr);
    if (ok) ok = co_await stream_.handshake(&why);
    if (!ok) {
      out.error = "TLS: " + (cancelled_ ? std::string("timed out") : why);
      co_return out;
    }
  }
  if (r.http2) {
    if (r.tls && stream_.alpn() != "h2") {
      out.error = "TLS: the upstream did not agree to HTTP/2 (ALPN h2)";
      co_return out;
    }
    auto ex = stream_.socket().get_executor();
    h2_ = h2::Session::start(ex, std::move(stream_))->open_stream(http::kUpstreamResponseLimits);
  }
  bool sent = true;
  std::string_view body = r.body;
  if (h2_) {
    sent = h2_->submit(r.head) && h2_->send_now(body);  // a short body: nghttp2 takes it all
  } else {
    std::string_view head = r.head.text();
    sent = stream_.send_now(head, body);
    if (sent && !(head.empty() && body.empty()))
      sent = co_await stream_.send_rest(head, body, nullptr);
  }
  if (!sent) {
    out.error = cancelled_ ? "timed out" : "cannot send the request";
    co_return out;
  }

  // The response head, skipping 1xx interim responses.
  http::ResponseHead resp;
  size_t end = 0, scanned = 0;
  while (true) {
    if (h2_) {
      const auto got = co_await h2_->read_head(&resp);
      if (got == h2::Stream::Head::kOk && resp.status >= 100 && resp.status < 200) continue;
      if (got == h2::Stream::Head::kOk) break;
      out.error = got == h2::Stream::Head::kTooLarge ? "response head too large"
                  : cancelled_                       ? "timed out"
                                                     : "the stream failed before a response";
      co_return out;
    }
    end = http::find_head_end(in_, scanned);
    if (end) {
      http::ParseError err;
      if (http::parse_response_head(std::string_view(in_).substr(0, end),
                                    http::kUpstreamResponseLimits, "GET", &resp,
                                    &err) != http::ParseStatus::kComplete) {
        out.error = "invalid response: " + std::string(err.message);
        co_return out;
      }
      if (resp.status >= 100 && resp.status < 200) {
        in_.erase(0, end);
        scanned = 0;
        continue;
      }
      break;
    }
    scanned = in_.size();
    if (in_.size() > http::kUpstreamResponseLimits.max_head_bytes) {
      out.error = "response head too large";
      co_return out;
    }
    bool more = co_await read_more(&out.error);
    if (!more) co_return out;
  }
  out.status = resp.status;
  if (!r.want_body) co_return out;
  for (const auto& h : resp.headers) out.fields.emplace_back(h.name, h.value);

  // The body, by its framing.
  const http::Framing framing = resp.framing;
  const uint64_t length = resp.content_length;
  in_.erase(0, end);  // resp's views die here
  if (framing == http::Framing::kContentLength && length > r.max_body) {
    out.error = "body larger than " + std::to_string(r.max_body) + " bytes";
    out.status = 0;
    co_return out;
  }
  http::ChunkedDecoder chunked;
  chunked.keep_trailers(http::kUpstreamResponseLimits.max_head_bytes);
  std::vector<std::string_view> pieces;
  while (true) {
    bool done = false;
    if (framing == http::Framing::kNone) {
      done = true;
    } else if (framing == http::Framing::kContentLength) {
      done = in_.size() >= length;
      if (done) out.body.assign(in_, 0, length);
    } else if (framing == http::Framing::kChunked) {
      pieces.clear();
      auto fed = chunked.feed(in_, &pieces);
      if (fed.error) {
        out.error = "invalid chunked body";
        out.status = 0;
        co_return out;
      }
      for (auto p : pieces) out.body.append(p);
      in_.erase(0, fed.consumed);
      done = fed.done;
      if (done) http::parse_trailer_fields(chunked.trailers(), &out.fields);
    }
    if (done) co_return out;
    if (out.body.size() + in_.size() > r.max_body) {
      out.error = "body larger than " + std::to_string(r.max_body) + " bytes";
      out.status = 0;
      co_return out;
    }
    std::string why;
    bool more = co_await read_more(&why);
    if (!more) {
      if (framing == http::Framing::kUntilClose && why == "closed the connection") {
        out.body = std::move(in_);
        co_return out;
      }
      out.error = "body cut short: " + why;
      out.status = 0;
      co_return out;
    }
  }
}

}  // namespace gatehouse::upstream
