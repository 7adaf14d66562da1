#include "upstream/h2/session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>

namespace gatehouse::upstream::h2 {
namespace {

// Frames are gathered up to this much per write.
constexpr size_t kWriteBatch = 64 * 1024;
// What the gateway lets the upstream send ahead of the caller's reads: per stream, and for the
// connection enough that every stream may be stalled at once (a slow client on one stream must
// not stop the others, RFC 9113 5.2).
constexpr uint32_t kStreamWindow = 64 * 1024;
constexpr uint32_t kConnectionWindow = kStreamWindow * Session::kMaxStreams;

}  // namespace

// nghttp2's callbacks: a response's fields, its body, the stream's end, the upstream's GOAWAY.
struct Session::Callbacks {
  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* self) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    if (Stream* s = static_cast<Session*>(self)->find(frame->hd.stream_id)) {
      s->field({reinterpret_cast<const char*>(name), namelen},
               {reinterpret_cast<const char*>(value), valuelen});
    }
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* self) {
    auto* session = static_cast<Session*>(self);
    const bool ended = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    switch (frame->hd.type) {
      case NGHTTP2_GOAWAY:
        // RFC 9113 6.8: no new streams here, and those above the last id were never processed:
        // refused, safe to send again elsewhere (8.7). The others may still finish.
        session->going_away_ = true;
        for (auto& [id, s] : session->streams_) {
          if (id > frame->goaway.last_stream_id) s->closed(NGHTTP2_REFUSED_STREAM);
        }
        break;
      case NGHTTP2_HEADERS:
        if (Stream* s = session->find(frame->hd.stream_id)) s->head_end(ended);
        break;
      case NGHTTP2_DATA:
        if (Stream* s = session->find(frame->hd.stream_id); s && ended) s->head_end(true);
        break;
    }
    return 0;
  }

  static int on_data_chunk(nghttp2_session* ng, uint8_t, int32_t id, const uint8_t* data,
                           size_t len, void* self) {
    if (Stream* s = static_cast<Session*>(self)->find(id)) {
      s->data({reinterpret_cast<const char*>(data), len});
    } else {
      nghttp2_session_consume_connection(ng, len);  // a stream already given up on
    }
    return 0;
  }

  static int on_stream_close(nghttp2_session*, int32_t id, uint32_t code, void* self) {
    static_cast<Session*>(self)->stream_ended(id, code);
    return 0;
  }

  // A request's HEADERS that never left (the upstream's GOAWAY came first, or its stream limit
  // fell): refused, as RFC 9113 8.7 counts a stream the upstream never saw.
  static int on_frame_not_send(nghttp2_session*, const nghttp2_frame* frame, int, void* self) {
    auto* session = static_cast<Session*>(self);
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    session->stream_ended(frame->hd.stream_id, NGHTTP2_REFUSED_STREAM);
    return 0;
  }
};

std::shared_ptr<Session> Session::start(const net::Executor& ex, net::Stream conn) {
  auto self = std::make_shared<Session>(ex, std::move(conn));
  net::asio::co_spawn(ex, self->read_frames(), [self](std::exception_ptr) {});
  self->flush();  // the preface and SETTINGS
  return self;
}

Session::Session(const net::Executor& ex, net::Stream conn) : ex_(ex), conn_(std::move(conn)) {
  nghttp2_session_callbacks* cb;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_header_callback(cb, &Callbacks::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &Callbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &Callbacks::on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, &Callbacks::on_stream_close);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(cb, &Callbacks::on_frame_not_send);
  nghttp2_option* opt;
  nghttp2_option_new(&opt);
  // A response body's window is given back as the caller reads it, not as it arrives.
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_session_client_new2(&session_, cb, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);

  const std::array<nghttp2_settings_entry, 3> settings{{
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 0},  // the upstream opens none (RFC 9113 8.4)
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamWindow},
  }};
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
}

Session::~Session() { nghttp2_session_del(session_); }

bool Session::has_room() const {
  if (!alive()) return false;
  const uint32_t limit = std::min(
      kMaxStreams,
      nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS));
  return streams_.size() < limit;
}

std::shared_ptr<Stream> Session::open_stream(const http::ParseLimits& limits) {
  return std::make_shared<Stream>(shared_from_this(), limits);
}

Stream* Session::find(int32_t id) const {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

net::Task<> Session::read_frames() {
  auto self = shared_from_this();
  std::array<char, 16 * 1024> in;
  while (!closed_) {
    auto [ec, n] = co_await conn_.read_some(net::asio::buffer(in));
    if (ec || n == 0) break;
    receiving_ = true;
    auto r = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(in.data()), n);
    receiving_ = false;
    if (r < 0) close();  // a fatal error: the connection is unusable
    resume_woken();      // the callers this read woke, before the event loop polls again
    if (closed_) break;
    flush();
    if (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0)
      break;
  }
  close();
}

void Session::flush() {
  if (writing_ || closed_ || !nghttp2_session_want_write(session_)) return;
  writing_ = true;
  net::asio::co_spawn(ex_, write_frames(), [self = shared_from_this()](std::exception_ptr) {
    self->writing_ = false;
    if (self->closed_) return;
    if (nghttp2_session_want_write(self->session_)) return self->flush();
    self->close_if_done();
  });
}

net::Task<> Session::write_frames() {
  while (!closed_) {
    out_.clear();
    while (out_.size() < kWriteBatch) {
      const uint8_t* data;
      auto n = nghttp2_session_mem_send(session_, &data);
      if (n <= 0) break;
      out_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    if (out_.empty()) break;
    if (!co_await conn_.send_rest(out_, {}, nullptr)) {
      close();
      break;
    }
  }
}

void Session::schedule_resume() {
  if (woken_.empty() || receiving_ || resume_posted_) return;
  resume_posted_ = true;
  net::asio::post(ex_, [self = shared_from_this()] { self->resume_woken(); });
}

void Session::resume_woken() {
  resume_posted_ = false;
  while (!woken_.empty()) {
    resuming_.swap(woken_);  // a resumed caller may wake others
    for (auto& s : resuming_) s->resume();
    resuming_.clear();
  }
}

void Session::stream_ended(int32_t id, uint32_t code) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  auto stream = std::move(it->second);  // alive through its closed()
  streams_.erase(it);
  stream->closed(code);
  close_if_done();
}

// Going away (told to, or retired) with no stream left: nothing more will use the connection.
void Session::close_if_done() {
  if (going_away_ && streams_.empty() && !writing_) close();
}

void Session::retire() {
  going_away_ = true;
  close_if_done();
}

void Session::close() {
  if (closed_) return;
  closed_ = true;
  going_away_ = true;
  conn_.drop();
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, s] : streams) s->closed(NGHTTP2_CONNECT_ERROR);
  schedule_resume();
}

}  // namespace gatehouse::upstream::h2
