// A WebSocket connection through the gateway, once the upstream answered 101: the client's bytes
// to the upstream and the upstream's to the client, both ways at once, each frame's header checked
// on the way (frames.h). The close handshake (RFC 6455 7) passes through as frames; the tunnel ends
// when either side closes its connection. The gateway closes it itself (a Close frame to each side,
// then the connections) when a frame breaks the rules or the route's limits, when nothing passed
// either way for the route's idle_timeout, or at the end of a drain (shutdown()).
//
// Each side is an End: a connection (HTTP/1.1's upgrade, the upstream's side always), or the DATA
// of an HTTP/2 stream (RFC 8441's extended CONNECT, the client's side).
#pragma once

#include <cstdint>
#include <string_view>
#include <tuple>

#include "config/config.h"
#include "net/asio.h"
#include "net/stream.h"

namespace gatehouse::websocket {

// One side of a tunnel, as bytes.
class End {
 public:
  virtual net::Task<std::tuple<boost::system::error_code, size_t>> read_some(
      net::asio::mutable_buffer b) = 0;
  // As net::Stream's: what goes out now (a and b keep the rest), then all of it.
  virtual bool send_now(std::string_view& a, std::string_view& b) = 0;
  virtual net::Task<bool> send_rest(std::string_view a, std::string_view b, uint64_t* counter) = 0;
  virtual void shutdown_send() = 0;  // nothing more goes to this side
  virtual void close() = 0;          // the side is done with, both ways

 protected:
  ~End() = default;
};

// A connection as a tunnel's end.
class ConnectionEnd final : public End {
 public:
  explicit ConnectionEnd(net::Stream& s) : s_(s) {}
  net::Task<std::tuple<boost::system::error_code, size_t>> read_some(
      net::asio::mutable_buffer b) override {
    return s_.read_some(b);
  }
  bool send_now(std::string_view& a, std::string_view& b) override { return s_.send_now(a, b); }
  net::Task<bool> send_rest(std::string_view a, std::string_view b, uint64_t* counter) override {
    return s_.send_rest(a, b, counter);
  }
  void shutdown_send() override { s_.shutdown_send(); }
  void close() override { s_.close(); }

 private:
  net::Stream& s_;
};

class Tunnel {
 public:
  struct Bytes {
    uint64_t to_upstream = 0, to_client = 0;
  };

  // `client_first`, `upstream_first`: bytes each side sent that arrived with the handshake.
  Tunnel(const net::Executor& ex, End& client, End& upstream, const config::WebSocket& limits);
  net::Task<> run(std::string_view client_first, std::string_view upstream_first);
  // Going away (1001) to both sides, then the close: a drain's end.
  void shutdown(uint16_t code);
  const Bytes& bytes() const { return bytes_; }
  uint16_t closed_with() const { return closed_with_; }  // 0: a side closed its connection

 private:
  struct Direction;
  net::Task<> pump(Direction& d, std::string_view first);
  void watch_idle();

  net::Executor ex_;
  End& client_;
  End& upstream_;
  const config::WebSocket limits_;
  Bytes bytes_;
  uint16_t closed_with_ = 0;
  bool closing_ = false;  // a side closed, or the gateway sent its Close frames
  int pumps_done_ = 0;    // of the two directions, after closing_
  bool writing_to_client_ = false, writing_to_upstream_ = false;
  net::Clock::time_point last_activity_;
  net::Timer idle_;
};

}  // namespace gatehouse::websocket
