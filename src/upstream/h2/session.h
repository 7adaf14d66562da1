// HTTP/2 to upstreams (RFC 9113), client side: one Session per connection to a target, many
// request Streams on it. nghttp2 does the protocol (framing, HPACK, flow control, the stream
// states and the checks of a response's fields); this is the glue between it, the socket and
// the callers.
//
// A Stream takes and gives a request and its response as an HTTP/1.1 connection would, but for
// the heads, which go as fields both ways, never as text parsed back: the request's head as the
// gateway wrote it (http::OutgoingRequest) and its body's bytes in the framing the head declares
// (send_now, send_rest); the response's heads (read_head: the interim ones, then the final one,
// as an http::ResponseHead of the fields nghttp2 checked) and its body as HTTP/1.1 bytes
// (read_some). So upstream::Client (and upstream::Fetch, for health checks) keep one request life
// for both protocols: retries, deadlines, breakers, the relay of the body. The translation, both
// ways (RFC 9113 8.2 and 8.3):
// - request: :method, :scheme (of the upstream's connection), :authority from Host, :path from
//   the request target; the connection-specific fields dropped (8.2.2); Cookie split into one
//   field per cookie (8.2.3); the request id never indexed (http/h2_fields.h); a chunked body
//   de-chunked into DATA, its trailers a trailing HEADERS.
// - response: the status from :status, the fields as they came (nghttp2 has refused upper case,
//   connection-specific fields and bad values), within the caller's limits on a head; a body
//   without Content-Length framed chunked, its trailers in the last chunk.
//
// Backpressure both ways is HTTP/2's flow control: a response's DATA is acknowledged (window
// given back) only as the caller reads it, so a slow client slows the upstream; a request body
// waits in a bounded buffer until the upstream's windows let nghttp2 send it, so a slow upstream
// slows the client.
//
// Everything here runs on one thread (a worker's, or the main thread for health checks).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "http/chunked.h"
#include "http/message.h"
#include "http/outgoing_request.h"
#include "http/parser.h"
#include "net/asio.h"
#include "net/stream.h"
#include "net/waiter.h"

struct nghttp2_session;

namespace gatehouse::upstream::h2 {

class Stream;

class Session final : public std::enable_shared_from_this<Session> {
 public:
  // At most this many streams at once on one connection, whatever the upstream allows: the
  // connection's receive window is sized so that this many stalled streams cannot close it.
  static constexpr uint32_t kMaxStreams = 100;

  // Starts HTTP/2 on `conn` (connected, TLS done with "h2" agreed, or cleartext with prior
  // knowledge): the preface and SETTINGS, then the reader.
  static std::shared_ptr<Session> start(const net::Executor& ex, net::Stream conn);
  Session(const net::Executor& ex, net::Stream conn);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Takes a new stream now: open, not going away, and fewer streams than the upstream's
  // SETTINGS_MAX_CONCURRENT_STREAMS (and kMaxStreams).
  bool has_room() const;
  // Open, and not told to go away: its streams may still finish.
  bool alive() const { return !closed_ && !going_away_; }
  size_t streams() const { return streams_.size(); }
  // A new request stream (its request goes out with submit()); a response head past `limits`
  // (bytes as HTTP/1.1 would carry it, and fields) fails it.
  std::shared_ptr<Stream> open_stream(const http::ParseLimits& limits);
  // The connection: for the TLS session to resume on the next one.
  const net::Stream& connection() const { return conn_; }
  // No new streams; the connection closes when its last stream ends (a reload that removed the
  // target).
  void retire();
  // Closes now: every stream on it fails.
  void close();

 private:
  friend class Stream;
  struct Callbacks;  // nghttp2's, in session.cc

  net::Task<> read_frames();
  // Resumes the streams woken since the last time, here and now (outside nghttp2's calls);
  // schedule_resume(): in a turn of their own, unless a read's end will.
  void resume_woken();
  void schedule_resume();
  // Starts the writer when nghttp2 has frames to send and none is writing.
  void flush();
  net::Task<> write_frames();
  Stream* find(int32_t id) const;
  void stream_ended(int32_t id, uint32_t code);  // nghttp2 closed it, or never sent it
  void close_if_done();
  nghttp2_session* session() { return session_; }

  net::Executor ex_;
  net::Stream conn_;
  nghttp2_session* session_ = nullptr;
  std::unordered_map<int32_t, std::shared_ptr<Stream>> streams_;
  std::vector<std::shared_ptr<Stream>> woken_, resuming_;
  bool receiving_ = false;  // in nghttp2_session_mem_recv: woken streams wait for its end
  bool resume_posted_ = false;
  std::string out_;  // frames being written
  bool writing_ = false;
  bool closed_ = false;
  bool going_away_ = false;  // GOAWAY received, or retired
};

class Stream final : public std::enable_shared_from_this<Stream> {
 public:
  Stream(std::shared_ptr<Session> session, const http::ParseLimits& limits);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // --- the caller's side: the request head, then HTTP/1.1 bytes, as with net::Stream
  // Sends the request head (once; views into it need not outlive the call). False: the stream
  // failed, or the connection took no new stream (refused(): send it elsewhere).
  bool submit(const http::OutgoingRequest& head);
  // Takes as much of b (the body, in the framing the head declares) as it can buffer now; b
  // keeps what is left. False: the stream failed.
  bool send_now(std::string_view& b);
  // All of b, waiting for room as the upstream's windows open.
  net::Task<bool> send_rest(std::string_view b);
  // The next response head, an interim (1xx) one or the final one, into *head: its fields are
  // views into this stream, valid until the next call. kFailed: the stream failed first
  // (refused() says whether it may go again at once); kTooLarge: the head was past the limits.
  enum class Head : uint8_t { kOk, kFailed, kTooLarge, kNotYet };
  net::Task<Head> read_head(http::ResponseHead* head);
  // Then the response body, as HTTP/1.1 bytes in the framing the final head says: at its end,
  // eof; a reset or a lost connection, connection_reset.
  net::Task<std::tuple<boost::system::error_code, size_t>> read_some(net::asio::mutable_buffer b);
  // The same two without a coroutine of their own, for callers that are one already: what has
  // come (kNotYet, false: nothing yet; co_await wait(), then ask again).
  Head take_head(http::ResponseHead* head);
  bool read_now(net::asio::mutable_buffer b, boost::system::error_code* ec, size_t* n);
  // Until the stream has news: a head, body bytes, or its end.
  net::Task<std::tuple<boost::system::error_code>> wait();
  // Until nghttp2 took some of the request body, or the stream ended: send_rest()'s wait, apart
  // from wait(), so that a body may stream while the response is read (full duplex).
  net::Task<std::tuple<boost::system::error_code>> wait_for_room();
  // The upstream refused the stream before it processed anything (RST_STREAM REFUSED_STREAM, or
  // a GOAWAY whose last stream id is below it, RFC 9113 8.7): always safe to send again.
  bool refused() const { return refused_; }
  // Every byte of the response was read.
  bool complete() const { return ended_ && in_at_ == in_.size(); }
  // Gives up on the stream: RST_STREAM CANCEL while it is open; waits end at once.
  void cancel();
  Session& session() { return *session_; }

  // --- nghttp2's side (the session's callbacks)
  void field(std::string_view name, std::string_view value);
  void head_end(bool ended);  // a HEADERS frame ended: a response head, or the trailers
  void data(std::string_view bytes);
  void closed(uint32_t error_code);
  // What nghttp2 sends of the request body: up to `space` bytes into `to`. -1: nothing yet.
  long read_body(uint8_t* to, size_t space, bool* eof, bool* trailers);
  void send_trailers();

 private:
  void take_body(std::string_view& b);
  void end_response();
  void wake();
  friend class Session;
  void resume();  // the session's: after wake()

  std::shared_ptr<Session> session_;
  int32_t id_ = 0;           // 0: not submitted yet
  net::Waiter waiter_;       // the response's reader
  net::Waiter room_waiter_;  // the request body's sender
  bool woken_ = false;       // in the session's woken_

  // The request.
  bool head_request_ = false;
  http::Framing framing_ = http::Framing::kNone;
  uint64_t body_left_ = 0;  // Content-Length bytes still to come
  http::ChunkedDecoder chunked_;
  std::string out_;  // body bytes nghttp2 has not taken yet
  size_t out_at_ = 0;
  bool out_ended_ = false;
  bool deferred_ = false;  // nghttp2 waits for body bytes (resume_data when they come)
  http::HeaderList trailers_out_;

  // The response: its heads as they come, ...
  struct ReceivedHead {
    int status = 0;
    std::string bytes;                                  // the names and values, back to back
    std::vector<std::pair<uint32_t, uint32_t>> fields;  // each one's name and value lengths
    size_t size = 0;                                    // as HTTP/1.1 would carry it
    bool too_large = false;
    void add(std::string_view name, std::string_view value) {
      if (fields.empty()) {  // one allocation each for a usual head
        fields.reserve(16);
        bytes.reserve(512);
      }
      bytes.append(name).append(value);
      fields.emplace_back(static_cast<uint32_t>(name.size()), static_cast<uint32_t>(value.size()));
    }
  };
  void fill(const ReceivedHead& from, bool final, http::ResponseHead* head) const;
  http::ParseLimits limits_;
  ReceivedHead head_in_;               // the head coming in, then the final one
  std::vector<ReceivedHead> interim_;  // interim heads not read yet
  ReceivedHead interim_read_;          // the interim head read_head() gave last
  bool in_head_ = true;                // the next HEADERS is a response head (else the trailers)
  bool has_length_ = false;
  bool wants_trailers_ = false;  // the request said "te: trailers" (a gRPC call)
  // ... and its body, as HTTP/1.1 bytes.
  std::string in_;
  size_t in_at_ = 0;
  uint64_t unacknowledged_ = 0;  // DATA bytes not yet given back to the upstream's windows
  bool chunked_in_ = false;
  std::string trailers_in_;  // "name: value\r\n" each
  bool answered_ = false;    // the final response head arrived
  bool ended_ = false;       // END_STREAM: the response is whole
  bool failed_ = false;      // reset, refused, cancelled, or the connection lost
  bool refused_ = false;
  bool closed_ = false;  // by nghttp2
};

}  // namespace gatehouse::upstream::h2
