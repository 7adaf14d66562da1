// The HTTP/2 codec, server side (RFC 9113): one client connection, many streams. nghttp2 does the
// protocol (framing, HPACK, flow control, the stream states and RFC 9113's checks of a request's
// fields); this is the glue between it, the socket and the exchange. Each request stream becomes
// one exchange, as an HTTP/1.1 request does: the stream is its Downstream.
//
// Bytes go through nghttp2's memory interface: what arrives is fed to it (mem_recv), and what it
// wants to send is taken (mem_send) and written by one writer at a time. Backpressure comes from
// HTTP/2's own flow control, both ways: a request body's bytes are acknowledged to the client
// (WINDOW_UPDATE) only as the exchange passes them upstream, so a slow upstream slows the client;
// a response body waits in its stream's buffer, bounded, until the client's windows let nghttp2
// send it, so a slow client slows the upstream read. docs/architecture.md says more.
//
// Lives on one worker; everything here runs on that worker's thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "exchange/context.h"
#include "exchange/request_state.h"
#include "net/asio.h"
#include "net/stream.h"

struct nghttp2_session;

namespace gatehouse::http2 {

class Stream;

class Connection final : public std::enable_shared_from_this<Connection>,
                         public exchange::Drainable {
 public:
  // A client that speaks HTTP/2: chosen by ALPN ("h2", the TLS handshake done) or, on a cleartext
  // listener that allows h2c, by the connection preface at the start of `first` (bytes already
  // read from it).
  // `pool`: the worker's, for the state of each stream's request.
  static void start(exchange::WorkerContext& worker, exchange::RequestStatePool& pool,
                    net::Stream client, std::string_view first);

  Connection(exchange::WorkerContext& worker, exchange::RequestStatePool& pool, net::Stream client);
  ~Connection();

  // Drain: GOAWAY (RFC 9113 6.8), the streams already open finish, then the connection closes.
  void drain() override;
  void close_now() override;
  bool tunnelling() const override;  // every stream a WebSocket tunnel (RFC 8441)

 private:
  friend class Stream;
  struct Callbacks;  // nghttp2's, in connection.cc

  net::Task<> run(std::string first);
  // Feeds received bytes to nghttp2, then sends what it has to say. False: the connection ends.
  bool feed(std::string_view bytes);
  // Starts the writer when nghttp2 has frames to send and none is writing.
  void flush();
  net::Task<> write_frames();
  void stream_done(int32_t id);  // nghttp2 closed it
  void serve(std::shared_ptr<Stream> stream);
  void check_idle();  // no stream open: the idle timeout runs
  // The timer fires at `at` if nothing earlier is due (a stream's deadline, a header block's).
  void wake_at(net::Clock::time_point at);
  void arm_timer(net::Clock::time_point at);
  void on_timer();
  bool finished() const;  // nothing left to read or write
  void say_goodbye(uint32_t code);
  nghttp2_session* session() { return session_; }
  const std::string& peer_ip() const { return peer_ip_; }
  bool peer_trusted() const { return peer_trusted_; }
  bool secure() const { return client_.tls(); }
  std::string_view tls_version() const { return client_.tls_version(); }
  exchange::WorkerContext& worker() { return w_; }
  exchange::RequestStatePool& pool() { return pool_; }
  void reset_by_gateway(int32_t id) {
    if (reset_.size() >= kResetsRemembered) reset_.clear();  // bounded; old ones are long gone
    reset_.insert(id);
  }
  static constexpr size_t kResetsRemembered = 1024;

  exchange::WorkerContext& w_;
  exchange::RequestStatePool& pool_;
  net::Stream client_;
  nghttp2_session* session_ = nullptr;
  std::unordered_map<int32_t, std::shared_ptr<Stream>> streams_;
  int32_t last_stream_ = 0;            // the highest request stream id so far
  uint32_t empty_frames_ = 0;          // DATA frames in a row that carried nothing
  std::unordered_set<int32_t> reset_;  // streams the gateway reset (frames may still come)
  std::string peer_ip_;
  bool peer_trusted_ = false;
  std::string out_;  // frames being written
  bool writing_ = false;
  bool closed_ = false;
  bool draining_ = false;
  bool tunnels_closing_ = false;  // the drain's end told every tunnel to close
  // One timer for the connection and its streams: the idle timeout (no stream open), else the
  // earliest of the header blocks' and the exchanges' deadlines. A stream of its own would cost
  // each request a timer wait, and re-arming it as its deadline moves (sent, then answered).
  net::Timer timer_;
  net::Clock::time_point armed_at_ = net::Clock::time_point::max();
  net::Clock::time_point idle_at_ = net::Clock::time_point::max();
};

}  // namespace gatehouse::http2
