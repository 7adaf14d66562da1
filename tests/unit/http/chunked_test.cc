#include "http/chunked.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::http {
namespace {

std::string concat(const std::vector<std::string_view>& spans) {
  std::string s;
  for (auto v : spans) s.append(v);
  return s;
}

// Feeds `body` in one call and returns the result; the payload goes to *payload.
ChunkedDecoder::Result feed_all(std::string_view body, std::string* payload = nullptr,
                                ChunkedDecoder* dec = nullptr) {
  ChunkedDecoder local;
  if (!dec) dec = &local;
  std::vector<std::string_view> spans;
  auto r = dec->feed(body, &spans);
  if (payload) *payload = concat(spans);
  return r;
}

// Feeds `body` one byte at a time; stops at the first error or when done.
struct ByteResult {
  bool done = false;
  bool error = false;
  size_t consumed = 0;
  std::string payload;
  uint64_t payload_bytes = 0;
};
ByteResult feed_bytes(std::string_view body) {
  ChunkedDecoder dec;
  ByteResult out;
  for (size_t i = 0; i < body.size(); ++i) {
    std::vector<std::string_view> spans;
    auto r = dec.feed(body.substr(i, 1), &spans);
    out.payload += concat(spans);
    out.consumed += r.consumed;
    if (r.error) {
      out.error = true;
      break;
    }
    if (r.done) {
      out.done = true;
      break;
    }
  }
  out.payload_bytes = dec.payload_bytes();
  return out;
}

constexpr std::string_view kBody = "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";

TEST(ChunkedTest, ValidBodyInOnePiece) {
  ChunkedDecoder dec;
  std::string payload;
  auto r = feed_all(kBody, &payload, &dec);
  EXPECT_FALSE(r.error);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.consumed, kBody.size());
  EXPECT_EQ(payload, "hello, world");
  EXPECT_EQ(dec.payload_bytes(), 12u);
}

TEST(ChunkedTest, DataSpansPointIntoTheInput) {
  ChunkedDecoder dec;
  std::vector<std::string_view> spans;
  auto r = dec.feed(kBody, &spans);
  ASSERT_TRUE(r.done);
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0], "hello");
  EXPECT_EQ(spans[0].data(), kBody.data() + 3);
  EXPECT_EQ(spans[1], ", world");
}

TEST(ChunkedTest, ValidBodyByteByByte) {
  auto r = feed_bytes(kBody);
  EXPECT_FALSE(r.error);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.consumed, kBody.size());
  EXPECT_EQ(r.payload, "hello, world");
  EXPECT_EQ(r.payload_bytes, 12u);
}

TEST(ChunkedTest, SplitAtEveryPosition) {
  for (size_t cut = 0; cut <= kBody.size(); ++cut) {
    ChunkedDecoder dec;
    std::vector<std::string_view> spans;
    auto a = dec.feed(kBody.substr(0, cut), &spans);
    ASSERT_FALSE(a.error) << cut;
    ASSERT_EQ(a.consumed, cut) << cut;
    EXPECT_EQ(a.done, cut == kBody.size()) << cut;
    auto b = dec.feed(kBody.substr(cut), &spans);
    ASSERT_FALSE(b.error) << cut;
    EXPECT_TRUE(b.done) << cut;
    EXPECT_EQ(a.consumed + b.consumed, kBody.size()) << cut;
    EXPECT_EQ(concat(spans), "hello, world") << cut;
  }
}

TEST(ChunkedTest, WorksWithoutDataVector) {
  ChunkedDecoder dec;
  auto r = dec.feed(kBody);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(dec.payload_bytes(), 12u);
}

TEST(ChunkedTest, HexSizesAnyCase) {
  std::string body = "a\r\n0123456789\r\nB\r\nabcdefghijk\r\n0\r\n\r\n";
  std::string payload;
  auto r = feed_all(body, &payload);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(payload, "0123456789abcdefghijk");
  // Leading zeros are fine up to 15 digits.
  r = feed_all("000000000000003\r\nabc\r\n0\r\n\r\n", &payload);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(payload, "abc");
}

TEST(ChunkedTest, EmptyBody) {
  auto r = feed_all("0\r\n\r\n");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.consumed, 5u);
}

TEST(ChunkedTest, ExtensionsAreAccepted) {
  std::string body = "5;name=value\r\nhello\r\n3 ; a=\"q s\"\r\nabc\r\n0;last\r\n\r\n";
  std::string payload;
  auto r = feed_all(body, &payload);
  EXPECT_FALSE(r.error);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(payload, "helloabc");
  EXPECT_EQ(r.consumed, body.size());
}

TEST(ChunkedTest, TrailersAreAccepted) {
  std::string body = "5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n";
  ChunkedDecoder dec;
  std::string payload;
  auto r = feed_all(body, &payload, &dec);
  EXPECT_FALSE(r.error);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.consumed, body.size());
  EXPECT_EQ(payload, "hello");  // trailers are not payload
  EXPECT_EQ(dec.payload_bytes(), 5u);

  auto b = feed_bytes(body);
  EXPECT_TRUE(b.done);
  EXPECT_EQ(b.consumed, body.size());
}

TEST(ChunkedTest, NotDoneUntilTheFinalCrlf) {
  ChunkedDecoder dec;
  auto r = dec.feed("5\r\nhello\r\n0\r\nX-T: 1\r\n");
  EXPECT_FALSE(r.done);
  EXPECT_FALSE(r.error);
  r = dec.feed("\r");
  EXPECT_FALSE(r.done);
  r = dec.feed("\n");
  EXPECT_TRUE(r.done);
}

TEST(ChunkedTest, RejectsNonHexSize) {
  EXPECT_TRUE(feed_all("g\r\nhello\r\n0\r\n\r\n").error);
  EXPECT_TRUE(feed_all("5x\r\nhello\r\n0\r\n\r\n").error);
  EXPECT_TRUE(feed_all("-5\r\nhello\r\n0\r\n\r\n").error);
  EXPECT_TRUE(feed_all("0x5\r\nhello\r\n0\r\n\r\n").error);
  EXPECT_TRUE(feed_all("\r\n").error);
  EXPECT_TRUE(feed_all(";ext\r\n").error);
  EXPECT_TRUE(feed_bytes("5z\r\nhello\r\n0\r\n\r\n").error);
}

TEST(ChunkedTest, RejectsMissingCrlfAfterData) {
  EXPECT_TRUE(feed_all("5\r\nhelloX\r\n0\r\n\r\n").error);
  EXPECT_TRUE(feed_all("5\r\nhello0\r\n\r\n").error);
  EXPECT_TRUE(feed_all("5\r\nhello\rX0\r\n\r\n").error);
  EXPECT_TRUE(feed_all("5\r\nhello\n0\r\n\r\n").error);
  EXPECT_TRUE(feed_bytes("5\r\nhelloXX\r\n0\r\n\r\n").error);
}

TEST(ChunkedTest, RejectsOverlongSize) {
  // 16 hex digits could overflow 64 bits once multiplied; refuse them even with leading zeros.
  EXPECT_TRUE(feed_all("ffffffffffffffff\r\n").error);
  EXPECT_TRUE(feed_all("10000000000000000\r\n").error);
  EXPECT_TRUE(feed_all("0000000000000001\r\nx\r\n0\r\n\r\n").error);
  EXPECT_TRUE(feed_bytes("ffffffffffffffff\r\n").error);
  // 15 digits is accepted as a (huge) size: not done, not an error.
  auto r = feed_all("fffffffffffffff\r\n");
  EXPECT_FALSE(r.error);
  EXPECT_FALSE(r.done);
}

TEST(ChunkedTest, RejectsControlCharInExtension) {
  EXPECT_TRUE(feed_all("5;a=\x01\r\nhello\r\n0\r\n\r\n").error);
  EXPECT_TRUE(feed_all("5;a\x7f\r\nhello\r\n0\r\n\r\n").error);
  EXPECT_TRUE(feed_all(std::string("5;a") + '\0' + "b\r\nhello\r\n0\r\n\r\n").error);
}

TEST(ChunkedTest, RejectsControlCharInTrailer) {
  EXPECT_TRUE(feed_all("0\r\nX-T: a\x01\r\n\r\n").error);
  EXPECT_TRUE(feed_all("0\r\n: no-name\r\n\r\n").error);
  EXPECT_TRUE(feed_all("0\r\n x: folded\r\n\r\n").error);
}

TEST(ChunkedTest, RejectsBareLf) {
  EXPECT_TRUE(feed_all("5\nhello\r\n0\r\n\r\n").error);
  EXPECT_TRUE(feed_all("5;ext\nhello\r\n0\r\n\r\n").error);
  EXPECT_TRUE(feed_all("5\r\nhello\r\n0\n\r\n").error);
  EXPECT_TRUE(feed_all("5\r\nhello\r\n0\r\n\n").error);
  EXPECT_TRUE(feed_all("0\r\nX-T: 1\n\r\n").error);
  EXPECT_TRUE(feed_all("5\r\rhello\r\n0\r\n\r\n").error);
}

TEST(ChunkedTest, ErrorReportsWhereItStopped) {
  auto r = feed_all("5\r\nhelloX");
  EXPECT_TRUE(r.error);
  EXPECT_EQ(r.consumed, 8u);  // "5\r\nhello" was fine, 'X' was not
}

TEST(ChunkedTest, ConsumedStopsAtTheEndOfTheBody) {
  std::string next = "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
  std::string input = std::string(kBody) + next;
  ChunkedDecoder dec;
  std::string payload;
  auto r = feed_all(input, &payload, &dec);
  EXPECT_FALSE(r.error);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.consumed, kBody.size());
  EXPECT_EQ(input.substr(r.consumed), next);
  EXPECT_EQ(payload, "hello, world");

  // Once done, further input is not consumed.
  auto again = dec.feed(next);
  EXPECT_TRUE(again.done);
  EXPECT_EQ(again.consumed, 0u);
}

TEST(ChunkedTest, ConsumedStopsAtTheEndWithTrailers) {
  std::string body = "3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n";
  std::string input = body + "POST / HTTP/1.1\r\n";
  auto r = feed_all(input);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.consumed, body.size());
}

TEST(ChunkedTest, ResetStartsAFreshBody) {
  ChunkedDecoder dec;
  ASSERT_TRUE(dec.feed(kBody).done);
  dec.reset();
  EXPECT_EQ(dec.payload_bytes(), 0u);
  auto r = dec.feed("2\r\nok\r\n0\r\n\r\n");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(dec.payload_bytes(), 2u);
}

TEST(ChunkedTest, LongExtensionIsRefused) {
  ChunkedDecoder dec(16);
  EXPECT_TRUE(dec.feed("1;" + std::string(32, 'a') + "\r\nx\r\n0\r\n\r\n").error);
  ChunkedDecoder ok(16);
  EXPECT_TRUE(ok.feed("1;" + std::string(8, 'a') + "\r\nx\r\n0\r\n\r\n").done);
}

}  // namespace
TEST(ChunkedTrailersTest, KeptWhenAskedAcrossFeeds) {
  ChunkedDecoder dec;
  dec.keep_trailers(256);
  std::string_view body = "3\r\nabc\r\n0\r\nX-Checksum: 12\r\nX-Other:  two \r\n\r\n";
  // one byte at a time: the kept section cannot depend on how the bytes arrive
  for (size_t i = 0; i < body.size(); ++i) {
    auto r = dec.feed(body.substr(i, 1));
    ASSERT_FALSE(r.error);
    EXPECT_EQ(r.done, i + 1 == body.size());
  }
  EXPECT_EQ(dec.trailers(), "X-Checksum: 12\nX-Other:  two \n");
  HeaderList fields;
  parse_trailer_fields(dec.trailers(), &fields);
  ASSERT_EQ(fields.size(), 2u);
  EXPECT_EQ(fields[0], (std::pair<std::string, std::string>{"X-Checksum", "12"}));
  EXPECT_EQ(fields[1], (std::pair<std::string, std::string>{"X-Other", "two"}));
}

TEST(ChunkedTrailersTest, NotKeptByDefault) {
  ChunkedDecoder dec;
  auto r = feed_all("0\r\nX-A: 1\r\n\r\n", nullptr, &dec);
  EXPECT_TRUE(r.done);
  EXPECT_TRUE(dec.trailers().empty());
}

TEST(ChunkedTrailersTest, ASectionOverTheLimitIsAnError) {
  ChunkedDecoder dec;
  dec.keep_trailers(8);
  auto r = feed_all("0\r\nX-Long: 123456\r\n\r\n", nullptr, &dec);
  EXPECT_TRUE(r.error);
}

TEST(ChunkedTrailersTest, FieldsASenderMustNotTrailAreDropped) {
  HeaderList fields;
  parse_trailer_fields(
      "Content-Length: 5\nTransfer-Encoding: chunked\nHost: x\nSet-Cookie: a=b\nnot a field\n"
      "Bad Name: 1\nServer-Timing: db;dur=53\n",
      &fields);
  ASSERT_EQ(fields.size(), 1u);
  EXPECT_EQ(fields[0].first, "Server-Timing");
}

TEST(AppendChunkTest, FramesPiecesTheLastChunkAndTrailers) {
  std::string out;
  append_chunk("hello world, hello world", false, nullptr, &out);
  EXPECT_EQ(out, "18\r\nhello world, hello world\r\n");
  out.clear();
  append_chunk("", false, nullptr, &out);
  EXPECT_EQ(out, "") << "an empty piece is no chunk: a zero-size one would end the body";
  HeaderList trailers{{"X-Sum", "7"}};
  append_chunk("!", true, &trailers, &out);
  EXPECT_EQ(out, "1\r\n!\r\n0\r\nX-Sum: 7\r\n\r\n");
  // what it frames, the decoder reads back
  ChunkedDecoder dec;
  dec.keep_trailers(64);
  std::string payload;
  auto r = feed_all(out, &payload, &dec);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(payload, "!");
  EXPECT_EQ(dec.trailers(), "X-Sum: 7\n");
}

}  // namespace gatehouse::http
