#include "http2/connection.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>

#include "config/snapshot.h"
#include "exchange/peer.h"
#include "http2/stream.h"
#include "websocket/frames.h"

namespace gatehouse::http2 {
namespace {

// Frames are gathered up to this much per write.
constexpr size_t kWriteBatch = 64 * 1024;
// CVE-2023-44487 (rapid reset): at most this many streams a client resets, in a burst, then this
// many a second; past it, GOAWAY (nghttp2's token bucket). CVE-2024-27316 class: a header block
// in at most this many CONTINUATION frames.
constexpr uint64_t kResetBurst = 1000, kResetsPerSecond = 33;
constexpr size_t kMaxContinuations = 8;
// CVE-2019-9518 (empty frames): DATA without payload or END_STREAM, one after another, cost the
// gateway work and carry nothing. Past this many in a row, the connection ends.
constexpr uint32_t kMaxEmptyFrames = 100;

Stream* stream_of(nghttp2_session* session, int32_t id) {
  return static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, id));
}

}  // namespace

// nghttp2's callbacks: a request stream begins, its fields, its body, its end.
struct Connection::Callbacks {
  // RFC 9113 5.1.1: a client's new stream has a higher id than all before it. nghttp2 ignores a
  // HEADERS on a lower id it no longer knows; here that ends the connection (PROTOCOL_ERROR),
  // unless it is a stream the gateway reset, whose frames may still be in flight (5.4.2).
  static int on_begin_frame(nghttp2_session* session, const nghttp2_frame_hd* hd, void* self) {
    auto* c = static_cast<Connection*>(self);
    const int32_t id = hd->stream_id;
    if (hd->type != NGHTTP2_HEADERS || !(id & 1)) return 0;
    if (id > c->last_stream_) {
      c->last_stream_ = id;
    } else if (!nghttp2_session_find_stream(session, id) && !c->reset_.contains(id)) {
      nghttp2_session_terminate_session(session, NGHTTP2_PROTOCOL_ERROR);
    }
    return 0;
  }

  static int on_begin_headers(nghttp2_session* session, const nghttp2_frame* frame, void* self) {
    auto* c = static_cast<Connection*>(self);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    auto stream = std::make_shared<Stream>(*c, frame->hd.stream_id);
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, stream.get());
    c->streams_.emplace(frame->hd.stream_id, std::move(stream));
    // Not idle now; its header block must end within server.timeouts.header_read.
    c->wake_at(net::coarse_now() + c->w_.view()->snapshot->config.server.timeouts.header_read);
    return 0;
  }

  static int on_header(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void*) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    if (Stream* s = stream_of(session, frame->hd.stream_id)) {
      s->field({reinterpret_cast<const char*>(name), namelen},
               {reinterpret_cast<const char*>(value), valuelen});
    }
    return 0;
  }

  static int on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* self) {
    auto* c = static_cast<Connection*>(self);
    if (frame->hd.type == NGHTTP2_DATA) {
      const bool empty = frame->hd.length == 0 && !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM);
      c->empty_frames_ = empty ? c->empty_frames_ + 1 : 0;
      if (c->empty_frames_ > kMaxEmptyFrames) {
        nghttp2_session_terminate_session(session, NGHTTP2_ENHANCE_YOUR_CALM);
        return 0;
      }
    }
    Stream* s = stream_of(session, frame->hd.stream_id);
    if (!s) return 0;
    const bool ended = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS:
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
          s->head_complete(ended);
          if (auto it = c->streams_.find(s->id); it != c->streams_.end()) c->serve(it->second);
        } else if (ended) {
          s->body_end();  // the trailers
        }
        break;
      case NGHTTP2_DATA:
        if (ended) s->body_end();
        break;
    }
    return 0;
  }

  static int on_data_chunk(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data,
                           size_t len, void*) {
    if (Stream* s = stream_of(session, id)) {
      s->body_piece({reinterpret_cast<const char*>(data), len});
    } else {
      nghttp2_session_consume_connection(session, len);  // a stream already gone
    }
    return 0;
  }

  // The response's last frame went out: a request still open gets its end (Stream::response_ended).
  static int on_frame_send(nghttp2_session* session, const nghttp2_frame* frame, void*) {
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
      if (Stream* s = stream_of(session, frame->hd.stream_id)) s->response_ended();
    }
    return 0;
  }

  static int on_stream_close(nghttp2_session* session, int32_t id, uint32_t, void* self) {
    if (Stream* s = stream_of(session, id)) s->closed();
    static_cast<Connection*>(self)->stream_done(id);
    return 0;
  }
};

void Connection::start(exchange::WorkerContext& worker, exchange::RequestStatePool& pool,
                       net::Stream client, std::string_view first) {
  auto self = std::make_shared<Connection>(worker, pool, std::move(client));
  net::asio::co_spawn(worker.io().get_executor(), self->run(std::string(first)),
                      [self](std::exception_ptr) {});
}

Connection::Connection(exchange::WorkerContext& worker, exchange::RequestStatePool& pool,
                       net::Stream client)
    : w_(worker), pool_(pool), client_(std::move(client)), timer_(worker.io().get_executor()) {
  auto peer =
      exchange::peer_of(client_.socket(), w_.view()->snapshot->config.server.trusted_proxies);
  peer_ip_ = std::move(peer.ip);
  peer_trusted_ = peer.trusted;
  boost::system::error_code ec;
  client_.socket().set_option(net::tcp::no_delay(true), ec);
  client_.socket().non_blocking(true, ec);
  w_.add(this);

  nghttp2_session_callbacks* cb;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_begin_frame_callback(cb, &Callbacks::on_begin_frame);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &Callbacks::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, &Callbacks::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &Callbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &Callbacks::on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, &Callbacks::on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, &Callbacks::on_frame_send);
  nghttp2_option* opt;
  nghttp2_option_new(&opt);
  // A request body's window is given back as the exchange takes it, not as it arrives.
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_stream_reset_rate_limit(opt, kResetBurst, kResetsPerSecond);
  nghttp2_option_set_max_continuations(opt, kMaxContinuations);
  nghttp2_session_server_new2(&session_, cb, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);

  // What the gateway tells the client (server.http2); the header section is bounded by
  // server.limits.max_header_bytes.
  const auto& server = w_.view()->snapshot->config.server;
  const std::array<nghttp2_settings_entry, 6> settings{{
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, server.http2.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, server.http2.stream_window},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, server.http2.max_frame_size},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
       static_cast<uint32_t>(server.limits.max_header_bytes)},
      {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},  // WebSocket over HTTP/2 (RFC 8441 3)
      // RFC 9113 5.3.2 deprecates RFC 7540's priority tree: no client is kept waiting on
      // another's stream by it, and nghttp2 keeps no tree of open and closed streams (RFC
      // 9218 2.1).
      {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
  }};
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(server.http2.connection_window));
}

Connection::~Connection() {
  streams_.clear();
  nghttp2_session_del(session_);
  w_.remove(this);
}

net::Task<> Connection::run(std::string first) {
  auto self = shared_from_this();
  check_idle();  // until the first stream
  std::array<char, 16 * 1024> in;
  if (!feed(first)) {
    close_now();
    co_return;
  }
  while (!closed_) {
    auto [ec, n] = co_await client_.read_some(net::asio::buffer(in));
    if (ec || n == 0) break;
    if (!feed({in.data(), n})) break;
  }
  close_now();
}

bool Connection::feed(std::string_view bytes) {
  if (!bytes.empty()) {
    auto r = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(bytes.data()),
                                      bytes.size());
    // Negative: fatal (a bad preface, a flood, too many CONTINUATION frames). A protocol error
    // is not: nghttp2 answers it with GOAWAY, sent below, and then wants nothing more.
    if (r < 0) {
      say_goodbye(r == NGHTTP2_ERR_FLOODED || r == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS
                      ? NGHTTP2_ENHANCE_YOUR_CALM
                      : NGHTTP2_PROTOCOL_ERROR);
      return false;
    }
  }
  flush();
  return !finished();
}

// Before a close for a fatal error: GOAWAY with `code`, if the socket takes it now (a flooding
// client may not be reading; nothing is waited for).
void Connection::say_goodbye(uint32_t code) {
  if (writing_ || closed_) return;
  nghttp2_session_terminate_session(session_, code);
  std::string frames;
  const uint8_t* data;
  ssize_t n;
  while (frames.size() < kWriteBatch && (n = nghttp2_session_mem_send(session_, &data)) > 0)
    frames.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  std::string_view rest = frames, none;
  client_.send_now(rest, none);
}

bool Connection::finished() const {
  return nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0 &&
         !writing_;
}

void Connection::flush() {
  if (writing_ || closed_ || !nghttp2_session_want_write(session_)) return;
  writing_ = true;
  net::asio::co_spawn(w_.io().get_executor(), write_frames(),
                      [self = shared_from_this()](std::exception_ptr) {
                        self->writing_ = false;
                        if (self->closed_) return;
                        if (nghttp2_session_want_write(self->session_)) return self->flush();
                        if (self->finished() || (self->draining_ && self->streams_.empty()))
                          self->close_now();
                      });
}

net::Task<> Connection::write_frames() {
  while (!closed_) {
    out_.clear();
    while (out_.size() < kWriteBatch) {
      const uint8_t* data;
      auto n = nghttp2_session_mem_send(session_, &data);
      if (n <= 0) break;
      out_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    if (out_.empty()) break;
    uint64_t sent = 0;
    if (!co_await client_.send_rest(out_, {}, &sent)) {
      close_now();
      break;
    }
  }
}

void Connection::serve(std::shared_ptr<Stream> stream) {
  net::asio::co_spawn(w_.io().get_executor(), stream->serve(),
                      [self = shared_from_this(), stream](std::exception_ptr) { self->flush(); });
}

void Connection::stream_done(int32_t id) {
  streams_.erase(id);
  if (draining_ && streams_.empty()) {
    flush();  // the last frames, then the close (flush's end)
    if (!writing_) close_now();
    return;
  }
  check_idle();
}

void Connection::check_idle() {
  if (!streams_.empty() || closed_) return;
  idle_at_ = net::coarse_now() + w_.view()->snapshot->config.server.timeouts.idle;
  arm_timer(idle_at_);
}

void Connection::wake_at(net::Clock::time_point at) {
  if (at < armed_at_) arm_timer(at);
}

void Connection::arm_timer(net::Clock::time_point at) {
  armed_at_ = at;
  timer_.expires_at(at);
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec == net::asio::error::operation_aborted || self->closed_) return;
    self->armed_at_ = net::Clock::time_point::max();
    self->on_timer();
  });
}

// Idle (or the preface never came): GOAWAY, then the close. Or a header block still open past
// server.timeouts.header_read: a client that sends a request's head slowly (a slowloris) is cut
// off, as over HTTP/1.1; the connection ends, with every stream on it. Or a stream's exchange
// past its deadline (Stream::deadline_passed). Then the timer waits for the next of them.
void Connection::on_timer() {
  const auto now = net::Clock::now();
  if (streams_.empty()) {
    // A wait that completed as the last stream ended (check_idle then re-armed) is not idleness.
    if (now < idle_at_) return wake_at(idle_at_);
    nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
    draining_ = true;
    flush();
    if (!writing_) close_now();
    return;
  }
  const auto limit = w_.view()->snapshot->config.server.timeouts.header_read;
  auto next = net::Clock::time_point::max();
  std::vector<std::shared_ptr<Stream>> due;  // collected first: what they do may end streams
  for (const auto& [id, s] : streams_) {
    if (!s->head_done()) {
      if (s->begun_at + limit <= now) {
        say_goodbye(NGHTTP2_NO_ERROR);
        return close_now();
      }
      next = std::min(next, s->begun_at + limit);
    }
    if (s->deadline() <= now) {
      due.push_back(s);
    } else {
      next = std::min(next, s->deadline());
    }
  }
  for (auto& s : due) s->deadline_passed();
  if (!closed_) wake_at(next);
}

void Connection::drain() {
  if (draining_ || closed_) return;
  draining_ = true;
  // RFC 9113 6.8: the streams up to the last one received are served; the client opens no more.
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  flush();
  if (streams_.empty() && !writing_) close_now();
}

bool Connection::tunnelling() const {
  return !streams_.empty() && std::all_of(streams_.begin(), streams_.end(),
                                          [](const auto& s) { return s.second->tunnel_now(); });
}

void Connection::close_now() {
  if (closed_) return;
  if (tunnelling() && !tunnels_closing_) {
    // A drain's end: 1001 (going away) to both sides of every tunnel. Their Close frames go out
    // with the stream's other frames, so the connection closes as a drain's does, when its last
    // stream has ended (each within the tunnel's linger); a second call (an abort) closes it now.
    tunnels_closing_ = true;
    draining_ = true;
    for (auto& [id, s] : streams_) s->tunnel_now()->shutdown(websocket::kGoingAway);
    flush();
    return;
  }
  closed_ = true;
  client_.close();
  timer_.cancel();
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, s] : streams) s->closed();
}

}  // namespace gatehouse::http2
