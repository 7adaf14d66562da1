#include "http/chunked.h"

#include <algorithm>

#include "http/parser.h"

namespace gatehouse::http {
namespace {
int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
// Characters allowed in chunk extensions and trailer lines: visible ASCII, SP, HTAB, obs-text.
bool line_char(unsigned char c) { return (c >= 0x20 && c != 0x7f) || c == '\t'; }
}  // namespace

ChunkedDecoder::Result ChunkedDecoder::feed(std::string_view in,
                                            std::vector<std::string_view>* data) {
  Result r;
  size_t i = 0;
  auto error = [&] {
    r.consumed = i;
    r.error = true;
    return r;
  };
  while (i < in.size() && state_ != State::kDone) {
    unsigned char c = static_cast<unsigned char>(in[i]);
    switch (state_) {
      case State::kSize: {
        int h = hex_value(c);
        if (h >= 0) {
          // 15 hex digits = 60 bits: no overflow, and far beyond any real body.
          if (++size_digits_ > 15) return error();
          remaining_ = remaining_ * 16 + static_cast<uint64_t>(h);
        } else if (size_digits_ == 0) {
          return error();
        } else if (c == ';' || c == ' ' || c == '\t') {
          state_ = State::kExt;
        } else if (c == '\r') {
          state_ = State::kSizeLf;
        } else {
          return error();
        }
        ++i;
        break;
      }
      case State::kExt:
        if (c == '\r')
          state_ = State::kSizeLf;
        else if (!line_char(c) || ++line_ > max_line_)
          return error();
        ++i;
        break;
      case State::kSizeLf:
        if (c != '\n') return error();
        ++i;
        line_ = 0;
        size_digits_ = 0;
        state_ = remaining_ == 0 ? State::kTrailerStart : State::kData;
        break;
      case State::kData: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size() - i));
        if (data) data->push_back(in.substr(i, n));
        i += n;
        remaining_ -= n;
        payload_ += n;
        if (remaining_ == 0) state_ = State::kDataCr;
        break;
      }
      case State::kDataCr:
        if (c != '\r') return error();
        ++i;
        state_ = State::kDataLf;
        break;
      case State::kDataLf:
        if (c != '\n') return error();
        ++i;
        state_ = State::kSize;
        break;
      case State::kTrailerStart:
        if (c == '\r') {
          state_ = State::kEndLf;
        } else if (is_tchar(c)) {
          state_ = State::kTrailer;
          line_ = 1;
        } else {
          return error();
        }
        ++i;
        break;
      case State::kTrailer:
        if (c == '\r')
          state_ = State::kTrailerLf;
        else if (!line_char(c) || ++line_ > max_line_)
          return error();
        ++i;
        break;
      case State::kTrailerLf:
        if (c != '\n') return error();
        ++i;
        state_ = State::kTrailerStart;
        break;
      case State::kEndLf:
        if (c != '\n') return error();
        ++i;
        state_ = State::kDone;
        break;
      case State::kDone:
        break;
    }
  }
  r.consumed = i;
  r.done = state_ == State::kDone;
  return r;
}

}  // namespace gatehouse::http
