#include "filters/cache/store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace gatehouse::filters::cache {
namespace {

struct Entry {
  std::string body;
  std::string tag;
};
using TestStore = Store<Entry>;

std::string key(const char* prefix, int i) {
  std::string k = prefix;
  k += std::to_string(i);
  return k;
}

TEST(CacheStore, FindsWhatItStoresAndKeepsAHitAliveAfterItsEviction) {
  TestStore s(16 * 1000);  // 1000 bytes per shard
  ASSERT_TRUE(s.insert("/a", std::make_shared<Entry>(Entry{"hello", "t1"}), 100));
  auto hit = s.find("/a");
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->body, "hello");
  EXPECT_EQ(s.find("/b"), nullptr);
  EXPECT_TRUE(s.erase("/a"));
  EXPECT_EQ(s.find("/a"), nullptr);
  EXPECT_EQ(hit->body, "hello") << "the reader's copy outlives the store's";
  EXPECT_FALSE(s.insert("/big", std::make_shared<Entry>(), s.max_entry_bytes() + 1));
  EXPECT_EQ(s.stats().entries, 0u);
}

TEST(CacheStore, StaysWithinItsBytesAndPurgesByPredicate) {
  TestStore s(16 * 1000);
  for (int i = 0; i < 5000; ++i)
    s.insert(key("/p/", i), std::make_shared<Entry>(Entry{"x", i % 2 ? "odd" : "even"}), 50);
  auto st = s.stats();
  EXPECT_LE(st.bytes, 16u * 1000);
  EXPECT_GT(st.evictions, 0u);
  EXPECT_EQ(st.bytes, st.entries * 50);
  size_t odd = 0;
  s.erase_if([&](std::string_view, const Entry& e) {
    odd += e.tag == "odd";
    return false;
  });
  EXPECT_EQ(s.erase_if([](std::string_view, const Entry& e) { return e.tag == "odd"; }), odd);
  EXPECT_EQ(s.erase_if([](std::string_view k, const Entry&) { return k.starts_with("/p/"); }),
            st.entries - odd);
  EXPECT_EQ(s.stats().entries, 0u);
}

// Workers read, store and purge at once (run under TSan by make test-tsan).
TEST(CacheStore, ManyThreadsAtOnce) {
  TestStore s(16 * 4000);
  std::atomic<uint64_t> hits{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20000; ++i) {
        const std::string k = key("/k/", (i * 7 + t) % 300);
        if (auto e = s.find(k)) {
          hits += e->body.size() == 3;
        } else {
          s.insert(k, std::make_shared<Entry>(Entry{"abc", ""}), 40);
        }
        if (i % 5000 == 0)
          s.erase_if([](std::string_view k2, const Entry&) { return k2.ends_with("7"); });
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_GT(hits.load(), 0u);
  auto st = s.stats();
  EXPECT_LE(st.bytes, 16u * 4000);
  EXPECT_EQ(st.bytes, st.entries * 40);
}

}  // namespace
}  // namespace gatehouse::filters::cache
