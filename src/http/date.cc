#include "http/date.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace gatehouse::http {
namespace {

constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr std::array<std::string_view, 7> kDays = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 7> kLongDays = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};

// Reads exactly `n` digits from the front of `s`.
bool digits(std::string_view& s, size_t n, int* out) {
  if (s.size() < n) return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  s.remove_prefix(n);
  return true;
}

// Byte by byte: these are a few bytes long, shorter than a call to memcmp.
bool starts(std::string_view s, std::string_view lit) {
  if (s.size() < lit.size()) return false;
  for (size_t i = 0; i < lit.size(); ++i) {
    if (s[i] != lit[i]) return false;
  }
  return true;
}

bool literal(std::string_view& s, std::string_view lit) {
  if (!starts(s, lit)) return false;
  s.remove_prefix(lit.size());
  return true;
}

// The three letters of a day or month name as one number, so that finding a name is a dozen
// integer comparisons (every cached response's Date and Last-Modified are parsed).
constexpr uint32_t packed(std::string_view three) {
  return static_cast<uint32_t>(static_cast<unsigned char>(three[0])) << 16 |
         static_cast<uint32_t>(static_cast<unsigned char>(three[1])) << 8 |
         static_cast<unsigned char>(three[2]);
}

template <size_t N>
constexpr std::array<uint32_t, N> packed_all(const std::array<std::string_view, N>& names) {
  std::array<uint32_t, N> out{};
  for (size_t i = 0; i < N; ++i) out[i] = packed(names[i]);
  return out;
}
constexpr auto kMonthsPacked = packed_all(kMonths);
constexpr auto kDaysPacked = packed_all(kDays);

// The name at the front of `s` among `names` (whose first three letters, `heads`, differ).
template <size_t N>
bool one_of(std::string_view& s, const std::array<std::string_view, N>& names,
            const std::array<uint32_t, N>& heads, int* index) {
  if (s.size() < 3) return false;
  const uint32_t head = packed(s);
  for (size_t i = 0; i < N; ++i) {
    if (heads[i] == head) {
      if (!starts(s, names[i])) return false;
      s.remove_prefix(names[i].size());
      *index = static_cast<int>(i);
      return true;
    }
  }
  return false;
}

// hour ":" minute ":" second
bool time_of_day(std::string_view& s, int* h, int* m, int* sec) {
  return digits(s, 2, h) && literal(s, ":") && digits(s, 2, m) && literal(s, ":") &&
         digits(s, 2, sec);
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

using Instant = std::optional<std::chrono::system_clock::time_point>;

Instant parse(std::string_view s, Instant now) {
  int weekday = 0, day = 0, month = 0, year = 0, hour = 0, minute = 0, second = 0;
  bool ok = false;
  if (s.size() == 29 && s[3] == ',') {
    // IMF-fixdate, every part at a fixed place (the form every sender must use, RFC 9110 5.6.7):
    // Sun, 06 Nov 1994 08:49:37 GMT
    // 0    5  8   12   17 20 23 25
    // Two digits at i, as a number; -1 when they are not digits.
    auto two = [&s](size_t i) {
      const unsigned a = static_cast<unsigned char>(s[i]) - '0';
      const unsigned b = static_cast<unsigned char>(s[i + 1]) - '0';
      return a < 10 && b < 10 ? static_cast<int>(a * 10 + b) : -1;
    };
    std::string_view name = s.substr(0, 3), month_name = s.substr(8, 3);
    const int century = two(12), year_of_century = two(14);
    day = two(5);
    hour = two(17);
    minute = two(20);
    second = two(23);
    year = century * 100 + year_of_century;
    ok = one_of(name, kDays, kDaysPacked, &weekday) &&
         one_of(month_name, kMonths, kMonthsPacked, &month) && s[4] == ' ' && s[7] == ' ' &&
         s[11] == ' ' && s[16] == ' ' && s[19] == ':' && s[22] == ':' &&
         starts(s.substr(25), " GMT") && century >= 0 && year_of_century >= 0 && day >= 0 &&
         hour >= 0 && minute >= 0 && second >= 0;
  } else if (s.size() == 24 && s[3] == ' ') {
    // asctime-date: Sun Nov  6 08:49:37 1994 (a one-digit day is padded with a space)
    ok = one_of(s, kDays, kDaysPacked, &weekday) && literal(s, " ") &&
         one_of(s, kMonths, kMonthsPacked, &month) && literal(s, " ");
    if (ok && s.front() == ' ') {
      s.remove_prefix(1);
      ok = digits(s, 1, &day);
    } else {
      ok = ok && digits(s, 2, &day);
    }
    ok = ok && literal(s, " ") && time_of_day(s, &hour, &minute, &second) && literal(s, " ") &&
         digits(s, 4, &year) && s.empty();
  } else {
    // rfc850-date: Sunday, 06-Nov-94 08:49:37 GMT
    ok = one_of(s, kLongDays, kDaysPacked, &weekday) && literal(s, ", ") && digits(s, 2, &day) &&
         literal(s, "-") && one_of(s, kMonths, kMonthsPacked, &month) && literal(s, "-") &&
         digits(s, 2, &year) && literal(s, " ") && time_of_day(s, &hour, &minute, &second) &&
         literal(s, " GMT") && s.empty();
    if (ok) {
      // The century that puts the date no more than 50 years in the future.
      auto today = std::chrono::year_month_day(
          std::chrono::floor<std::chrono::days>(now.value_or(std::chrono::system_clock::now())));
      int this_year = static_cast<int>(today.year());
      year += this_year / 100 * 100;
      if (year > this_year + 50) year -= 100;
    }
  }
  static constexpr int kMonthDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (!ok || day < 1 || day > kMonthDays[month] + (month == 1 && leap(year)) || hour > 23 ||
      minute > 59 || second > 60)  // 60: a leap second, as RFC 9110 allows
    return std::nullopt;
  int64_t seconds =
      days_from_civil(year, static_cast<unsigned>(month + 1), static_cast<unsigned>(day)) * 86400 +
      hour * 3600 + minute * 60 + second;
  // system_clock counts nanoseconds in 64 bits, from about 1677-09-21 to 2262-04-11. A date
  // outside that ("Expires: Fri, 31 Dec 9999 23:59:59 GMT" is a common "never") is clamped to the
  // nearest whole second inside: converted as it is, it overflowed and wrapped around to an
  // arbitrary instant, e.g. a far-future Retry-After read as a date in the near future (found by
  // fuzz/http_date.cc).
  constexpr int64_t kMin =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::duration::min())
          .count();
  constexpr int64_t kMax =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::duration::max())
          .count();
  seconds = std::clamp(seconds, kMin, kMax);
  return std::chrono::system_clock::time_point(std::chrono::seconds(seconds));
}

// The last IMF-fixdates this thread read, and what they named: the cache reads every response it
// stores for its Date and Last-Modified, and responses within one second carry the same Date (and
// one resource the same Last-Modified). The fixed form's instant does not depend on `now`.
constexpr size_t kFixdate = 29;
struct Remembered {
  std::array<char, kFixdate> text{};
  Instant when;
};
thread_local std::array<Remembered, 2> remembered{};
thread_local unsigned next_remembered = 0;

}  // namespace

Instant parse_http_date(std::string_view s, Instant now) {
  if (s.size() != kFixdate) return parse(s, now);
  for (const Remembered& r : remembered) {
    if (r.when && std::memcmp(r.text.data(), s.data(), kFixdate) == 0) return r.when;
  }
  Instant when = parse(s, now);
  if (when) {
    Remembered& r = remembered[next_remembered++ % remembered.size()];
    std::memcpy(r.text.data(), s.data(), kFixdate);
    r.when = when;
  }
  return when;
}

std::string format_http_date(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto day = floor<days>(t);
  const year_month_day ymd(day);
  const hh_mm_ss<seconds> hms(floor<seconds>(t - day));
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3s, %02u %.3s %04d %02d:%02d:%02d GMT",
                kDays[weekday(day).iso_encoding() - 1].data(), static_cast<unsigned>(ymd.day()),
                kMonths[static_cast<unsigned>(ymd.month()) - 1].data(),
                static_cast<int>(ymd.year()), static_cast<int>(hms.hours().count()),
                static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()));
  return buf;
}

}  // namespace gatehouse::http
