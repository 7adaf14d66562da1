// HTTP/1.x message heads as the parser sees them: views into the connection's read buffer, valid
// until that buffer is compacted or refilled. No allocation per header: the vectors keep their
// capacity from request to request on the same connection.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gatehouse::http {

// Header fields the proxy acts on, recognised once while parsing so that later passes compare an
// enum instead of strings.
enum class HeaderId : uint8_t {
  kOther,
  kHost,
  kContentLength,
  kTransferEncoding,
  kConnection,
  kKeepAlive,
  kProxyConnection,
  kTe,
  kUpgrade,
  kExpect,
  kXForwardedFor,
  kXForwardedProto,
  kXForwardedHost,
  kVia,
  kCookie,
  kConsumerIdentity,  // X-Consumer-Name, X-Consumer-Groups: set only by the gateway
  kTraceContext,      // traceparent, tracestate (W3C Trace Context)
  kB3,                // b3, X-B3-TraceId, X-B3-SpanId, X-B3-ParentSpanId, X-B3-Sampled, X-B3-Flags
};

struct Header {
  std::string_view name;   // as sent (case preserved, for forwarding)
  std::string_view value;  // without surrounding whitespace
  HeaderId id = HeaderId::kOther;
  bool hop_by_hop = false;  // set for fixed hop-by-hop fields and those named in Connection
};

// Header fields the gateway owns (added by filters, its own answers, trailers it relays).
using HeaderList = std::vector<std::pair<std::string, std::string>>;

// ASCII case-insensitive equality (field names). Inline: most calls differ in length at once.
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x != y && ((x | 0x20) != (y | 0x20) || (x | 0x20) < 'a' || (x | 0x20) > 'z')) return false;
  }
  return true;
}
// `name`, a field name (a token, RFC 9110 5.6.2), is `lower` (lower-case letters, digits and '-')
// in any case, compared eight bytes at a time. OR-ing 0x20 into a byte of a token lowers a letter
// and leaves the rest as they are: of the bytes it would turn into '-' or a digit (0x0D,
// 0x10-0x19), none is a tchar.
inline bool field_is(std::string_view name, std::string_view lower) {
  const size_t n = name.size();
  if (n != lower.size()) return false;
  const char *a = name.data(), *b = lower.data();
  auto word = [](const char* p) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
  };
  auto half = [](const char* p) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    return w;
  };
  if (n >= 8) {
    for (size_t i = 0; i + 8 < n; i += 8) {
      if ((word(a + i) | 0x2020202020202020) != word(b + i)) return false;
    }
    return (word(a + n - 8) | 0x2020202020202020) == word(b + n - 8);  // the last (overlapping)
  }
  if (n >= 4)
    return (half(a) | 0x20202020) == half(b) && (half(a + n - 4) | 0x20202020) == half(b + n - 4);
  for (size_t i = 0; i < n; ++i) {
    if ((static_cast<unsigned char>(a[i]) | 0x20) != static_cast<unsigned char>(b[i])) return false;
  }
  return true;
}
// ASCII letters lowered in place, eight bytes at a time (a cache key's host): a byte gets 0x20
// when its low seven bits are in 'A'..'Z' and its high bit is clear.
inline void lower_ascii(char* s, size_t n) {
  constexpr uint64_t kOnes = 0x0101010101010101, kHigh = 0x8080808080808080;
  auto lower8 = [](uint64_t w) {
    const uint64_t low7 = w & ~kHigh;
    const uint64_t from_a = low7 + kOnes * (0x80 - 'A');      // high bit: >= 'A'
    const uint64_t past_z = low7 + kOnes * (0x80 - 'Z' - 1);  // high bit: > 'Z'
    return w | ((from_a & ~past_z & ~w & kHigh) >> 2);
  };
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, s + i, 8);
    w = lower8(w);
    std::memcpy(s + i, &w, 8);
  }
  for (; i < n; ++i) {
    if (s[i] >= 'A' && s[i] <= 'Z') s[i] = static_cast<char>(s[i] - 'A' + 'a');
  }
}

// Without optional whitespace (spaces and tabs, RFC 9110 5.6.3) at either end.
std::string_view trim_ows(std::string_view s);

// Body framing of a message (RFC 9112 section 6).
enum class Framing : uint8_t { kNone, kContentLength, kChunked, kUntilClose };

struct MessageHead {
  int minor_version = 1;  // HTTP/1.<minor>
  std::vector<Header> headers;
  Framing framing = Framing::kNone;
  uint64_t content_length = 0;
  bool keep_alive = true;  // after Connection and version rules
  bool upgrade = false;    // Connection: upgrade with an Upgrade header
  size_t head_bytes = 0;   // bytes of the head, including the final CRLF

  // First value of a header, or empty. Case-insensitive name.
  std::string_view get(std::string_view name) const;
  void reset() {
    headers.clear();
    framing = Framing::kNone;
    content_length = 0;
    keep_alive = true;
    upgrade = false;
    head_bytes = 0;
  }
};

struct RequestHead : MessageHead {
  std::string_view method;
  std::string_view target;  // as sent
  std::string_view path;    // origin-form path (from an absolute-form target too)
  std::string_view query;   // after '?', without it; empty when absent
  std::string_view host;    // authority: from an absolute-form target, else the Host header
  bool expect_continue = false;
};

struct ResponseHead : MessageHead {
  int status = 0;
  std::string_view reason;
};

// A CORS preflight (Fetch standard): OPTIONS with Origin and Access-Control-Request-Method.
inline bool is_cors_preflight(const RequestHead& req) {
  return req.method == "OPTIONS" && !req.get("origin").empty() &&
         !req.get("access-control-request-method").empty();
}

}  // namespace gatehouse::http
