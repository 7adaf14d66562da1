#include "filters/compress/codec.h"

#include <brotli/encode.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <charconv>

#include "http/message.h"

namespace gatehouse::filters::compress {
namespace {

constexpr size_t kOutStep = 16 * 1024;

class Gzip final : public Encoder {
 public:
  explicit Gzip(int level) {
    // 15 window bits + 16: a gzip wrapper (RFC 1952), not zlib's; memLevel 8 as zlib's default.
    ok_ = deflateInit2(&z_, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK;
  }
  ~Gzip() override {
    if (ok_) deflateEnd(&z_);
  }
  bool write(std::string_view in, bool end, std::string* out) override {
    if (!ok_) return false;
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    const int flush = end ? Z_FINISH : Z_NO_FLUSH;
    while (true) {
      size_t had = out->size();
      out->resize(had + kOutStep);
      z_.next_out = reinterpret_cast<Bytef*>(out->data() + had);
      z_.avail_out = static_cast<uInt>(kOutStep);
      int r = deflate(&z_, flush);
      out->resize(had + kOutStep - z_.avail_out);
      if (r == Z_STREAM_END) return true;
      if (r != Z_OK && r != Z_BUF_ERROR) return false;
      // More to come out only while the output was filled, or while finishing.
      if (z_.avail_out != 0 && z_.avail_in == 0 && !end) return true;
    }
  }

 private:
  z_stream z_{};
  bool ok_ = false;
};

class Brotli final : public Encoder {
 public:
  explicit Brotli(int level) : s_(BrotliEncoderCreateInstance(nullptr, nullptr, nullptr)) {
    if (s_) BrotliEncoderSetParameter(s_, BROTLI_PARAM_QUALITY, static_cast<uint32_t>(level));
  }
  ~Brotli() override {
    if (s_) BrotliEncoderDestroyInstance(s_);
  }
  bool write(std::string_view in, bool end, std::string* out) override {
    if (!s_) return false;
    size_t avail_in = in.size();
    const uint8_t* next_in = reinterpret_cast<const uint8_t*>(in.data());
    const auto op = end ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_PROCESS;
    while (true) {
      size_t had = out->size();
      out->resize(had + kOutStep);
      size_t avail_out = kOutStep;
      uint8_t* next_out = reinterpret_cast<uint8_t*>(out->data() + had);
      if (!BrotliEncoderCompressStream(s_, op, &avail_in, &next_in, &avail_out, &next_out, nullptr))
        return false;
      out->resize(had + kOutStep - avail_out);
      if (end ? BrotliEncoderIsFinished(s_) : avail_in == 0 && !BrotliEncoderHasMoreOutput(s_))
        return true;
    }
  }

 private:
  BrotliEncoderState* s_;
};

class Zstd final : public Encoder {
 public:
  explicit Zstd(int level) : c_(ZSTD_createCCtx()) {
    if (c_) ZSTD_CCtx_setParameter(c_, ZSTD_c_compressionLevel, level);
  }
  ~Zstd() override { ZSTD_freeCCtx(c_); }
  bool write(std::string_view in, bool end, std::string* out) override {
    if (!c_) return false;
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    const auto mode = end ? ZSTD_e_end : ZSTD_e_continue;
    while (true) {
      size_t had = out->size();
      out->resize(had + kOutStep);
      ZSTD_outBuffer output{out->data() + had, kOutStep, 0};
      size_t left = ZSTD_compressStream2(c_, &output, &input, mode);
      out->resize(had + output.pos);
      if (ZSTD_isError(left)) return false;
      if (end ? left == 0 : input.pos == input.size) return true;
    }
  }

 private:
  ZSTD_CCtx* c_;
};

// A q-value (RFC 9110 12.4.2): "0" to "1" with up to three decimals, in thousandths; -1 when
// malformed.
int parse_q(std::string_view v) {
  if (v.empty() || v.size() > 5 || (v[0] != '0' && v[0] != '1')) return -1;
  int q = (v[0] - '0') * 1000;
  if (v.size() == 1) return q;
  if (v[1] != '.') return -1;
  int scale = 100;
  for (char c : v.substr(2)) {
    if (c < '0' || c > '9') return -1;
    q += (c - '0') * scale;
    scale /= 10;
  }
  return q > 1000 ? -1 : q;
}

}  // namespace

std::string_view name_of(Coding c) {
  switch (c) {
    case Coding::kGzip:
      return "gzip";
    case Coding::kBrotli:
      return "br";
    case Coding::kZstd:
      return "zstd";
  }
  return "";
}

std::optional<Coding> coding_named(std::string_view name) {
  for (Coding c : {Coding::kGzip, Coding::kBrotli, Coding::kZstd}) {
    if (name == name_of(c)) return c;
  }
  return std::nullopt;
}

std::unique_ptr<Encoder> make_encoder(Coding c, int level) {
  switch (c) {
    case Coding::kGzip:
      return std::make_unique<Gzip>(level);
    case Coding::kBrotli:
      return std::make_unique<Brotli>(level);
    case Coding::kZstd:
      return std::make_unique<Zstd>(level);
  }
  return nullptr;
}

std::optional<Coding> choose(const std::vector<std::string_view>& lines,
                             const std::vector<Coding>& offered) {
  if (lines.empty()) return std::nullopt;
  // The q-value each offered coding gets: its own element's, else "*"'s, else 0.
  std::vector<int> q(offered.size(), -1);
  int star = -1;
  for (std::string_view line : lines) {
    while (!line.empty()) {
      auto comma = line.find(',');
      std::string_view element = http::trim_ows(line.substr(0, comma));
      line = comma == std::string_view::npos ? std::string_view() : line.substr(comma + 1);
      if (element.empty()) continue;
      std::string_view name = http::trim_ows(element.substr(0, element.find(';')));
      int value = 1000;
      for (auto semi = element.find(';'); semi != std::string_view::npos;) {
        std::string_view param = element.substr(semi + 1);
        auto next = param.find(';');
        std::string_view p = http::trim_ows(param.substr(0, next));
        if (p.size() > 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=')
          value = parse_q(p.substr(2));
        semi = next == std::string_view::npos ? next : semi + 1 + next;
      }
      if (value < 0) continue;  // a malformed element says nothing
      if (name == "*") {
        star = value;
        continue;
      }
      for (size_t i = 0; i < offered.size(); ++i) {
        if (http::iequals(name, name_of(offered[i]))) q[i] = value;
      }
    }
  }
  std::optional<Coding> best;
  int best_q = 0;
  for (size_t i = 0; i < offered.size(); ++i) {
    int v = q[i] >= 0 ? q[i] : std::max(star, 0);
    if (v > best_q) {
      best = offered[i];
      best_q = v;
    }
  }
  return best;
}

}  // namespace gatehouse::filters::compress
