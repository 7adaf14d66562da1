#include "filters/cache/status.h"

#include <charconv>
#include <cstring>

namespace gatehouse::filters::cache {

std::string format_cache_status(std::string_view cache, const CacheStatus& s) {
  // Parameters in RFC 9211's order; a true boolean is the bare key (RFC 8941 3.1.2). Written into
  // room sized once (every response of a cached route carries one), then cut to what was written.
  constexpr size_t kNumber = 20;  // an int64_t's digits and sign
  std::string out(cache.size() + s.fwd.size() + s.detail.size() + 2 * kNumber + 64, '\0');
  char* at = out.data();
  auto put = [&at](std::string_view text) {
    std::memcpy(at, text.data(), text.size());
    at += text.size();
  };
  auto number = [&at](int64_t n) { at = std::to_chars(at, at + kNumber, n).ptr; };
  put(cache);
  if (s.hit) put("; hit");
  if (!s.fwd.empty()) {
    put("; fwd=");
    put(s.fwd);
  }
  if (s.fwd_status) {
    put("; fwd-status=");
    number(s.fwd_status);
  }
  if (s.ttl) {
    put("; ttl=");
    number(*s.ttl);
  }
  if (s.stored) put("; stored");
  if (s.collapsed) put("; collapsed");
  if (!s.detail.empty()) {
    put("; detail=");
    put(s.detail);
  }
  out.resize(static_cast<size_t>(at - out.data()));
  return out;
}

}  // namespace gatehouse::filters::cache
