#include "filters/cache/s3fifo.h"

#include <gtest/gtest.h>

#include <string>

namespace gatehouse::filters::cache {
namespace {

// Built with +=: GCC 12 warns (-Wrestrict, wrongly) at "literal" + std::string.
std::string key(int i, std::string prefix = "k") {
  prefix += std::to_string(i);
  return prefix;
}

TEST(S3Fifo, StoresFindsReplacesAndErases) {
  S3Fifo<int> c(1000);
  EXPECT_TRUE(c.insert("a", 1, 100));
  EXPECT_TRUE(c.insert("b", 2, 200));
  ASSERT_NE(c.find("a"), nullptr);
  EXPECT_EQ(*c.find("a"), 1);
  EXPECT_EQ(c.find("z"), nullptr);
  EXPECT_EQ(c.bytes(), 300u);
  EXPECT_TRUE(c.insert("a", 10, 50));  // replaced in place
  EXPECT_EQ(*c.find("a"), 10);
  EXPECT_EQ(c.bytes(), 250u);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_TRUE(c.erase("b"));
  EXPECT_FALSE(c.erase("b"));
  EXPECT_EQ(c.bytes(), 50u);
  EXPECT_EQ(c.size(), 1u);
}

TEST(S3Fifo, AnEntryLargerThanTheWholeCacheIsRefused) {
  S3Fifo<int> c(1000);
  EXPECT_TRUE(c.insert("a", 1, 10));
  EXPECT_FALSE(c.insert("big", 2, 1001));
  EXPECT_EQ(c.find("big"), nullptr);
  EXPECT_FALSE(c.insert("a", 3, 1001)) << "nor may a stored one grow past it";
  EXPECT_EQ(c.find("a"), nullptr) << "the old value is not served in its place";
  EXPECT_EQ(c.bytes(), 0u);
}

TEST(S3Fifo, NeverHoldsMoreThanItsCapacity) {
  S3Fifo<int> c(10'000);
  for (int i = 0; i < 5000; ++i) {
    c.insert(key(i), i, 1 + i % 97);
    if (i % 3 == 0) c.find(key(i / 2));
    ASSERT_LE(c.bytes(), 10'000u) << "after " << i;
  }
  EXPECT_GT(c.evictions(), 0u);
  size_t counted = 0;
  c.erase_if([&](std::string_view, int) {
    ++counted;
    return false;
  });
  EXPECT_EQ(counted, c.size());
}

// The point of S3-FIFO: a scan of keys read once flows through the small queue without pushing
// out the keys that are read again (an LRU of the same size would hold only the scan's last keys).
TEST(S3Fifo, AScanDoesNotEvictTheHotKeys) {
  S3Fifo<int> c(100);
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 50; ++i) {
      if (!c.find(key(i))) c.insert(key(i), i, 1);
    }
  }
  for (int i = 1000; i < 11000; ++i) c.insert(key(i), i, 1);  // the scan, 100x the cache
  int hot_left = 0;
  for (int i = 0; i < 50; ++i) hot_left += c.find(key(i)) != nullptr;
  EXPECT_EQ(hot_left, 50);
  EXPECT_LE(c.bytes(), 100u);
}

// Keys evicted from the small queue are remembered: inserted again, they go straight to main.
// The ghost table is an approximate FIFO (flat_index.h: each bucket keeps its newest sixteen, the
// bucket by a hash seeded per process), so the test evicts no more keys than one bucket holds:
// then none can be forgotten, whatever the seed, and every one comes back to main. (With 120
// keys evicted, a crowded bucket could forget some: one CI run saw 17 of 20 come back.)
TEST(S3Fifo, KeysThatComeBackSoonGoToMain) {
  S3Fifo<int> c(100);
  for (int i = 0; i < 8; ++i) c.insert(key(5000 + i), 1, 1);
  EXPECT_FALSE(c.in_main(key(5000)));
  // Fills the cache and pushes exactly those 8 out of small (the oldest), into the ghost table.
  for (int i = 0; i < 100; ++i) c.insert(key(i), i, 1);
  int back_in_main = 0;
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(c.find(key(5000 + i)), nullptr);
    c.insert(key(5000 + i), 2, 1);  // evicts one more key of small: 16 remembered at most
    back_in_main += c.in_main(key(5000 + i));
  }
  EXPECT_EQ(back_in_main, 8);
  for (int i = 300; i < 320; ++i) c.insert(key(i), i, 1);
  EXPECT_FALSE(c.in_main(key(300))) << "a key seen for the first time goes to small";
  // A key read twice while in the small queue moves to main when it reaches the tail.
  c.insert("twice", 3, 1);
  c.find("twice");
  c.find("twice");
  for (int i = 1000; i < 1100; ++i) c.insert(key(i), i, 1);
  EXPECT_TRUE(c.in_main("twice"));
  EXPECT_NE(c.find("twice"), nullptr);
}

TEST(S3Fifo, EraseIf) {
  S3Fifo<int> c(1000);
  for (int i = 0; i < 10; ++i) c.insert(key(i, "/a/"), i, 10);
  for (int i = 0; i < 5; ++i) c.insert(key(i, "/b/"), i, 10);
  EXPECT_EQ(c.erase_if([](std::string_view k, int) { return k.starts_with("/a/"); }), 10u);
  EXPECT_EQ(c.size(), 5u);
  EXPECT_EQ(c.bytes(), 50u);
  EXPECT_EQ(c.erase_if([](std::string_view, int v) { return v % 2 == 0; }), 3u);
  EXPECT_EQ(c.size(), 2u);
}

}  // namespace
}  // namespace gatehouse::filters::cache
