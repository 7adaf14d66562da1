#include "websocket/frames.h"

#include <algorithm>

namespace gatehouse::websocket {

uint16_t FrameReader::feed(std::string_view bytes) {
  while (!bytes.empty() && !failed_) {
    if (payload_left_) {
      const uint64_t n = std::min<uint64_t>(payload_left_, bytes.size());
      payload_left_ -= n;
      bytes.remove_prefix(n);
      continue;
    }
    header_[have_++] = static_cast<uint8_t>(bytes.front());
    bytes.remove_prefix(1);
    if (have_ < 2) continue;
    const uint8_t len7 = header_[1] & 0x7f;
    const size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (header_[1] & 0x80 ? 4 : 0);
    if (have_ < need) continue;
    failed_ = check_header();
    have_ = 0;
  }
  return failed_;
}

uint16_t FrameReader::check_header() {
  const bool fin = header_[0] & 0x80;
  const uint8_t opcode = header_[0] & 0x0f;
  const bool masked = header_[1] & 0x80;
  const uint8_t len7 = header_[1] & 0x7f;
  uint64_t len = len7;
  if (len7 == 126) {
    len = uint64_t{header_[2]} << 8 | header_[3];
  } else if (len7 == 127) {
    len = 0;
    for (int i = 2; i < 10; ++i) len = len << 8 | header_[i];
    if (len >> 63) return kProtocolError;  // the most significant bit must be 0 (5.2)
  }
  if (masked != from_client_) return kProtocolError;  // 5.1, 5.3
  const bool control = opcode & 0x8;
  if (control) {
    if (opcode > 0xA) return kProtocolError;       // reserved
    if (!fin || len > 125) return kProtocolError;  // 5.5
  } else {
    if (opcode > 0x2) return kProtocolError;                  // reserved
    if ((opcode == 0) != in_message_) return kProtocolError;  // 5.4: continuation only within
    if (len > max_frame_) return kTooBig;
    message_ = (opcode == 0 ? message_ : 0) + len;
    if (message_ > max_message_) return kTooBig;
    in_message_ = !fin;
  }
  payload_left_ = len;
  return 0;
}

std::string close_frame(uint16_t code, bool masked, uint32_t mask) {
  std::string f;
  f.push_back(static_cast<char>(0x88));  // FIN, Close
  f.push_back(static_cast<char>((masked ? 0x80 : 0) | 2));
  uint8_t payload[2] = {static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code & 0xff)};
  if (masked) {
    const uint8_t key[4] = {static_cast<uint8_t>(mask >> 24), static_cast<uint8_t>(mask >> 16),
                            static_cast<uint8_t>(mask >> 8), static_cast<uint8_t>(mask)};
    f.append(reinterpret_cast<const char*>(key), 4);
    payload[0] ^= key[0];
    payload[1] ^= key[1];
  }
  f.append(reinterpret_cast<const char*>(payload), 2);
  return f;
}

}  // namespace gatehouse::websocket
