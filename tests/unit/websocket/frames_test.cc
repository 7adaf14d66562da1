// The tunnel's frame checks (RFC 6455 5): what passes, what ends the tunnel and with which code.
#include "websocket/frames.h"

#include <gtest/gtest.h>

#include <string>

namespace gatehouse::websocket {
namespace {

// A frame header (and `payload` bytes of zeros): masked frames get a zero key.
std::string frame(uint8_t opcode, uint64_t payload, bool fin = true, bool masked = true) {
  std::string f;
  f.push_back(static_cast<char>((fin ? 0x80 : 0) | opcode));
  const char mask = masked ? static_cast<char>(0x80) : 0;
  if (payload < 126) {
    f.push_back(static_cast<char>(mask | payload));
  } else if (payload < 65536) {
    f.push_back(static_cast<char>(mask | 126));
    f.push_back(static_cast<char>(payload >> 8));
    f.push_back(static_cast<char>(payload & 0xff));
  } else {
    f.push_back(static_cast<char>(mask | 127));
    for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>(payload >> (8 * i)));
  }
  if (masked) f.append(4, '\0');
  f.append(payload, '\0');
  return f;
}

TEST(WebSocketFrames, ClientFramesPassWhenMaskedAndWithinLimits) {
  FrameReader r(true, 1000, 3000);
  EXPECT_EQ(r.feed(frame(0x1, 5)), 0);            // text
  EXPECT_EQ(r.feed(frame(0x2, 1000)), 0);         // binary, at the frame limit
  EXPECT_EQ(r.feed(frame(0x9, 125)), 0);          // ping, the largest control frame
  EXPECT_EQ(r.feed(frame(0x2, 1000, false)), 0);  // a message in three frames ...
  EXPECT_EQ(r.feed(frame(0xA, 3)), 0);            // ... a pong between them ...
  EXPECT_EQ(r.feed(frame(0x0, 1000, false)), 0);
  EXPECT_EQ(r.feed(frame(0x0, 1000)), 0);  // ... 3000 bytes: at the limit
  EXPECT_EQ(r.feed(frame(0x8, 2)), 0);     // close
}

TEST(WebSocketFrames, HeadersSplitAnywhereReadTheSame) {
  FrameReader r(true, 100000, 100000);
  std::string bytes = frame(0x2, 70000) + frame(0x1, 300) + frame(0x1, 2);
  for (char ch : bytes) ASSERT_EQ(r.feed(std::string_view(&ch, 1)), 0);
  EXPECT_EQ(r.feed(frame(0x3, 0)), kProtocolError) << "and the reader still knows where it is";
}

TEST(WebSocketFrames, MaskingIsTheClientsAndOnlyTheClients) {
  EXPECT_EQ(FrameReader(true, 100, 100).feed(frame(0x1, 5, true, false)), kProtocolError);
  EXPECT_EQ(FrameReader(false, 100, 100).feed(frame(0x1, 5, true, true)), kProtocolError);
  EXPECT_EQ(FrameReader(false, 100, 100).feed(frame(0x1, 5, true, false)), 0);
}

TEST(WebSocketFrames, BrokenFramingIsAProtocolError) {
  EXPECT_EQ(FrameReader(true, 1000, 1000).feed(frame(0x3, 1)), kProtocolError) << "reserved";
  EXPECT_EQ(FrameReader(true, 1000, 1000).feed(frame(0xB, 1)), kProtocolError) << "reserved";
  EXPECT_EQ(FrameReader(true, 1000, 1000).feed(frame(0x9, 126)), kProtocolError) << "long ping";
  EXPECT_EQ(FrameReader(true, 1000, 1000).feed(frame(0x8, 2, false)), kProtocolError)
      << "fragmented close";
  EXPECT_EQ(FrameReader(true, 1000, 1000).feed(frame(0x0, 1)), kProtocolError)
      << "a continuation with no message";
  FrameReader r(true, 1000, 1000);
  EXPECT_EQ(r.feed(frame(0x1, 1, false)), 0);
  EXPECT_EQ(r.feed(frame(0x1, 1)), kProtocolError) << "a new message before the last ended";
  std::string huge = frame(0x2, 0);
  huge[1] = static_cast<char>(0x80 | 127);
  huge.insert(2, std::string("\x80\0\0\0\0\0\0\0", 8));
  EXPECT_EQ(FrameReader(true, 1000, 1000).feed(huge), kProtocolError)
      << "a 64-bit length's top bit";
}

TEST(WebSocketFrames, TooLargeFramesAndMessagesAre1009) {
  EXPECT_EQ(FrameReader(true, 1000, 5000).feed(frame(0x2, 1001)), kTooBig);
  FrameReader r(true, 1000, 2500);
  EXPECT_EQ(r.feed(frame(0x2, 1000, false)), 0);
  EXPECT_EQ(r.feed(frame(0x0, 1000, false)), 0);
  EXPECT_EQ(r.feed(frame(0x0, 501)), kTooBig);
  EXPECT_EQ(r.feed(frame(0x1, 1)), kTooBig) << "once failed, always";
}

TEST(WebSocketFrames, CloseFramesCarryTheirCode) {
  EXPECT_EQ(close_frame(1009, false), std::string("\x88\x02\x03\xf1", 4));
  // Masked: the key, then the code XOR the key's first two bytes.
  EXPECT_EQ(close_frame(1001, true, 0x01020304),
            std::string("\x88\x82\x01\x02\x03\x04\x02\xeb", 8));
}

}  // namespace
}  // namespace gatehouse::websocket
