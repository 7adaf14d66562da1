#include "http/range.h"

#include <gtest/gtest.h>

namespace gatehouse::http {
namespace {

using Ranges = std::vector<ByteRange>;

Ranges ranges(std::string_view value, uint64_t length = 10000) {
  Ranges out;
  EXPECT_EQ(parse_range(value, length, &out), RangeVerdict::kSatisfiable) << value;
  return out;
}
RangeVerdict verdict(std::string_view value, uint64_t length = 10000) {
  Ranges out;
  return parse_range(value, length, &out);
}

// The examples of RFC 9110 14.1.2, for a representation of 10000 bytes.
TEST(Range, ExamplesOfRfc9110) {
  EXPECT_EQ(ranges("bytes=0-499"), (Ranges{{0, 499}}));
  EXPECT_EQ(ranges("bytes=500-999"), (Ranges{{500, 999}}));
  EXPECT_EQ(ranges("bytes=-500"), (Ranges{{9500, 9999}}));
  EXPECT_EQ(ranges("bytes=9500-"), (Ranges{{9500, 9999}}));
  EXPECT_EQ(ranges("bytes=0-0,-1"), (Ranges{{0, 0}, {9999, 9999}}));
  EXPECT_EQ(ranges("bytes= 0-999, 4500-5499, -1000"),
            (Ranges{{0, 999}, {4500, 5499}, {9000, 9999}}));
  EXPECT_EQ(ranges("bytes=500-600,601-999"), (Ranges{{500, 999}})) << "adjacent: merged";
  EXPECT_EQ(ranges("bytes=500-700,601-999"), (Ranges{{500, 999}})) << "overlapping: merged";
}

TEST(Range, ClippingAndOrder) {
  EXPECT_EQ(ranges("bytes=9000-20000"), (Ranges{{9000, 9999}}));
  EXPECT_EQ(ranges("bytes=-20000"), (Ranges{{0, 9999}})) << "a suffix longer than the whole";
  EXPECT_EQ(ranges("BYTES=1-2"), (Ranges{{1, 2}})) << "the unit is case-insensitive";
  EXPECT_EQ(ranges("bytes=20-29,0-9"), (Ranges{{20, 29}, {0, 9}})) << "disjoint: as asked";
  EXPECT_EQ(ranges("bytes=20-29,0-9,5-25"), (Ranges{{0, 29}})) << "coalesced";
  EXPECT_EQ(ranges("bytes=0-9,20000-"), (Ranges{{0, 9}})) << "an unsatisfiable one is dropped";
}

TEST(Range, Unsatisfiable) {
  EXPECT_EQ(verdict("bytes=10000-"), RangeVerdict::kUnsatisfiable);
  EXPECT_EQ(verdict("bytes=-0"), RangeVerdict::kUnsatisfiable);
  EXPECT_EQ(verdict("bytes=0-5", 0), RangeVerdict::kUnsatisfiable) << "an empty representation";
  EXPECT_EQ(verdict("bytes=-5", 0), RangeVerdict::kUnsatisfiable);
}

TEST(Range, IgnoredWhenNotUnderstood) {
  EXPECT_EQ(verdict("items=0-1"), RangeVerdict::kIgnore);
  EXPECT_EQ(verdict("bytes=5-1"), RangeVerdict::kIgnore) << "last before first";
  EXPECT_EQ(verdict("bytes=abc"), RangeVerdict::kIgnore);
  EXPECT_EQ(verdict("bytes=1-x"), RangeVerdict::kIgnore);
  EXPECT_EQ(verdict("bytes=--5"), RangeVerdict::kIgnore);
  EXPECT_EQ(verdict("bytes="), RangeVerdict::kIgnore);
  EXPECT_EQ(verdict("bytes"), RangeVerdict::kIgnore);
  EXPECT_EQ(verdict("bytes=99999999999999999999-"), RangeVerdict::kIgnore) << "overflow";
  std::string many = "bytes=0-0";
  for (int i = 1; i <= 16; ++i) {  // += pieces: GCC 12 warns wrongly at "literal" + string
    many += ',';
    many += std::to_string(i * 2);
    many += '-';
    many += std::to_string(i * 2);
  }
  EXPECT_EQ(verdict(many), RangeVerdict::kIgnore) << "17 ranges";
}

TEST(IfRange, EntityTagsCompareStrongly) {
  using std::chrono::seconds;
  const std::chrono::system_clock::time_point lm{seconds(784111777)};
  EXPECT_TRUE(if_range_allows("", "\"v1\"", lm, lm)) << "no If-Range";
  EXPECT_TRUE(if_range_allows("\"v1\"", "\"v1\"", lm, lm));
  EXPECT_FALSE(if_range_allows("\"v2\"", "\"v1\"", lm, lm));
  EXPECT_FALSE(if_range_allows("W/\"v1\"", "W/\"v1\"", lm, lm)) << "weak tags never match";
  EXPECT_FALSE(if_range_allows("\"v1\"", "", lm, lm));
  // A date: equal to Last-Modified, which is strong (a second or more before Date).
  EXPECT_TRUE(if_range_allows("Sun, 06 Nov 1994 08:49:37 GMT", "", lm, lm + seconds(60)));
  EXPECT_FALSE(if_range_allows("Sun, 06 Nov 1994 08:49:37 GMT", "", lm, lm)) << "weak validator";
  EXPECT_FALSE(if_range_allows("Sun, 06 Nov 1994 08:49:38 GMT", "", lm, lm + seconds(60)));
  EXPECT_FALSE(if_range_allows("garbage", "\"v1\"", lm, lm + seconds(60)));
}

TEST(Range, ContentRangeAndMultipart) {
  EXPECT_EQ(content_range({0, 499}, 1234), "bytes 0-499/1234");
  EXPECT_EQ(unsatisfied_range(1234), "bytes */1234");
  // RFC 9110 14.6's example, shortened.
  const std::string rep = "0123456789abcdefghij";
  EXPECT_EQ(byteranges_body(rep, {{0, 3}, {15, 19}}, "text/plain", "THIS_STRING_SEPARATES"),
            "--THIS_STRING_SEPARATES\r\nContent-Type: text/plain\r\n"
            "Content-Range: bytes 0-3/20\r\n\r\n0123\r\n"
            "--THIS_STRING_SEPARATES\r\nContent-Type: text/plain\r\n"
            "Content-Range: bytes 15-19/20\r\n\r\nfghij\r\n"
            "--THIS_STRING_SEPARATES--\r\n");
  EXPECT_EQ(byteranges_body(rep, {{5, 5}}, "", "B"),
            "--B\r\nContent-Range: bytes 5-5/20\r\n\r\n5\r\n--B--\r\n");
}

}  // namespace
}  // namespace gatehouse::http
