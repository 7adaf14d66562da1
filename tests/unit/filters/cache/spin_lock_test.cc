#include "filters/cache/spin_lock.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <shared_mutex>
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

// Writers change two counters together; readers, sharing the lock, must never see them apart.
TEST(SharedSpinLock, ReadersNeverSeeAWriteHalfDone) {
  SharedSpinLock lock;
  uint64_t a = 0, b = 0;
  std::atomic<uint64_t> torn{0}, reads{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        std::unique_lock guard(lock);
        ++a;
        ++b;
      }
    });
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        std::shared_lock guard(lock);
        if (a != b) torn.fetch_add(1);
        reads.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(torn.load(), 0u);
  EXPECT_EQ(reads.load(), 60000u);
  EXPECT_EQ(a, 60000u);
  EXPECT_EQ(b, 60000u);
}

// Readers share it (a second reader gets in while one holds it); a writer waits for them all.
TEST(SharedSpinLock, ReadersShareAndAWriterWaitsForThem) {
  SharedSpinLock lock;
  lock.lock_shared();
  std::thread([&] {
    lock.lock_shared();  // would never return if readers excluded each other
    lock.unlock_shared();
  }).join();
  std::atomic<bool> written{false};
  std::thread writer([&] {
    std::unique_lock guard(lock);
    written = true;
  });
  for (int i = 0; i < 1000; ++i) std::this_thread::yield();
  EXPECT_FALSE(written.load()) << "a writer got in while a reader held the lock";
  lock.unlock_shared();
  writer.join();
  EXPECT_TRUE(written.load());
}

}  // namespace
}  // namespace gatehouse::filters::cache
