// The Cache-Status response field (RFC 9211): how this cache handled the request, one list member
// named after the cache, e.g. `gatehouse; hit; ttl=376` or `gatehouse; fwd=uri-miss; stored`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gatehouse::filters::cache {

struct CacheStatus {
  bool hit = false;            // served from the cache without going forward
  std::string_view fwd;        // why it went forward (RFC 9211 2.2): uri-miss, vary-miss, miss,
                               // request, stale, bypass; empty for a hit
  int fwd_status = 0;          // the status the next hop sent (a 304 for a revalidation), 0: none
  std::optional<int64_t> ttl;  // seconds of freshness left (negative: stale by that much)
  bool stored = false;         // the response was stored
  bool collapsed = false;      // the request waited for another one's response (coalescing)
  std::string_view detail;     // a token, e.g. why a response was not stored
};

std::string format_cache_status(std::string_view cache, const CacheStatus& s);

}  // namespace gatehouse::filters::cache
