// A WebSocket connection through the gateway, once the upstream answered 101: the client's bytes
// to the upstream and the upstream's to the client, both ways at once, each frame's header checked
// on the way (frames.h). The close handshake (RFC 6455 7) passes through as frames; the tunnel ends
// when either side closes its connection. The gateway closes it itself (a Close frame to each side,
// then the connections) when a frame breaks the rules or the route's limits, when nothing passed
// either way for the route's idle_timeout, or at the end of a drain (shutdown()).
#pragma once

#include <cstdint>
#include <string_view>

#include "config/config.h"
#include "net/asio.h"
#include "net/stream.h"

namespace gatehouse::websocket {

class Tunnel {
 public:
  struct Bytes {
    uint64_t to_upstream = 0, to_client = 0;
  };

  // `client_first`, `upstream_first`: bytes each side sent that arrived with the handshake.
  Tunnel(net::Stream& client, net::Stream& upstream, const config::WebSocket& limits);
  net::Task<> run(std::string_view client_first, std::string_view upstream_first);
  // Going away (1001) to both sides, then the close: a drain's end.
  void shutdown(uint16_t code);
  const Bytes& bytes() const { return bytes_; }
  uint16_t closed_with() const { return closed_with_; }  // 0: a side closed its connection

 private:
  struct Direction;
  net::Task<> pump(Direction& d, std::string_view first);
  void watch_idle();

  net::Stream& client_;
  net::Stream& upstream_;
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
