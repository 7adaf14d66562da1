#include "filters/cache/status.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace gatehouse::filters::cache
