// A stored response (RFC 9111 3.1) and the two ways one is made: from a response the cache
// decided to store, and by freshening a stored one with a 304 from validation (4.3.4). Entries are
// immutable once stored and shared by every hit being written; freshening makes a new entry that
// shares the old one's body.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "filters/cache/fields.h"
#include "filters/cache/policy.h"
#include "filters/cache/pool.h"
#include "http/cache_control.h"
#include "http/message.h"

namespace gatehouse::filters::cache {

// A stored body, shared by the entries and answers that use it: room for a fixed number of bytes,
// which follow it (and its shared count) in one block of the cache's pool (new_body()). One block,
// not a string and its bytes apart: a miss makes one, and the eviction that frees it reads one
// line of it, where the bytes' block was a cold read more after the string's.
class Body {
 public:
  explicit Body(size_t capacity) : capacity_(capacity) {}
  Body(const Body&) = delete;
  Body& operator=(const Body&) = delete;

  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  const char* data() const { return room(); }
  char* data() { return room(); }
  // `bytes` at the end; the room must hold them.
  void append(std::string_view bytes) {
    if (bytes.empty()) return;  // (whose data() may be null, which memcpy must not be given)
    std::memcpy(room() + size_, bytes.data(), bytes.size());
    size_ += bytes.size();
  }
  operator std::string_view() const { return {room(), size_}; }  // NOLINT: a body is its bytes
  friend bool operator==(const Body& b, std::string_view s) { return std::string_view(b) == s; }

 private:
  // The block's bytes after this object (new_body() asked for them).
  char* room() const { return const_cast<char*>(reinterpret_cast<const char*>(this + 1)); }
  size_t size_ = 0;
  const size_t capacity_;
};
// What a body's block holds before its bytes: the shared count (two counts and a vtable pointer),
// the allocator the count keeps (its extra size), and the Body.
inline constexpr size_t kBodyHeader = 16 + sizeof(size_t) + sizeof(Body);

struct Entry {
  using Time = std::chrono::system_clock::time_point;

  int status = 200;
  // The response's fields as received, in order, without those a cache does not store or sends
  // itself: hop-by-hop fields (RFC 9111 3.1), Age (computed per hit, 5.1), and the framing
  // (Content-Length, Transfer-Encoding: a hit is framed by the stored body's length).
  Fields headers;
  std::shared_ptr<const Body> body;
  http::CacheControl cc;
  http::ResponseTimes times;
  int64_t lifetime = 0;  // the freshness lifetime, in seconds, as of when it was stored
  pool::String etag;     // the ETag field's value, for validation and conditional requests
  VarySpec vary;
  bool set_cookie = false;  // a Set-Cookie field (shared only on routes that say so)
  std::vector<std::string>
      tags;  // from the route's tag field (Surrogate-Key, Cache-Tag), for purges

  // What the entry holds, in bytes, for the store's budget: its fields, body and bookkeeping.
  size_t cost() const;
  // The first stored value of a field (case-insensitive name), or empty.
  std::string_view get(std::string_view name) const;
};

// A new entry, or a copy of one, and a body (with room for `bytes` or `reserve` bytes, whichever
// is more, and `bytes` in it), each in one block of the cache's pool.
std::shared_ptr<Entry> new_entry();
std::shared_ptr<Entry> new_entry(const Entry& from);
std::shared_ptr<Body> new_body(std::string_view bytes = {}, size_t reserve = 0);

// How a route turns responses into entries.
struct EntryRules {
  double heuristic_fraction = 0.1;                  // RFC 9111 4.2.2
  std::optional<std::chrono::seconds> default_ttl;  // for responses with no freshness
  bool ttl_overrides = false;                       // the ttl wins over the origin's
  std::string tag_header;                           // lower case; empty: no tags
};

// The entry for `head` (a response to a request sent at `request_time`, its head received at
// `response_time`) with `body`.
std::shared_ptr<Entry> make_entry(const http::ResponseHead& head, std::shared_ptr<const Body> body,
                                  Entry::Time request_time, Entry::Time response_time,
                                  const EntryRules& rules);

// RFC 9111 4.3.4: `stored` freshened by the 304 `not_modified` (got for a validation sent at
// `request_time`, received at `response_time`): each of its fields replaces the stored ones of
// that name, except those a cache does not store and Content-Length; the times and the lifetime
// are those of the 304's exchange, the body is the stored one.
std::shared_ptr<Entry> freshen(const Entry& stored, const http::ResponseHead& not_modified,
                               Entry::Time request_time, Entry::Time response_time,
                               const EntryRules& rules);

// The response as the filters after the cache changed it (compression: Content-Encoding, Vary,
// a weakened ETag): the stored fields named in `removed` (lower case) go, `added` are appended,
// and what is derived from them is derived again.
void amend(Entry& e, std::span<const std::string> removed,
           std::span<const std::pair<std::string, std::string>> added, const EntryRules& rules);

// An entry as bytes, for the shared tier (Redis): what was received (status, stored fields, the
// times of its exchange, the body), never what is derived from it, which the reader derives
// again by its own rules. A marker (status 0) has no body.
std::string encode_entry(const Entry& e);
// Null when `bytes` is not an entry this version wrote (another version's, or damaged).
std::shared_ptr<Entry> decode_entry(std::string_view bytes, const EntryRules& rules);

}  // namespace gatehouse::filters::cache
