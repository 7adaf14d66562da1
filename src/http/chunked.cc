#include "http/chunked.h"

#include <algorithm>
#include <charconv>

#include "http/parser.h"

namespace gatehouse::http {

using namespace std::string_view_literals;
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
          if (max_trailers_ && !keep_trailer_byte(c)) return error();
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
        else if (max_trailers_ && !keep_trailer_byte(c))
          return error();
        ++i;
        break;
      case State::kTrailerLf:
        if (c != '\n') return error();
        if (max_trailers_ && !keep_trailer_byte('\n')) return error();
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

void append_chunk(std::string_view data, bool last, const http::HeaderList* trailers,
                  std::string* out) {
  if (!data.empty()) {
    char size[16];
    auto end = std::to_chars(size, size + sizeof size, data.size(), 16).ptr;
    out->append(size, end).append("\r\n"sv).append(data).append("\r\n"sv);
  }
  if (!last) return;
  out->append("0\r\n"sv);
  if (trailers) {
    for (const auto& [name, value] : *trailers)
      out->append(name).append(": "sv).append(value).append("\r\n"sv);
  }
  out->append("\r\n"sv);
}

bool ChunkedDecoder::keep_trailer_byte(char c) {
  if (trailers_.size() >= max_trailers_) return false;
  trailers_.push_back(c);
  return true;
}

void parse_trailer_fields(std::string_view section, HeaderList* out) {
  // Fields that describe framing, routing, authentication or the message's own handling.
  static constexpr std::string_view kForbidden[] = {"content-length",
                                                    "transfer-encoding",
                                                    "host",
                                                    "connection",
                                                    "keep-alive",
                                                    "te",
                                                    "trailer",
                                                    "upgrade",
                                                    "content-encoding",
                                                    "content-type",
                                                    "content-range",
                                                    "authorization",
                                                    "set-cookie",
                                                    "cache-control",
                                                    "expires",
                                                    "age",
                                                    "date",
                                                    "location",
                                                    "retry-after",
                                                    "vary",
                                                    "www-authenticate",
                                                    "proxy-authenticate",
                                                    "proxy-authorization",
                                                    "max-forwards"};
  while (!section.empty()) {
    size_t nl = section.find('\n');
    std::string_view line = section.substr(0, nl);
    section.remove_prefix(nl == std::string_view::npos ? section.size() : nl + 1);
    size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) continue;
    std::string_view name = line.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), [](unsigned char c) { return is_tchar(c); }))
      continue;
    if (std::any_of(std::begin(kForbidden), std::end(kForbidden),
                    [&](std::string_view f) { return iequals(f, name); }))
      continue;
    out->emplace_back(std::string(name), std::string(trim_ows(line.substr(colon + 1))));
  }
}

}  // namespace gatehouse::http
