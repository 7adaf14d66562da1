// HTTP-date (RFC 9110 5.6.7): the preferred IMF-fixdate, and the two obsolete forms a recipient
// must still accept (rfc850-date, asctime-date). For Retry-After now; Date, Expires and
// Last-Modified for the cache later.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace gatehouse::http {

// The instant an HTTP-date names, or nullopt when `text` is not exactly one of the three forms
// (in GMT, with valid ranges). The day name is not checked against the date, as RFC 9110 lets
// recipients skip that. A two-digit rfc850 year more than 50 years ahead is taken as the past
// century (RFC 9110 5.6.7). A date outside what system_clock can hold (about 1677 to 2262) is
// clamped to the nearest whole second it can: callers compare the result with "now" before they
// subtract, as the difference between such a date and now can overflow. `now` (the clock, when
// not given) is read only for an rfc850-date's century: the other forms need no clock.
std::optional<std::chrono::system_clock::time_point> parse_http_date(
    std::string_view text, std::optional<std::chrono::system_clock::time_point> now = std::nullopt);

// The IMF-fixdate of `t` (RFC 9110 5.6.7), e.g. "Sun, 06 Nov 1994 08:49:37 GMT": the form a
// sender generates. Fractions of a second are dropped.
std::string format_http_date(std::chrono::system_clock::time_point t);

}  // namespace gatehouse::http
