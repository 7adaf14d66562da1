#include "filters/cache/spin_lock.h"

#include <gtest/gtest.h>

#include <mutex>
#include <thread>
#include <vector>

namespace gatehouse::filters::cache {
namespace {

// More threads than cores, each adding under the lock: no increment is lost, and a holder that is
// preempted gets the CPU back from the spinning ones (they yield), or this would not finish.
TEST(SpinLock, ExcludesAndNoIncrementIsLost) {
  SpinLock lock;
  uint64_t counter = 0;  // plain: only the lock orders the threads' writes
  constexpr int kThreads = 8, kEach = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        std::lock_guard guard(lock);
        ++counter;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, uint64_t{kThreads} * kEach);
}

TEST(SpinLock, TryLockFailsWhileHeld) {
  SpinLock lock;
  ASSERT_TRUE(lock.try_lock());
  bool other = true;
  std::thread([&] { other = lock.try_lock(); }).join();
  EXPECT_FALSE(other);
  lock.unlock();
  std::thread([&] {
    other = lock.try_lock();
    if (other) lock.unlock();
  }).join();
  EXPECT_TRUE(other);
}

}  // namespace
}  // namespace gatehouse::filters::cache
