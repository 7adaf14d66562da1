// HTTP-date (http::parse_http_date). Invariants: a parsed date is a whole second that
// system_clock can hold (dates beyond are clamped to its ends); written back as IMF-fixdate and
// as asctime-date (and as rfc850-date when its two-digit year maps back to the same century) it
// parses to the same instant; the day name is not checked, as RFC 9110 allows.
#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>

#include "fuzz/fuzz.h"
#include "http/date.h"

namespace {

using namespace std::chrono;
using gatehouse::http::parse_http_date;

constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kLongDays[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                     "Thursday", "Friday", "Saturday"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

struct Civil {
  int year;
  unsigned month, day, weekday, hour, minute, second;
};

Civil civil(system_clock::time_point t) {
  auto day = floor<days>(t);
  year_month_day ymd(day);
  hh_mm_ss<seconds> hms(floor<seconds>(t - day));
  return {static_cast<int>(ymd.year()),
          static_cast<unsigned>(ymd.month()),
          static_cast<unsigned>(ymd.day()),
          weekday(day).c_encoding(),
          static_cast<unsigned>(hms.hours().count()),
          static_cast<unsigned>(hms.minutes().count()),
          static_cast<unsigned>(hms.seconds().count())};
}

std::string imf_fixdate(const Civil& c) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02u %s %04d %02u:%02u:%02u GMT", kDays[c.weekday], c.day,
                kMonths[c.month - 1], c.year, c.hour, c.minute, c.second);
  return buf;
}

std::string asctime_date(const Civil& c) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s %s %2u %02u:%02u:%02u %04d", kDays[c.weekday],
                kMonths[c.month - 1], c.day, c.hour, c.minute, c.second, c.year);
  return buf;
}

std::string rfc850_date(const Civil& c) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02u-%s-%02d %02u:%02u:%02u GMT", kLongDays[c.weekday], c.day,
                kMonths[c.month - 1], c.year % 100, c.hour, c.minute, c.second);
  return buf;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text = gatehouse::fuzz::as_text(data, size);
  // A fixed "now" (2026-01-01) keeps runs reproducible; rfc850's century depends on it.
  const auto now = system_clock::time_point(seconds(1767225600));
  auto t = parse_http_date(text, now);
  if (!t) return 0;
  FUZZ_CHECK(*t == floor<seconds>(*t));
  // Dates beyond what system_clock holds are clamped to its last whole seconds.
  const auto first = ceil<seconds>(system_clock::time_point::min());
  const auto last = floor<seconds>(system_clock::time_point::max());
  FUZZ_CHECK(*t >= first && *t <= last);
  if (*t == first || *t == last) return 0;
  Civil c = civil(*t);

  for (const std::string& again : {imf_fixdate(c), asctime_date(c)}) {
    auto t2 = parse_http_date(again, now);
    FUZZ_CHECK(t2 && *t2 == *t);
  }
  // rfc850-date: the century that puts the date at most 50 years ahead of now.
  if (c.year > 2026 - 50 && c.year <= 2026 + 50) {
    auto t3 = parse_http_date(rfc850_date(c), now);
    FUZZ_CHECK(t3 && *t3 == *t);
  }
  // The same text parses the same at any other time, except for rfc850's two-digit year.
  if (text.size() == 29 || text.size() == 24) {
    auto t4 = parse_http_date(text, now + hours(24 * 365 * 200));
    FUZZ_CHECK(t4 && *t4 == *t);
  }
  return 0;
}
