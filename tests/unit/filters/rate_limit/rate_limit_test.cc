#include <gtest/gtest.h>
#include <malloc.h>

#include <cstdio>
#include <thread>

#include "filters/rate_limit/gcra.h"
#include "filters/rate_limit/limiter.h"

namespace gatehouse::filters {
namespace {

constexpr int64_t kS = 1'000'000'000;
constexpr int64_t kMs = 1'000'000;

TEST(Gcra, BurstThenEvenRefill) {
  auto l = gcra::make_limit(10, kS, 10);  // 10/s, burst 10: T = 100 ms
  int64_t tat = 0, now = 1000 * kS;
  for (int i = 0; i < 10; ++i) {
    auto d = gcra::decide(l, now, tat);
    ASSERT_TRUE(d.allowed) << i;
    EXPECT_EQ(d.remaining, 9 - i);
  }
  auto refused = gcra::decide(l, now, tat);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.remaining, 0);
  EXPECT_EQ(refused.retry_after_s, 1);  // 100 ms, rounded up to whole seconds
  EXPECT_EQ(refused.reset_s, 1);
  EXPECT_FALSE(gcra::decide(l, now + 99 * kMs, tat).allowed);
  EXPECT_TRUE(gcra::decide(l, now + 100 * kMs, tat).allowed) << "one more after one interval";
  EXPECT_FALSE(gcra::decide(l, now + 100 * kMs, tat).allowed);
  // After a whole period of silence the full burst is back.
  int64_t later = now + 2 * kS;
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(gcra::decide(l, later, tat).allowed) << i;
  EXPECT_FALSE(gcra::decide(l, later, tat).allowed);
}

TEST(Gcra, SmallBurstSpreadsRequests) {
  auto l = gcra::make_limit(60, 60 * kS, 1);  // 60/m without burst: one per second
  int64_t tat = 0, now = 5 * kS;
  EXPECT_TRUE(gcra::decide(l, now, tat).allowed);
  auto d = gcra::decide(l, now + kS / 2, tat);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after_s, 1);
  EXPECT_TRUE(gcra::decide(l, now + kS, tat).allowed);
}

TEST(Limiter, EveryLimitMustAllowAndOnlyThenCounts) {
  Limiter l({gcra::make_limit(3, kS, 3), gcra::make_limit(5, 60 * kS, 5)}, 1000);
  std::vector<gcra::Decision> d;
  int64_t t = 100 * kS;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(l.decide("k", t, &d));
  EXPECT_FALSE(l.decide("k", t, &d));  // the per-second limit
  EXPECT_TRUE(d[1].allowed) << "the minute limit alone would allow it";
  EXPECT_EQ(d[1].remaining, 1) << "a refused request did not count against the minute limit";
  EXPECT_TRUE(l.decide("k", t + kS, &d));
  EXPECT_TRUE(l.decide("k", t + kS, &d));
  EXPECT_FALSE(l.decide("k", t + kS, &d));  // now the minute limit: 5 used
  EXPECT_TRUE(l.decide("other", t, &d)) << "keys are independent";
}

TEST(Limiter, AClockReadBeforeALaterDecisionCountsDownExactly) {
  // Two workers read the clock, then race for the lock: the one with the older reading may
  // decide second. Its answer must still say one fewer remaining, not two fewer.
  Limiter l({gcra::make_limit(1, 60 * kS, 10)}, 1000);
  std::vector<gcra::Decision> d;
  int64_t t = 100 * kS;
  ASSERT_TRUE(l.decide("k", t + 1000, &d));
  EXPECT_EQ(d[0].remaining, 9);
  ASSERT_TRUE(l.decide("k", t, &d));
  EXPECT_EQ(d[0].remaining, 8);
}

TEST(Limiter, ExactAcrossThreads) {
  Limiter l({gcra::make_limit(1000, 3600 * kS, 1000)}, 1000);
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&] {
      std::vector<gcra::Decision> d;
      for (int i = 0; i < 2000; ++i) allowed += l.decide("shared", 10 * kS, &d);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(allowed.load(), 1000);
}

TEST(Limiter, DrainedKeysAreSweptAndMemoryIsBounded) {
  Limiter l({gcra::make_limit(10, kS, 10)}, 64 * 100);
  std::vector<gcra::Decision> d;
  for (int i = 0; i < 20000; ++i) l.decide("key-" + std::to_string(i), 10 * kS, &d);
  EXPECT_LE(l.size(), 64u * 100) << "max_keys holds";
  EXPECT_EQ(l.sweep(10 * kS + kS / 20), l.size()) << "nothing has drained 50 ms later";
  EXPECT_EQ(l.sweep(12 * kS), 0u) << "every key drained after its period";
}

// The cost of a tracked key, measured with the allocator's own count: a million client
// addresses must fit in well under 200 MiB (docs/configuration.md records the figure).
TEST(Limiter, AMillionKeysFitInUnder200MiB) {
  size_t before = mallinfo2().uordblks;
  {
    Limiter l({gcra::make_limit(100, kS, 100), gcra::make_limit(5000, 3600 * kS, 5000)}, 2'000'000);
    std::vector<gcra::Decision> d;
    char key[32];
    for (int i = 0; i < 1'000'000; ++i) {
      std::snprintf(key, sizeof key, "ip:10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
      l.decide(key, 10 * kS, &d);
    }
    ASSERT_EQ(l.size(), 1'000'000u);
    size_t used = mallinfo2().uordblks - before;
    std::printf("rate_limit: %zu bytes per tracked key (2 limits), %.1f MiB per million\n",
                used / 1'000'000, used / 1048576.0);
    EXPECT_LT(used, 200u * 1024 * 1024);
  }
}

}  // namespace
}  // namespace gatehouse::filters
