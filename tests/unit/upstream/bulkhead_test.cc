#include "upstream/bulkhead.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace gatehouse::upstream {
namespace {

TEST(Bulkhead, AdmitsUpToTheLimitAndFreesSlots) {
  Bulkhead b(2, 0);
  EXPECT_TRUE(b.try_enter());
  EXPECT_TRUE(b.try_enter());
  EXPECT_FALSE(b.try_enter());
  EXPECT_EQ(b.in_flight(), 2) << "a refused request takes nothing";
  b.leave();
  EXPECT_TRUE(b.try_enter());
}

TEST(Bulkhead, NeverMoreThanTheLimitAcrossThreads) {
  Bulkhead b(8, 0);
  std::atomic<int> inside{0}, most{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        if (!b.try_enter()) continue;
        int now = ++inside;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
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
  auto a = Bulkhead::shared("svc-test", 5, 0);
  EXPECT_TRUE(a->try_enter());
  auto b = Bulkhead::shared("svc-test", 1, 2);  // a reload lowers the limit
  EXPECT_EQ(a.get(), b.get()) << "requests in flight under the old config still count";
  EXPECT_EQ(b->limit(), 1u);
  EXPECT_EQ(b->max_pending(), 2u);
  EXPECT_FALSE(b->try_enter());
  a->leave();
  EXPECT_TRUE(b->try_enter());
}

// A waiter that records what it was told.
std::shared_ptr<Bulkhead::Waiter> waiter(std::vector<int>* woken, int id) {
  auto w = std::make_shared<Bulkhead::Waiter>();
  w->wake = [woken, id](bool granted) { woken->push_back(granted ? id : -id); };
  return w;
}

TEST(Bulkhead, QueueHandsFreedSlotsToTheOldestWaiter) {
  Bulkhead b(1, 2);
  std::vector<int> woken;
  ASSERT_TRUE(b.try_enter());
  auto w1 = waiter(&woken, 1), w2 = waiter(&woken, 2), w3 = waiter(&woken, 3);
  EXPECT_EQ(b.wait(w1), Bulkhead::Queued::kWaiting);
  EXPECT_EQ(b.wait(w2), Bulkhead::Queued::kWaiting);
  EXPECT_EQ(b.wait(w3), Bulkhead::Queued::kFull) << "max_pending 2";
  EXPECT_EQ(b.waiting(), 2u);
  b.leave();
  EXPECT_EQ(woken, std::vector<int>{1}) << "the oldest gets the slot";
  EXPECT_EQ(b.in_flight(), 1) << "handed over, not freed";
  EXPECT_FALSE(b.try_enter()) << "a newcomer does not jump the queue while the slot is held";
  b.leave();
  EXPECT_EQ(woken, (std::vector<int>{1, 2}));
  b.leave();
  EXPECT_EQ(b.in_flight(), 0);
  EXPECT_EQ(b.waiting(), 0u);
}

TEST(Bulkhead, CancelledWaitersAreSkippedAndGrantedOnesCannotCancel) {
  Bulkhead b(1, 4);
  std::vector<int> woken;
  ASSERT_TRUE(b.try_enter());
  auto w1 = waiter(&woken, 1), w2 = waiter(&woken, 2);
  ASSERT_EQ(b.wait(w1), Bulkhead::Queued::kWaiting);
  ASSERT_EQ(b.wait(w2), Bulkhead::Queued::kWaiting);
  EXPECT_TRUE(b.cancel(w1.get())) << "timed out while waiting";
  b.leave();
  EXPECT_EQ(woken, std::vector<int>{2});
  EXPECT_FALSE(b.cancel(w2.get())) << "the slot is already w2's";
  b.leave();
  EXPECT_EQ(b.in_flight(), 0);
}

TEST(Bulkhead, ASlotFreedBeforeQueueingIsTakenAtOnce) {
  Bulkhead b(1, 1);
  std::vector<int> woken;
  EXPECT_EQ(b.wait(waiter(&woken, 1)), Bulkhead::Queued::kGranted);
  EXPECT_TRUE(woken.empty());
  EXPECT_EQ(b.in_flight(), 1);
  EXPECT_EQ(b.waiting(), 0u);
}

// Many threads entering, queueing and leaving: every waiter is woken exactly once (no slot is
// lost between a leave and a wait), and the limit always holds.
TEST(Bulkhead, NoLostWakeupsAcrossThreads) {
  Bulkhead b(2, 1000);
  std::atomic<int> inside{0}, most{0}, granted{0};
  auto enter = [&] {
    int now = ++inside;
    int seen = most.load();
    while (now > seen && !most.compare_exchange_weak(seen, now)) {
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 3000; ++i) {
        if (!b.try_enter()) {
          std::atomic<bool> mine{false};
          auto w = std::make_shared<Bulkhead::Waiter>();
          w->wake = [&mine](bool) { mine.store(true); };
          auto q = b.wait(w);
          ASSERT_NE(q, Bulkhead::Queued::kFull);
          if (q == Bulkhead::Queued::kWaiting) {
            while (!mine.load()) std::this_thread::yield();
          }
          ++granted;
        }
        enter();
        std::this_thread::yield();  // hold the slot a moment: others must queue
        --inside;
        b.leave();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(most.load(), 2);
  EXPECT_EQ(b.in_flight(), 0);
  EXPECT_EQ(b.waiting(), 0u);
  EXPECT_GT(granted.load(), 0);
}

}  // namespace
}  // namespace gatehouse::upstream
