#include "filters/cache/status.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace gatehouse::filters::cache {
namespace {

// The shapes of RFC 9211's examples.
TEST(CacheStatus, Formats) {
  EXPECT_EQ(format_cache_status("gatehouse", {.hit = true, .ttl = 376}), "gatehouse; hit; ttl=376");
  EXPECT_EQ(format_cache_status("gatehouse", {.fwd = "uri-miss", .stored = true}),
            "gatehouse; fwd=uri-miss; stored");
  EXPECT_EQ(format_cache_status("gatehouse", {.fwd = "stale", .fwd_status = 304, .ttl = 60}),
            "gatehouse; fwd=stale; fwd-status=304; ttl=60");
  EXPECT_EQ(format_cache_status("gatehouse", {.hit = true, .ttl = -5}), "gatehouse; hit; ttl=-5")
      << "a stale entry served (stale-if-error) has a negative ttl";
  EXPECT_EQ(format_cache_status("gatehouse", {.fwd = "uri-miss", .collapsed = true}),
            "gatehouse; fwd=uri-miss; collapsed");
  EXPECT_EQ(format_cache_status("gatehouse", {.fwd = "uri-miss", .detail = "no-store"}),
            "gatehouse; fwd=uri-miss; detail=no-store");
}

// Every parameter at once, with the longest numbers, and a name longer than the room on the stack.
TEST(CacheStatus, LongestFitsWhole) {
  const CacheStatus all{.hit = true,
                        .fwd = "uri-miss",
                        .fwd_status = 999,
                        .ttl = INT64_MIN,
                        .stored = true,
                        .collapsed = true,
                        .detail = "stale-while-revalidate"};
  EXPECT_EQ(format_cache_status("gatehouse", all),
            "gatehouse; hit; fwd=uri-miss; fwd-status=999; ttl=-9223372036854775808; stored; "
            "collapsed; detail=stale-while-revalidate");
  const std::string name(1000, 'c');
  EXPECT_EQ(format_cache_status(name, all),
            name +
                "; hit; fwd=uri-miss; fwd-status=999; ttl=-9223372036854775808; stored; "
                "collapsed; detail=stale-while-revalidate");
}

// The text a thread wrote last is reused only for the same status: a change of any one part, or of
// the cache's name, writes it again.
TEST(CacheStatus, EachChangeIsWritten) {
  const CacheStatus base{.fwd = "uri-miss", .fwd_status = 200, .ttl = 3600, .stored = true};
  const std::string text = "gatehouse; fwd=uri-miss; fwd-status=200; ttl=3600; stored";
  EXPECT_EQ(format_cache_status("gatehouse", base), text);
  EXPECT_EQ(format_cache_status("gatehouse", base), text);
  auto changed = [&](auto change) {
    CacheStatus s = base;
    change(s);
    return format_cache_status("gatehouse", s);
  };
  EXPECT_EQ(changed([](CacheStatus& s) { s.ttl = 3599; }),
            "gatehouse; fwd=uri-miss; fwd-status=200; ttl=3599; stored");
  EXPECT_EQ(changed([](CacheStatus& s) { s.ttl.reset(); }),
            "gatehouse; fwd=uri-miss; fwd-status=200; stored");
  EXPECT_EQ(changed([](CacheStatus& s) { s.fwd_status = 404; }),
            "gatehouse; fwd=uri-miss; fwd-status=404; ttl=3600; stored");
  EXPECT_EQ(changed([](CacheStatus& s) { s.stored = false; }),
            "gatehouse; fwd=uri-miss; fwd-status=200; ttl=3600");
  EXPECT_EQ(changed([](CacheStatus& s) { s.collapsed = true; }), text + "; collapsed");
  EXPECT_EQ(changed([](CacheStatus& s) { s.hit = true; }),
            "gatehouse; hit; fwd=uri-miss; fwd-status=200; ttl=3600; stored");
  const std::string vary = "vary-miss";  // the same length, other bytes
  EXPECT_EQ(changed([&](CacheStatus& s) { s.fwd = std::string_view(vary).substr(0, 8); }),
            "gatehouse; fwd=vary-mis; fwd-status=200; ttl=3600; stored");
  EXPECT_EQ(changed([](CacheStatus& s) { s.detail = "head"; }), text + "; detail=head");
  EXPECT_EQ(format_cache_status("edge", base),
            "edge; fwd=uri-miss; fwd-status=200; ttl=3600; stored");
  EXPECT_EQ(format_cache_status("gatehouse", base), text);
}

}  // namespace
}  // namespace gatehouse::filters::cache
