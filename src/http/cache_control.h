// Cache-Control as a shared cache reads it (RFC 9111 section 5.2, with stale-while-revalidate and
// stale-if-error from RFC 5861), and the freshness arithmetic of RFC 9111 section 4.2: a
// response's freshness lifetime (explicit or heuristic) and its current age.
//
// Parsing is lenient where the RFC asks recipients to be and conservative where a value cannot be
// trusted: directive names are case-insensitive, arguments are accepted as tokens or quoted
// strings (section 5.2), empty list elements are skipped (RFC 9110 5.6.1), unknown directives
// are ignored (section 5.2.3). A delta-seconds argument that is not digits, or a directive that
// appears twice with different arguments, reads as 0: section 4.2.1 encourages treating invalid
// freshness information as stale, and honouring the most restrictive of conflicting directives.
// Values beyond 2^31 saturate there (section 1.2.2).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace gatehouse::http {

struct CacheControl {
  static constexpr int64_t kMaxDelta = int64_t{1} << 31;  // RFC 9111 1.2.2
  static constexpr int64_t kAbsent = -1;

  // delta-seconds directives, in seconds; kAbsent when not there.
  int64_t max_age = kAbsent;                 // request 5.2.1.1, response 5.2.2.1
  int64_t s_maxage = kAbsent;                // response 5.2.2.10
  int64_t max_stale = kAbsent;               // request 5.2.1.2; kMaxDelta without an argument
  int64_t min_fresh = kAbsent;               // request 5.2.1.3
  int64_t stale_while_revalidate = kAbsent;  // response, RFC 5861 3
  int64_t stale_if_error = kAbsent;          // request and response, RFC 5861 4

  bool no_store = false;          // 5.2.1.5, 5.2.2.5
  bool no_cache = false;          // 5.2.1.4, 5.2.2.4 (a qualified one counts as unqualified)
  bool private_ = false;          // 5.2.2.7 (qualified: likewise, a shared cache stores nothing)
  bool public_ = false;           // 5.2.2.9
  bool must_revalidate = false;   // 5.2.2.2
  bool proxy_revalidate = false;  // 5.2.2.8
  bool no_transform = false;      // 5.2.1.6, 5.2.2.6
  bool only_if_cached = false;    // 5.2.1.7
  bool must_understand = false;   // 5.2.2.3
};

// Every Cache-Control field line's value of one message, in order: together one list (RFC 9110
// 5.3).
CacheControl parse_cache_control(const std::vector<std::string_view>& lines);
CacheControl parse_cache_control(std::string_view line);

// What section 4.2 needs of a stored response, besides its Cache-Control.
struct ResponseTimes {
  using Time = std::chrono::system_clock::time_point;
  Time request_time;                  // when the request that got it was sent
  Time response_time;                 // when its head arrived
  std::optional<Time> date;           // Date; absent or invalid: response_time stands in
  int64_t age = 0;                    // Age in seconds (absent or invalid: 0)
  std::optional<Time> expires;        // Expires, when it is a valid date
  bool expires_invalid = false;       // present but not one date: already expired (5.3)
  std::optional<Time> last_modified;  // for the heuristic
};

// Section 4.2.2: statuses a cache may give a heuristic lifetime (RFC 9110 15.1).
bool heuristically_cacheable(int status);

// Section 4.2.1, as a shared cache: s-maxage, then max-age, then Expires minus Date; else, for a
// heuristically cacheable status with Last-Modified, `heuristic_fraction` of the time between
// Last-Modified and Date (4.2.2, whose example is 10%); else 0. Seconds, never negative.
int64_t freshness_lifetime(const CacheControl& cc, const ResponseTimes& t, int status,
                           double heuristic_fraction);

// Section 4.2.3: the current age, in seconds, at `now`.
int64_t current_age(const ResponseTimes& t, ResponseTimes::Time now);

// The Age header's value (section 5.1): a non-negative integer; anything else counts as 0.
int64_t parse_age(std::string_view value);

}  // namespace gatehouse::http
