#include "filters/cache/status.h"

#include <charconv>

namespace gatehouse::filters::cache {

std::string format_cache_status(std::string_view cache, const CacheStatus& s) {
  // Parameters in RFC 9211's order; a true boolean is the bare key (RFC 8941 3.1.2).
  std::string out;
  out.reserve(cache.size() + 64);
  out += cache;
  auto number = [&out](int64_t n) {
    char digits[24];
    out.append(digits, std::to_chars(digits, digits + sizeof digits, n).ptr);
  };
  if (s.hit) out += "; hit";
  if (!s.fwd.empty()) out.append("; fwd=").append(s.fwd);
  if (s.fwd_status) {
    out += "; fwd-status=";
    number(s.fwd_status);
  }
  if (s.ttl) {
    out += "; ttl=";
    number(*s.ttl);
  }
  if (s.stored) out += "; stored";
  if (s.collapsed) out += "; collapsed";
  if (!s.detail.empty()) out.append("; detail=").append(s.detail);
  return out;
}

}  // namespace gatehouse::filters::cache
