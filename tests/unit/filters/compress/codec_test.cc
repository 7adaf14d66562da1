#include "filters/compress/codec.h"

#include <brotli/decode.h>
#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <random>

namespace gatehouse::filters::compress {
namespace {

std::string gunzip(const std::string& in) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string out(64 << 20, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  inflateEnd(&z);
  return out;
}
std::string unbrotli(const std::string& in) {
  std::string out(64 << 20, '\0');
  size_t size = out.size();
  EXPECT_EQ(BrotliDecoderDecompress(in.size(), reinterpret_cast<const uint8_t*>(in.data()), &size,
                                    reinterpret_cast<uint8_t*>(out.data())),
            BROTLI_DECODER_RESULT_SUCCESS);
  out.resize(size);
  return out;
}
std::string unzstd(const std::string& in) {
  std::string out(64 << 20, '\0');
  size_t n = ZSTD_decompress(out.data(), out.size(), in.data(), in.size());
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(ZSTD_isError(n) ? 0 : n);
  return out;
}
std::string decode(Coding c, const std::string& in) {
  switch (c) {
    case Coding::kGzip:
      return gunzip(in);
    case Coding::kBrotli:
      return unbrotli(in);
    case Coding::kZstd:
      return unzstd(in);
  }
  return {};
}

TEST(CompressCodec, EachCodingStreamsPieceByPieceAndDecodesToTheInput) {
  // Text that compresses, and random bytes that do not (the output outgrows each 16 KiB step).
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "{\"id\":" + std::to_string(i) + ",\"name\":\"item\"},";
  std::mt19937 rng(7);
  std::string noise(300 * 1024, '\0');
  for (auto& ch : noise) ch = static_cast<char>(rng());
  for (Coding c : {Coding::kGzip, Coding::kBrotli, Coding::kZstd}) {
    for (const std::string* input : {&text, &noise}) {
      auto e = make_encoder(c, c == Coding::kBrotli ? 4 : c == Coding::kGzip ? 6 : 3);
      std::string out;
      for (size_t at = 0; at < input->size(); at += 7000)
        ASSERT_TRUE(e->write(std::string_view(*input).substr(at, 7000), false, &out));
      ASSERT_TRUE(e->write({}, true, &out));
      EXPECT_EQ(decode(c, out), *input) << name_of(c);
      if (input == &text) {
        EXPECT_LT(out.size(), input->size() / 5) << name_of(c);
      }
    }
  }
}

TEST(CompressCodec, AnEmptyBodyIsAValidEmptyStream) {
  for (Coding c : {Coding::kGzip, Coding::kBrotli, Coding::kZstd}) {
    auto e = make_encoder(c, 1);
    std::string out;
    ASSERT_TRUE(e->write({}, true, &out));
    EXPECT_FALSE(out.empty()) << name_of(c);
    EXPECT_EQ(decode(c, out), "") << name_of(c);
  }
}

TEST(CompressCodec, ChoosesByQValueThenByTheServersOrder) {
  const std::vector<Coding> offered{Coding::kZstd, Coding::kBrotli, Coding::kGzip};
  auto pick = [&](std::vector<std::string_view> lines) { return choose(lines, offered); };
  EXPECT_EQ(pick({}), std::nullopt);  // no Accept-Encoding: identity
  EXPECT_EQ(pick({"gzip"}), Coding::kGzip);
  EXPECT_EQ(pick({"gzip, deflate, br, zstd"}), Coding::kZstd);  // a tie: the server's order
  EXPECT_EQ(pick({"gzip;q=1.0, br;q=0.8"}), Coding::kGzip);
  EXPECT_EQ(pick({"br;q=0.5", "gzip;q=0.9"}), Coding::kGzip);  // field lines are one list
  EXPECT_EQ(pick({"GZIP"}), Coding::kGzip);                    // codings are case-insensitive
  EXPECT_EQ(pick({"gzip;q=0"}), std::nullopt);
  EXPECT_EQ(pick({"*"}), Coding::kZstd);
  EXPECT_EQ(pick({"*;q=0.1, br;q=0.5"}), Coding::kBrotli);
  EXPECT_EQ(pick({"*, zstd;q=0"}), Coding::kBrotli);
  EXPECT_EQ(pick({"identity"}), std::nullopt);
  EXPECT_EQ(pick({"deflate"}), std::nullopt);
  EXPECT_EQ(pick({"gzip;q=2"}), std::nullopt);  // malformed: says nothing
  EXPECT_EQ(pick({"gzip;q=0.0001"}), std::nullopt);
  EXPECT_EQ(pick({"gzip ; q=0.5 , , br;q=0.4"}), Coding::kGzip);
  EXPECT_EQ(choose({"gzip, br"}, {Coding::kBrotli, Coding::kGzip}), Coding::kBrotli);
}

}  // namespace
}  // namespace gatehouse::filters::compress
