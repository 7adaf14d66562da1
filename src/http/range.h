// Byte ranges (RFC 9110 14): the Range request field against a representation of known length,
// and If-Range (13.1.5), for answering 206 or 416 from a stored complete response.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::http {

struct ByteRange {
  uint64_t first = 0, last = 0;  // inclusive, within the representation
  uint64_t size() const { return last - first + 1; }
  bool operator==(const ByteRange&) const = default;
};

enum class RangeVerdict {
  kIgnore,         // no Range to honour (absent, another unit, malformed, too many): a 200
  kSatisfiable,    // 206 with the ranges in *out
  kUnsatisfiable,  // 416, with Content-Range: bytes */length
};

// The most ranges one request may ask for: more is answered whole (14.2 lets a server ignore a
// Range that looks like an attack: many small or overlapping ranges).
constexpr size_t kMaxRanges = 16;

// The Range field's value against `length` bytes. Satisfiable ranges come out clipped to the
// representation, in the order asked, with overlapping or adjacent ones merged (so a client
// cannot make the answer larger than the representation); unsatisfiable ones are dropped.
RangeVerdict parse_range(std::string_view value, uint64_t length, std::vector<ByteRange>* out);

// If-Range (13.1.5): true when the Range may be honoured. An entity-tag must match the stored
// ETag strongly; an HTTP-date must equal the stored Last-Modified, which must be a strong
// validator (here: at least a second older than the Date sent with it, 8.8.2.2).
bool if_range_allows(std::string_view if_range, std::string_view etag,
                     std::optional<std::chrono::system_clock::time_point> last_modified,
                     std::optional<std::chrono::system_clock::time_point> date);

// Content-Range for one range of a `length`-byte representation ("bytes 0-499/1234"), and for a
// 416 ("bytes */1234"), RFC 9110 14.4.
std::string content_range(const ByteRange& r, uint64_t length);
std::string unsatisfied_range(uint64_t length);

// A 206 with several ranges (RFC 9110 14.6): the multipart/byteranges body of `ranges` of
// `representation`, each part with `content_type` (when not empty) and its Content-Range; the
// response's Content-Type is then "multipart/byteranges; boundary=" + `boundary`, a string that
// must not occur in the representation (a random one of 16+ characters).
std::string byteranges_body(std::string_view representation, const std::vector<ByteRange>& ranges,
                            std::string_view content_type, std::string_view boundary);

}  // namespace gatehouse::http
