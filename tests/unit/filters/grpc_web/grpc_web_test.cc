// filters/grpc_web: base64 both ways (RFC 4648 4 test vectors), with pieces split at every point,
// as a gRPC-Web text body arrives (decoded as a stream) and leaves (each piece encoded whole).
#include "filters/grpc_web/grpc_web.h"

#include <gtest/gtest.h>

namespace gatehouse::filters {
namespace {

std::string encode_whole(std::string_view in) {
  std::string out;
  base64_encode(in, &out);
  return out;
}

TEST(GrpcWebBase64, Rfc4648Vectors) {
  EXPECT_EQ(encode_whole(""), "");
  EXPECT_EQ(encode_whole("f"), "Zg==");
  EXPECT_EQ(encode_whole("fo"), "Zm8=");
  EXPECT_EQ(encode_whole("foo"), "Zm9v");
  EXPECT_EQ(encode_whole("foob"), "Zm9vYg==");
  EXPECT_EQ(encode_whole("fooba"), "Zm9vYmE=");
  EXPECT_EQ(encode_whole("foobar"), "Zm9vYmFy");
}

TEST(GrpcWebBase64, PiecesSplitAnywhereGiveTheSameBytes) {
  const std::string data = std::string("\0\0\0\0\x05hello\x80\0\0\0\x0fgrpc-status:0\r\n", 31);
  const std::string whole = encode_whole(data);
  // Encoded piece by piece, each padded: the chunks decode back to the same bytes.
  for (size_t cut = 0; cut <= data.size(); ++cut) {
    std::string chunks, carry, back;
    base64_encode(std::string_view(data).substr(0, cut), &chunks);
    base64_encode(std::string_view(data).substr(cut), &chunks);
    ASSERT_TRUE(base64_decode_piece(chunks, true, &carry, &back)) << cut;
    EXPECT_EQ(back, data) << cut;
  }
  for (size_t cut = 0; cut <= whole.size(); ++cut) {
    std::string carry, out;
    ASSERT_TRUE(base64_decode_piece(std::string_view(whole).substr(0, cut), false, &carry, &out));
    ASSERT_TRUE(base64_decode_piece(std::string_view(whole).substr(cut), true, &carry, &out));
    EXPECT_EQ(out, data) << cut;
  }
}

TEST(GrpcWebBase64, DecodingRefusesWhatIsNotBase64) {
  auto decodes = [](std::string_view in) {
    std::string carry, out;
    return base64_decode_piece(in, true, &carry, &out);
  };
  EXPECT_TRUE(decodes("Zg==Zm8="));   // padded piece by piece, as gRPC-Web text may be
  EXPECT_FALSE(decodes("Zg=a"));      // a character after padding
  EXPECT_FALSE(decodes("Zm9v!A=="));  // outside the alphabet
  EXPECT_FALSE(decodes("Zm9vY"));     // a group cut short at the end
  EXPECT_FALSE(decodes("=AAA"));      // padding first
}

}  // namespace
}  // namespace gatehouse::filters
