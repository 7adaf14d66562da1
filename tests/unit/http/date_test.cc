#include "http/date.h"

#include <gtest/gtest.h>

namespace gatehouse::http {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;

constexpr auto kRfcExample = system_clock::time_point(seconds(784111777));  // 1994-11-06 08:49:37Z

TEST(HttpDate, TheThreeFormsOfRfc9110) {
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), kRfcExample);   // IMF-fixdate
  EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), kRfcExample);  // rfc850-date
  EXPECT_EQ(parse_http_date("Sun Nov  6 08:49:37 1994"), kRfcExample);        // asctime-date
  EXPECT_EQ(parse_http_date("Sun Nov 16 08:49:37 1994"), kRfcExample + seconds(10 * 86400));
}

TEST(HttpDate, CalendarEdges) {
  EXPECT_EQ(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), system_clock::time_point());
  EXPECT_EQ(parse_http_date("Tue, 29 Feb 2028 12:00:00 GMT"),
            system_clock::time_point(seconds(1835438400)));
  EXPECT_FALSE(parse_http_date("Wed, 29 Feb 2027 12:00:00 GMT")) << "2027 is not a leap year";
  EXPECT_FALSE(parse_http_date("Tue, 29 Feb 2100 12:00:00 GMT")) << "nor is 2100";
  EXPECT_TRUE(parse_http_date("Tue, 29 Feb 2000 12:00:00 GMT")) << "2000 is";
  EXPECT_TRUE(parse_http_date("Sat, 31 Dec 2016 23:59:60 GMT")) << "a leap second";
}

// system_clock's nanoseconds reach from 1677 to 2262: beyond, a date is clamped to those ends
// instead of wrapping around (Fri, 31 Dec 9999 read as a day in 1816; found by fuzz/http_date.cc).
TEST(HttpDate, DatesBeyondTheClockAreClamped) {
  const auto last = std::chrono::floor<seconds>(system_clock::time_point::max());
  const auto first = std::chrono::ceil<seconds>(system_clock::time_point::min());
  EXPECT_EQ(parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT"), last);
  EXPECT_EQ(parse_http_date("Sat, 01 Jan 2263 00:00:00 GMT"), last);
  EXPECT_EQ(parse_http_date("Sat, 01 Jan 0000 00:00:00 GMT"), first);
  EXPECT_EQ(parse_http_date("Mon Jan  1 00:00:00 1600"), first);
  EXPECT_EQ(parse_http_date("Sat, 01 Jan 2261 00:00:00 GMT"),
            system_clock::time_point(seconds(9183110400)));
}

TEST(HttpDate, TwoDigitYearsAreAtMostFiftyYearsAhead) {
  auto now = system_clock::time_point(seconds(1796169600));  // 2026-12-02
  auto y = [&](const char* text) {
    auto t = parse_http_date(text, now);
    return t ? static_cast<int>(
                   std::chrono::year_month_day(std::chrono::floor<std::chrono::days>(*t)).year())
             : 0;
  };
  EXPECT_EQ(y("Monday, 01-Jan-76 00:00:00 GMT"), 2076);
  EXPECT_EQ(y("Monday, 01-Jan-77 00:00:00 GMT"), 1977);
  EXPECT_EQ(y("Monday, 01-Jan-26 00:00:00 GMT"), 2026);
}

TEST(HttpDate, AnythingElseIsRefused) {
  const char* bad[] = {
      "",
      "1",
      "Sun, 06 Nov 1994 08:49:37 UTC",   // only GMT
      "Sun, 06 Nov 1994 08:49:37 GMT ",  // trailing space
      "Sun, 6 Nov 1994 08:49:37 GMT",    // IMF-fixdate days have two digits
      "Sun, 06 Nov 94 08:49:37 GMT",
      "Sun, 06 Foo 1994 08:49:37 GMT",
      "Sun, 32 Dec 1994 08:49:37 GMT",
      "Sun, 00 Dec 1994 08:49:37 GMT",
      "Sun, 06 Nov 1994 24:00:00 GMT",
      "Sun, 06 Nov 1994 08:60:00 GMT",
      "Sun, 06 Nov 1994 08:49:61 GMT",
      "sun, 06 nov 1994 08:49:37 gmt",  // case-sensitive, as the grammar
      "Sunday, 06-Nov-1994 08:49:37 GMT",
      "Sun Nov 6 08:49:37 1994",  // asctime pads with a space
      "Sun Nov  6 08:49:37 94",
      "Sun, 06 Nov 1994 08:49:37 GMT\r\n",
      // The IMF-fixdate's length, a part out of place or a separator wrong:
      "Sun,  06 Nov 1994 8:49:37 GMT",
      "Sun, 06-Nov 1994 08:49:37 GMT",
      "Sun, 06 Nov 1994 08-49:37 GMT",
      "Sun, 06 Nov 1994 08:49;37 GMT",
      "Sun, 06 Nov 1994 08:49:37 GMt",
      "Sun, 06 Nov 19x4 08:49:37 GMT",
      "Xyz, 06 Nov 1994 08:49:37 GMT",
  };
  for (const char* text : bad) EXPECT_FALSE(parse_http_date(text)) << text;
}

// The last dates a thread read are remembered: reading them again, in any order, among others and
// after refused ones, gives each its own instant.
TEST(HttpDate, RememberedDatesAnswerOnlyForThemselves) {
  const std::string a = "Sun, 06 Nov 1994 08:49:37 GMT", b = "Sun, 06 Nov 1994 08:49:38 GMT",
                    c = "Mon, 07 Nov 1994 08:49:37 GMT", bad = "Sun, 06 Nov 1994 08:49:3x GMT";
  for (int round = 0; round < 3; ++round) {
    EXPECT_EQ(parse_http_date(a), kRfcExample);
    EXPECT_EQ(parse_http_date(b), kRfcExample + seconds(1));
    EXPECT_FALSE(parse_http_date(bad));
    EXPECT_EQ(parse_http_date(c), kRfcExample + seconds(86400));
    EXPECT_EQ(parse_http_date(a), kRfcExample);
  }
}

}  // namespace
}  // namespace gatehouse::http
