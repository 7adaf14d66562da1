#include "filters/cache/pool.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace gatehouse::filters::cache::pool {
namespace {

TEST(CachePool, BlockSizesRoundUpByAtMostAnEighth) {
  EXPECT_EQ(block_size(1), 16u);
  EXPECT_EQ(block_size(16), 16u);
  EXPECT_EQ(block_size(17), 32u);
  EXPECT_EQ(block_size(304), 304u);
  EXPECT_EQ(block_size(305), 336u);
  EXPECT_EQ(block_size(1024 + 40), 1072u);  // a 1 KiB body and its block's header
  EXPECT_EQ(block_size(1073), 1200u);
  EXPECT_EQ(block_size(16384 + 40), 16432u);
  EXPECT_EQ(block_size(kMaxPooled), kMaxPooled);
  EXPECT_EQ(block_size(kMaxPooled + 1), kMaxPooled + 1);  // not pooled: its own size
  for (size_t n = 305; n <= kMaxPooled; n += 97) {
    const size_t b = block_size(n);
    EXPECT_GE(b, n);
    EXPECT_LE(b - n, n / 8) << n;
    EXPECT_EQ(block_size(b), b) << n;  // a class's size is in its own class
  }
}

#if !defined(__SANITIZE_ADDRESS__)
TEST(CachePool, AFreedBlockIsTheNextOfItsClassAndOthersAreNot) {
  void* a = allocate(1500);
  std::memset(a, 'x', block_size(1500));  // the whole class is the caller's
  const size_t before = kept_bytes();
  deallocate(a, 1500);
  EXPECT_EQ(kept_bytes(), before + block_size(1500));
  void* other = allocate(3000);  // another class: not that block
  EXPECT_NE(other, a);
  void* again = allocate(1480);  // the same class: the block just freed
  EXPECT_EQ(again, a);
  EXPECT_EQ(kept_bytes(), before);
  deallocate(again, 1480);
  deallocate(other, 3000);
}

TEST(CachePoolTables, AreDistinctWritableAndAFreedOneIsTheNextOfItsSize) {
  // Sizes from below kTableMin (the general allocator's) to several chunks: none overlaps another.
  std::vector<std::pair<char*, size_t>> held;
  for (size_t bytes : {size_t{4096}, kTableMin, kTableMin * 3, size_t{1} << 20, size_t{2} << 20,
                       size_t{8} << 20, kTableMin, size_t{512} << 10}) {
    auto* t = static_cast<char*>(table_allocate(bytes));
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t) % 64, 0u) << bytes;
    std::memset(t, 0x5a, bytes);
    for (const auto& [other, size] : held)
      EXPECT_TRUE(t + bytes <= other || other + size <= t) << bytes << " overlaps " << size;
    held.emplace_back(t, bytes);
  }
#if !defined(__SANITIZE_ADDRESS__)
  // A freed table is the next of its size (the store's tables grow: another shard takes it).
  auto [first, size] = held[1];
  table_deallocate(first, size);
  EXPECT_EQ(table_allocate(size), first);
  auto [big, big_size] = held[5];
  table_deallocate(big, big_size);
  EXPECT_EQ(table_allocate(big_size), big);
#endif
  for (const auto& [t, size] : held) table_deallocate(t, size);
}

TEST(CachePool, KeepsAtMostItsBoundPerThread) {
  std::thread([] {
    std::vector<void*> blocks;
    const size_t n = 2 * kMaxKeptBytes / kMaxPooled;
    for (size_t i = 0; i < n; ++i) blocks.push_back(allocate(kMaxPooled));
    for (void* b : blocks) deallocate(b, kMaxPooled);
    EXPECT_LE(kept_bytes(), kMaxKeptBytes);
    EXPECT_GE(kept_bytes(), kMaxKeptBytes - kMaxPooled);
  }).join();
}

// Blocks a thread cannot keep (past its bound, or when it exits) are the next any thread takes,
// before it carves new ones: the pool holds at most what the cache held at once.
TEST(CachePool, BlocksNotKeptAreTakenByOtherThreads) {
  std::set<void*> given;
  std::thread([&] {
    std::vector<void*> blocks;
    const size_t n = 2 * kMaxKeptBytes / kMaxPooled;
    for (size_t i = 0; i < n; ++i) blocks.push_back(allocate(kMaxPooled));
    for (void* b : blocks) deallocate(b, kMaxPooled);
    given.insert(blocks.begin(), blocks.end());
  }).join();
  std::thread([&] {
    std::vector<void*> taken;
    for (int i = 0; i < 4; ++i) taken.push_back(allocate(kMaxPooled - 100));
    for (void* b : taken) {
      EXPECT_TRUE(given.count(b)) << "a block the first thread gave up";
      deallocate(b, kMaxPooled - 100);
    }
  }).join();
}
#endif

TEST(CachePool, ServesContainersAndSharedObjects) {
  String s(5000, 'a');
  s += "tail";
  EXPECT_EQ(s.size(), 5004u);
  auto p = std::allocate_shared<std::vector<int, Allocator<int>>>(Allocator<int>{}, 100, 7);
  EXPECT_EQ(p->at(99), 7);
  // A block freed on another thread goes to that thread's lists, and is good there.
  std::thread([q = std::move(p)]() mutable { q.reset(); }).join();
}

}  // namespace
}  // namespace gatehouse::filters::cache::pool
