// WebSocket frames (RFC 6455 5.2) as a tunnel sees them: each frame's header is read and checked
// as its bytes pass, its payload only counted, never held. What a gateway must refuse: a client
// frame that is not masked (5.1), a server frame that is, reserved opcodes, control frames that
// are long or fragmented (5.5), continuations out of place (5.4), and, by the route's limits,
// frames and messages too large (7.4.1: 1009).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gatehouse::websocket {

// Close codes (RFC 6455 7.4.1) the gateway itself sends.
enum CloseCode : uint16_t {
  kGoingAway = 1001,      // a drain, or the tunnel idle too long
  kProtocolError = 1002,  // a frame no endpoint may send
  kTooBig = 1009,         // over max_frame_bytes or max_message_bytes
};

class FrameReader {
 public:
  // `from_client`: the frames a client sends (masked); otherwise a server's (unmasked).
  FrameReader(bool from_client, uint64_t max_frame, uint64_t max_message)
      : from_client_(from_client), max_frame_(max_frame), max_message_(max_message) {}
  // Reads the next bytes of the stream. 0 while every frame is acceptable; otherwise the close
  // code to end the tunnel with (and every later call returns it too).
  uint16_t feed(std::string_view bytes);

 private:
  uint16_t check_header();

  const bool from_client_;
  const uint64_t max_frame_, max_message_;
  uint8_t header_[14];
  size_t have_ = 0;            // header bytes gathered
  uint64_t payload_left_ = 0;  // of the current frame
  uint64_t message_ = 0;       // bytes of the data message in progress
  bool in_message_ = false;    // a data message awaits its final frame
  uint16_t failed_ = 0;
};

// A Close frame with `code` (a server's unmasked; a client's masked with `mask`).
std::string close_frame(uint16_t code, bool masked, uint32_t mask = 0);

}  // namespace gatehouse::websocket
