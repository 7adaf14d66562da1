#include "filters/cache/status.h"

#include <cstring>

#include "filters/cache/scratch.h"

namespace gatehouse::filters::cache {

namespace {

// The last text a thread wrote, and what it said: most responses of a route say the same (a miss
// stored for the route's ttl; a hit, whose ttl changes once a second), so the text is reused.
struct Last {
  bool matches(std::string_view c, const CacheStatus& s) const {
    return written && s.hit == status.hit && s.fwd_status == status.fwd_status &&
           s.ttl == status.ttl && s.stored == status.stored && s.collapsed == status.collapsed &&
           same(s.fwd, fwd) && same(s.detail, detail) && same(c, cache);
  }
  // Sizes first, then the bytes (string_view's compare() is a call of its own, for an order this
  // does not need).
  static bool same(std::string_view a, const std::string& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
  }
  void remember(std::string_view c, const CacheStatus& s, const std::string& t) {
    written = true;
    status = s;
    cache.assign(c);
    fwd.assign(s.fwd);
    detail.assign(s.detail);
    text = t;
  }
  bool written = false;
  CacheStatus status;  // its views are not read: `fwd` and `detail` hold their bytes
  std::string cache, fwd, detail, text;
};

std::string format(std::string_view cache, const CacheStatus& s);

}  // namespace

std::string format_cache_status(std::string_view cache, const CacheStatus& s) {
  thread_local Last last;
  if (last.matches(cache, s)) return last.text;
  std::string text = format(cache, s);
  last.remember(cache, s, text);
  return text;
}

namespace {

std::string format(std::string_view cache, const CacheStatus& s) {
  // Parameters in RFC 9211's order; a true boolean is the bare key (RFC 8941 3.1.2). Written on
  // the stack, then copied once, exactly (every response of a cached route carries one).
  constexpr size_t kFixed = 128;  // the parameters' keys and numbers
  Scratch<384> out(cache.size() + s.fwd.size() + s.detail.size() + kFixed);
  out.put(cache);
  if (s.hit) out.put("; hit");
  if (!s.fwd.empty()) {
    out.put("; fwd=");
    out.put(s.fwd);
  }
  if (s.fwd_status) {
    out.put("; fwd-status=");
    out.put_number(s.fwd_status);
  }
  if (s.ttl) {
    out.put("; ttl=");
    out.put_number(*s.ttl);
  }
  if (s.stored) out.put("; stored");
  if (s.collapsed) out.put("; collapsed");
  if (!s.detail.empty()) {
    out.put("; detail=");
    out.put(s.detail);
  }
  return std::string(out.view());
}

}  // namespace

}  // namespace gatehouse::filters::cache
