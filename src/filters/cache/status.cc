#include "filters/cache/status.h"

namespace gatehouse::filters::cache {

std::string format_cache_status(std::string_view cache, const CacheStatus& s) {
  // Parameters in RFC 9211's order; a true boolean is the bare key (RFC 8941 3.1.2).
  std::string out(cache);
  if (s.hit) out += "; hit";
  if (!s.fwd.empty()) out.append("; fwd=").append(s.fwd);
  if (s.fwd_status) out.append("; fwd-status=").append(std::to_string(s.fwd_status));
  if (s.ttl) out.append("; ttl=").append(std::to_string(*s.ttl));
  if (s.stored) out += "; stored";
  if (s.collapsed) out += "; collapsed";
  if (!s.detail.empty()) out.append("; detail=").append(s.detail);
  return out;
}

}  // namespace gatehouse::filters::cache
