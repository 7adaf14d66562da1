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

}  // namespace
}  // namespace gatehouse::filters::cache
