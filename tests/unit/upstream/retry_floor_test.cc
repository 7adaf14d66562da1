// The retry budget's floor: a token bucket per upstream, refilled with time.
#include "upstream/retry_floor.h"

#include <gtest/gtest.h>

namespace gatehouse::upstream {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const RetryFloor::Clock::time_point t0 = RetryFloor::Clock::time_point(seconds(1000));

TEST(RetryFloor, StartsWithOneSecondsWorthAndRefillsWithTime) {
  RetryFloor f;
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(f.take(10, t0)) << i;
  EXPECT_FALSE(f.take(10, t0)) << "10 per second: the 11th at once waits";
  EXPECT_FALSE(f.take(10, t0 + milliseconds(50)));
  EXPECT_TRUE(f.take(10, t0 + milliseconds(150))) << "one more every 100 ms";
  EXPECT_FALSE(f.take(10, t0 + milliseconds(160)));
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(f.take(10, t0 + seconds(60))) << i;
  EXPECT_FALSE(f.take(10, t0 + seconds(60))) << "a long quiet time refills one second's worth only";
}

TEST(RetryFloor, ZeroTurnsItOff) {
  RetryFloor f;
  EXPECT_FALSE(f.take(0, t0));
}

TEST(RetryFloor, OnePerUpstreamWhileAConfigHoldsIt) {
  auto a = RetryFloor::shared("app");
  EXPECT_EQ(RetryFloor::shared("app"), a);
  EXPECT_NE(RetryFloor::shared("other"), a);
}

}  // namespace
}  // namespace gatehouse::upstream
