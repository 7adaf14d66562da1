#include "http/cache_control.h"

#include <gtest/gtest.h>

namespace gatehouse::http {
namespace {

using std::chrono::seconds;
using Time = ResponseTimes::Time;
constexpr int64_t kAbsent = CacheControl::kAbsent;

TEST(CacheControl, DirectivesAndArguments) {
  auto cc = parse_cache_control("public, max-age=60, s-maxage=30, must-revalidate");
  EXPECT_TRUE(cc.public_);
  EXPECT_TRUE(cc.must_revalidate);
  EXPECT_EQ(cc.max_age, 60);
  EXPECT_EQ(cc.s_maxage, 30);
  EXPECT_FALSE(cc.no_store);
  EXPECT_FALSE(cc.private_);
  EXPECT_EQ(cc.stale_while_revalidate, kAbsent);
  cc = parse_cache_control(
      "no-store, no-cache, private, proxy-revalidate, no-transform, only-if-cached, "
      "must-understand, stale-while-revalidate=5, stale-if-error=600, min-fresh=10");
  EXPECT_TRUE(cc.no_store && cc.no_cache && cc.private_ && cc.proxy_revalidate && cc.no_transform &&
              cc.only_if_cached && cc.must_understand);
  EXPECT_EQ(cc.stale_while_revalidate, 5);
  EXPECT_EQ(cc.stale_if_error, 600);
  EXPECT_EQ(cc.min_fresh, 10);
}

// RFC 9111 5.2: names compare case-insensitively; "recipients ought to accept both forms".
TEST(CacheControl, CaseAndQuotedArguments) {
  auto cc = parse_cache_control("MAX-AGE=\"120\", Public, No-Cache=\"Set-Cookie, X-Foo\"");
  EXPECT_EQ(cc.max_age, 120);
  EXPECT_TRUE(cc.public_);
  EXPECT_TRUE(cc.no_cache) << "a qualified no-cache counts as unqualified";
  EXPECT_FALSE(cc.no_store);
  cc = parse_cache_control("private=\"Set-Cookie\", max-age=5");
  EXPECT_TRUE(cc.private_) << "a shared cache stores nothing of a qualified private response";
  EXPECT_EQ(cc.max_age, 5);
}

// Several field lines are one list (RFC 9110 5.3); empty elements are skipped (5.6.1).
TEST(CacheControl, SeveralLinesAndEmptyElements) {
  auto cc = parse_cache_control(std::vector<std::string_view>{"public,, ,", " max-age=10 ", ""});
  EXPECT_TRUE(cc.public_);
  EXPECT_EQ(cc.max_age, 10);
  EXPECT_EQ(parse_cache_control("").max_age, kAbsent);
}

// RFC 9111 4.2.1: invalid freshness information is treated as stale, and the most restrictive of
// conflicting directives honoured.
TEST(CacheControl, BadAndConflictingValuesReadAsStale) {
  EXPECT_EQ(parse_cache_control("max-age=abc").max_age, 0);
  EXPECT_EQ(parse_cache_control("max-age=-5").max_age, 0);
  EXPECT_EQ(parse_cache_control("max-age=1.5").max_age, 0);
  EXPECT_EQ(parse_cache_control("max-age").max_age, 0);
  EXPECT_EQ(parse_cache_control("max-age=").max_age, 0);
  EXPECT_EQ(parse_cache_control("max-age=60, max-age=120").max_age, 0);
  EXPECT_EQ(parse_cache_control("max-age=60, max-age=60").max_age, 60) << "a repeat that agrees";
  EXPECT_EQ(parse_cache_control(std::vector<std::string_view>{"max-age=60", "MAX-AGE=61"}).max_age,
            0);
  EXPECT_EQ(parse_cache_control("s-maxage=\"10").s_maxage, 0) << "an unterminated quoted string";
}

// RFC 9111 1.2.2: a delta-seconds value too large saturates at 2^31.
TEST(CacheControl, HugeValuesSaturate) {
  EXPECT_EQ(parse_cache_control("max-age=99999999999999999999999").max_age, int64_t{1} << 31);
  EXPECT_EQ(parse_cache_control("max-age=2147483647").max_age, 2147483647);
}

TEST(CacheControl, MaxStaleWithoutAnArgumentIsAnyStaleness) {
  EXPECT_EQ(parse_cache_control("max-stale").max_stale, CacheControl::kMaxDelta);
  EXPECT_EQ(parse_cache_control("max-stale=30").max_stale, 30);
  EXPECT_EQ(parse_cache_control("max-stale=x").max_stale, 0);
}

// A malformed element counts only as far as it restricts (a lifetime of 0, a restrictive flag);
// what follows it still counts, quoted commas included.
TEST(CacheControl, MalformedElementsOnlyRestrict) {
  auto cc = parse_cache_control("max-age=10 20, no-store");
  EXPECT_EQ(cc.max_age, 0);
  EXPECT_TRUE(cc.no_store);
  cc = parse_cache_control("public junk, private junk, max-stale=5 5");
  EXPECT_FALSE(cc.public_);
  EXPECT_TRUE(cc.private_);
  EXPECT_EQ(cc.max_stale, 0);
  cc = parse_cache_control("=5, x=\"a,b\", public, @bad, s-maxage=7");
  EXPECT_TRUE(cc.public_);
  EXPECT_EQ(cc.s_maxage, 7);
  cc = parse_cache_control("community=\"UCI, private\", max-age=3");
  EXPECT_FALSE(cc.private_) << "inside an unknown directive's quoted argument";
  EXPECT_EQ(cc.max_age, 3);
  cc = parse_cache_control("x=\"a\\\"b, private\", no-cache");
  EXPECT_FALSE(cc.private_) << "an escaped quote does not end the quoted string";
  EXPECT_TRUE(cc.no_cache);
}

TEST(Freshness, ExplicitLifetimeInPrecedenceOrder) {
  const Time t0{seconds(1'000'000)};
  ResponseTimes t{t0, t0, t0, 0, t0 + seconds(500), false, t0 - seconds(10000)};
  EXPECT_EQ(freshness_lifetime(parse_cache_control("s-maxage=5, max-age=50"), t, 200, 0.1), 5);
  EXPECT_EQ(freshness_lifetime(parse_cache_control("max-age=50"), t, 200, 0.1), 50);
  EXPECT_EQ(freshness_lifetime(parse_cache_control(""), t, 200, 0.1), 500) << "Expires - Date";
  t.date = t0 + seconds(100);
  EXPECT_EQ(freshness_lifetime(parse_cache_control(""), t, 200, 0.1), 400)
      << "relative to Date, not to the local clock";
  t.expires = t0 - seconds(1);
  EXPECT_EQ(freshness_lifetime(parse_cache_control(""), t, 200, 0.1), 0) << "already expired";
  t.expires.reset();
  t.expires_invalid = true;  // e.g. "Expires: 0" (RFC 9111 5.3)
  EXPECT_EQ(freshness_lifetime(parse_cache_control(""), t, 200, 0.1), 0);
  EXPECT_EQ(freshness_lifetime(parse_cache_control("max-age=9"), t, 200, 0.1), 9)
      << "max-age wins over an invalid Expires";
}

// RFC 9111 4.2.2: a heuristic only without an explicit lifetime, only for heuristically cacheable
// statuses, here a fraction of the time since Last-Modified.
TEST(Freshness, HeuristicLifetime) {
  const Time t0{seconds(1'000'000)};
  ResponseTimes t{t0, t0, t0, 0, std::nullopt, false, t0 - seconds(10000)};
  EXPECT_EQ(freshness_lifetime(parse_cache_control(""), t, 200, 0.1), 1000);
  EXPECT_EQ(freshness_lifetime(parse_cache_control(""), t, 404, 0.1), 1000);
  EXPECT_EQ(freshness_lifetime(parse_cache_control(""), t, 302, 0.1), 0) << "not heuristically";
  EXPECT_EQ(freshness_lifetime(parse_cache_control(""), t, 500, 0.1), 0);
  t.last_modified.reset();
  EXPECT_EQ(freshness_lifetime(parse_cache_control(""), t, 200, 0.1), 0) << "nothing to go on";
  t.last_modified = t0 + seconds(60);
  EXPECT_EQ(freshness_lifetime(parse_cache_control(""), t, 200, 0.1), 0)
      << "a Last-Modified after Date gives nothing, not a negative lifetime";
  EXPECT_TRUE(heuristically_cacheable(301) && heuristically_cacheable(410) &&
              heuristically_cacheable(501));
  EXPECT_FALSE(heuristically_cacheable(201) || heuristically_cacheable(304) ||
               heuristically_cacheable(403));
}

// RFC 9111 4.2.3, worked through by hand.
TEST(Freshness, CurrentAge) {
  const Time sent{seconds(1'000'000)};
  // Sent at 0, answered at 2 s; the origin says Date = 1 s and Age = 10 (it came through a cache).
  ResponseTimes t{sent, sent + seconds(2), sent + seconds(1), 10, std::nullopt, false, {}};
  // apparent_age = max(0, 2 - 1) = 1; corrected_age_value = 10 + 2 = 12; initial = 12.
  EXPECT_EQ(current_age(t, sent + seconds(2)), 12);
  EXPECT_EQ(current_age(t, sent + seconds(32)), 42) << "plus 30 s resident";
  // A Date in the future (a fast clock upstream): apparent age is never negative.
  t = ResponseTimes{sent, sent, sent + seconds(3600), 0, std::nullopt, false, {}};
  EXPECT_EQ(current_age(t, sent + seconds(5)), 5);
  // A Date far in the past: the apparent age counts.
  t = ResponseTimes{sent, sent, sent - seconds(100), 0, std::nullopt, false, {}};
  EXPECT_EQ(current_age(t, sent), 100);
  // No Date: the time it arrived stands in.
  t = ResponseTimes{sent, sent + seconds(1), std::nullopt, 0, std::nullopt, false, {}};
  EXPECT_EQ(current_age(t, sent + seconds(1)), 1) << "the response delay alone";
  // An Age that cannot be represented saturates (RFC 9111 5.1).
  t = ResponseTimes{sent, sent, sent, CacheControl::kMaxDelta, std::nullopt, false, {}};
  EXPECT_EQ(current_age(t, sent + seconds(100)), CacheControl::kMaxDelta);
}

TEST(Freshness, AgeHeader) {
  EXPECT_EQ(parse_age("60"), 60);
  EXPECT_EQ(parse_age(" 7 "), 7);
  EXPECT_EQ(parse_age("-1"), 0);
  EXPECT_EQ(parse_age("1e3"), 0);
  EXPECT_EQ(parse_age(""), 0);
  EXPECT_EQ(parse_age("99999999999999999999"), CacheControl::kMaxDelta);
}

}  // namespace
}  // namespace gatehouse::http
