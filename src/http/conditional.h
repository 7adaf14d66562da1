// Entity tags (RFC 9110 8.8.3) and the conditional GET a cache answers from a stored response:
// If-None-Match (RFC 9110 13.1.2) and If-Modified-Since (13.1.3), in the order of 13.2.2, against
// the stored response's validators as RFC 9111 4.3.2 says.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>
#include <vector>

namespace gatehouse::http {

struct EntityTag {
  bool weak = false;
  std::string_view opaque;  // the opaque-tag, quotes included
};

// One entity-tag, the whole of `s` (surrounding whitespace allowed); nullopt when malformed.
std::optional<EntityTag> parse_entity_tag(std::string_view s);

// RFC 9110 8.8.3.2: strong comparison needs both strong and equal; weak, only equal opaque tags.
inline bool strong_match(const EntityTag& a, const EntityTag& b) {
  return !a.weak && !b.weak && a.opaque == b.opaque;
}
inline bool weak_match(const EntityTag& a, const EntityTag& b) { return a.opaque == b.opaque; }

// If-None-Match's field lines against the stored response's ETag value (empty: none). True when
// the list is "*" or one of its tags matches weakly (13.1.2: weak comparison). A list with a
// malformed element matches nothing: the request then goes on as unconditional, never wrongly
// answered 304.
bool if_none_match_matches(const std::vector<std::string_view>& lines, std::string_view etag);

struct StoredValidators {
  using Time = std::chrono::system_clock::time_point;
  std::string_view etag;              // the stored ETag value (empty: none)
  std::optional<Time> last_modified;  // Last-Modified, when valid
  std::optional<Time> date;           // Date, when valid
  Time received;                      // when the cache got the response
};

// For a GET or HEAD that a stored response can answer: true when the answer is 304 Not Modified.
// If-None-Match, when present, decides alone (13.2.2 step 3; If-Modified-Since is then ignored);
// else a valid If-Modified-Since is compared with Last-Modified, or else Date, or else the time
// the response was received (RFC 9111 4.3.2).
bool not_modified(const std::vector<std::string_view>& if_none_match,
                  std::string_view if_modified_since, const StoredValidators& stored);

}  // namespace gatehouse::http
