#include "upstream/bulkhead.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace gatehouse::upstream {
namespace {

TEST(Bulkhead, AdmitsUpToTheLimitAndFreesSlots) {
  Bulkhead b(2);
  EXPECT_TRUE(b.try_enter());
  EXPECT_TRUE(b.try_enter());
  EXPECT_FALSE(b.try_enter());
  EXPECT_EQ(b.in_flight(), 2) << "a refused request takes nothing";
  b.leave();
  EXPECT_TRUE(b.try_enter());
}

TEST(Bulkhead, NeverMoreThanTheLimitAcrossThreads) {
  Bulkhead b(8);
  std::atomic<int> inside{0}, most{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        if (!b.try_enter()) continue;
        int now = ++inside;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {}
        --inside;
        b.leave();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(most.load(), 8);
  EXPECT_EQ(b.in_flight(), 0);
}

TEST(Bulkhead, SharedByNameAcrossReloadsWithTheNewLimit) {
  auto a = Bulkhead::shared("svc-test", 5);
  EXPECT_TRUE(a->try_enter());
  auto b = Bulkhead::shared("svc-test", 1);  // a reload lowers the limit
  EXPECT_EQ(a.get(), b.get()) << "requests in flight under the old config still count";
  EXPECT_EQ(b->limit(), 1u);
  EXPECT_FALSE(b->try_enter());
  a->leave();
  EXPECT_TRUE(b->try_enter());
}

}  // namespace
}  // namespace gatehouse::upstream
