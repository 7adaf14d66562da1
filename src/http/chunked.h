// Incremental, strict decoder of the chunked transfer coding (RFC 9112 section 7.1). The proxy
// forwards chunked bodies byte for byte once validated (no re-encoding, no copy); it uses the
// data spans only when it must remove the coding (an HTTP/1.0 client).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace gatehouse::http {

class ChunkedDecoder {
 public:
  struct Result {
    size_t consumed = 0;  // bytes of input that belong to the body (framing included)
    bool done = false;    // the last chunk and trailer section have been read
    bool error = false;   // malformed framing: the message must be refused
  };

  explicit ChunkedDecoder(size_t max_line_bytes = 4096) : max_line_(max_line_bytes) {}
  void reset() { *this = ChunkedDecoder(max_line_); }

  // Consumes as much of `in` as belongs to the body. When `data` is not null, appends views of the
  // chunk payloads found in `in`.
  Result feed(std::string_view in, std::vector<std::string_view>* data = nullptr);

  uint64_t payload_bytes() const { return payload_; }

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
};

}  // namespace gatehouse::http
