// Incremental, strict decoder of the chunked transfer coding (RFC 9112 section 7.1). The proxy
// forwards chunked bodies byte for byte once validated (no re-encoding, no copy); it uses the
// data spans only when it must remove the coding (an HTTP/1.0 client, a filter that reads the
// body), and then keeps the trailer section too when asked (keep_trailers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "http/message.h"

namespace gatehouse::http {

class ChunkedDecoder {
 public:
  struct Result {
    size_t consumed = 0;  // bytes of input that belong to the body (framing included)
    bool done = false;    // the last chunk and trailer section have been read
    bool error = false;   // malformed framing: the message must be refused
  };

  explicit ChunkedDecoder(size_t max_line_bytes = 4096) : max_line_(max_line_bytes) {}
  void reset() { *this = ChunkedDecoder(max_line_); }  // keeps no trailers after it

  // Consumes as much of `in` as belongs to the body. When `data` is not null, appends views of the
  // chunk payloads found in `in`.
  Result feed(std::string_view in, std::vector<std::string_view>* data = nullptr);

  uint64_t payload_bytes() const { return payload_; }

  // Keeps the trailer section's lines ("name: value\n" each, as received) for trailers(), up to
  // `max_bytes` in all (more is a framing error). Until the next reset().
  void keep_trailers(size_t max_bytes) { max_trailers_ = max_bytes; }
  std::string_view trailers() const { return trailers_; }

 private:
  enum class State {
    kSize,
    kExt,
    kSizeLf,
    kData,
    kDataCr,
    kDataLf,
    kTrailerStart,
    kTrailer,
    kTrailerLf,
    kEndLf,
    kDone
  };
  State state_ = State::kSize;
  uint64_t remaining_ = 0;
  uint64_t payload_ = 0;
  size_t size_digits_ = 0;
  size_t line_ = 0;  // bytes in the current size/extension or trailer line
  size_t max_line_;
  bool keep_trailer_byte(char c);
  size_t max_trailers_ = 0;  // 0: trailers are validated and dropped
  std::string trailers_;
};

// The fields of a kept trailer section (ChunkedDecoder::trailers), without those a sender must not
// put in trailers (RFC 9110 6.5.1: framing, routing and the like). Lines that are not a field
// are dropped, as a recipient may (RFC 9110 6.5.2).
void parse_trailer_fields(std::string_view section, HeaderList* out);

// Appends `data` to *out as one chunk (nothing when empty), then, when `last`, the last chunk with
// `trailers` (none when null) and the end of the body (RFC 9112 7.1).
void append_chunk(std::string_view data, bool last, const HeaderList* trailers, std::string* out);

}  // namespace gatehouse::http
