#include "filters/cache/flat_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace gatehouse::filters::cache {
namespace {

struct Node {
  std::string key;
  size_t hash;
};

// The keys' hash: the same for the same key; different for URLs that differ in one byte at any
// place and length (each way the function reads a tail); spread evenly over both the slots (low
// bits) and the shards (high bits) for URLs that differ only in a counter.
TEST(KeyHash, SameKeySameHashAndUrlsSpreadOverSlotsAndShards) {
  const std::string url = "https://shop.example/catalogue/items?page=12&sort=price&n=";
  EXPECT_EQ(key_hash(url), key_hash(std::string(url)));
  std::set<size_t> seen;
  for (size_t len = 0; len <= url.size(); ++len) {
    std::string k = url.substr(0, len);
    ASSERT_TRUE(seen.insert(key_hash(k)).second) << len;
    for (size_t at = 0; at < len; ++at) {
      std::string other = k;
      other[at] ^= 1;
      ASSERT_NE(key_hash(other), key_hash(k)) << len << " " << at;
    }
  }
  constexpr size_t kUrls = 1 << 16, kSlots = 1024, kShards = 16;
  std::vector<size_t> slots(kSlots), shards(kShards);
  std::set<size_t> all;
  for (size_t i = 0; i < kUrls; ++i) {
    const size_t h = key_hash(url + std::to_string(i));
    ++slots[h % kSlots];
    ++shards[(h >> 56) % kShards];  // as the store picks a shard
    all.insert(h);
  }
  EXPECT_EQ(all.size(), kUrls) << "no two of them share a hash";
  const size_t per_slot = kUrls / kSlots, per_shard = kUrls / kShards;
  EXPECT_LT(*std::max_element(slots.begin(), slots.end()), per_slot * 2);
  for (size_t n : shards) EXPECT_NEAR(static_cast<double>(n), per_shard, per_shard * 0.1);
}

TEST(FlatIndex, FindsInsertedKeysAndForgetsErasedOnes) {
  FlatIndex<Node> index;
  Node a{"a", 1}, b{"b", 2};
  EXPECT_EQ(index.find("a", 1), nullptr);
  index.insert(&a);
  index.insert(&b);
  EXPECT_EQ(index.find("a", 1), &a);
  EXPECT_EQ(index.find("b", 2), &b);
  EXPECT_EQ(index.find("a", 2), nullptr) << "the hash is compared first";
  index.erase(&a);
  EXPECT_EQ(index.find("a", 1), nullptr);
  EXPECT_EQ(index.find("b", 2), &b);
  EXPECT_EQ(index.size(), 1u);
}

// Three keys in one run (one home slot): two whose tags (hash bits 48 to 54) differ, and two with
// one tag whose hashes differ elsewhere. Each is found by its own hash alone, and an erase in the
// middle of the run moves the tag with its slot.
TEST(FlatIndex, TagsSkipOtherKeysOfARunAndMoveWithTheirSlots) {
  FlatIndex<Node> index;
  const size_t home = 5;
  Node a{"a", home | size_t{1} << 48}, b{"b", home | size_t{2} << 48},
      c{"c", home | size_t{1} << 48 | size_t{1} << 30};
  for (Node* n : {&a, &b, &c}) index.insert(n);
  EXPECT_EQ(index.find("a", a.hash), &a);
  EXPECT_EQ(index.find("b", b.hash), &b);
  EXPECT_EQ(index.find("c", c.hash), &c);
  EXPECT_EQ(index.find("a", b.hash), nullptr) << "another tag";
  EXPECT_EQ(index.find("c", a.hash), nullptr) << "one tag, another hash";
  EXPECT_EQ(index.find("d", home | size_t{3} << 48), nullptr) << "the run ends at an empty slot";
  index.erase(&b);
  EXPECT_EQ(index.find("a", a.hash), &a);
  EXPECT_EQ(index.find("c", c.hash), &c) << "shifted back, with its tag";
  EXPECT_EQ(index.find("b", b.hash), nullptr);
  index.erase(&a);
  EXPECT_EQ(index.find("c", c.hash), &c);
  EXPECT_EQ(index.size(), 1u);
}

// Keys whose hashes share a few low bits collide into long runs that wrap around the array's
// end; erasing from them must leave every other key findable (backward-shift deletion), against
// a map as the reference, through growth from 64 slots.
TEST(FlatIndex, AgreesWithAMapThroughCollisionsWrapAroundAndGrowth) {
  std::mt19937_64 rng(7);
  FlatIndex<Node> index;
  std::map<std::string, std::unique_ptr<Node>> live;
  for (int round = 0; round < 20000; ++round) {
    const std::string key = "k" + std::to_string(rng() % 600);
    // Few distinct home slots: half in the last four of the array, whatever its size, so that
    // their run wraps around to its start; half at slot 3, where that run arrives.
    const size_t spread = std::hash<std::string>{}(key) % 4;
    const size_t hash = rng() % 2 ? ~size_t{0} - spread : 3 + spread * 4096;
    auto it = live.find(key);
    if (it == live.end()) {
      auto node = std::make_unique<Node>(Node{key, hash});
      index.insert(node.get());
      live.emplace(key, std::move(node));
    } else if (rng() % 2) {
      index.erase(it->second.get());
      live.erase(it);
    }
    if (round % 97 == 0) {
      for (const auto& [k, n] : live) ASSERT_EQ(index.find(k, n->hash), n.get()) << k;
      ASSERT_EQ(index.size(), live.size());
    }
  }
  EXPECT_GE(index.slots(), 2 * index.size()) << "at most half full";
}

// The ghost table: a remembered hash is recalled once; a bucket holds its newest sixteen (hashes
// chosen to share one bucket: the low bits pick it, and the high ones make the tag); growing keeps
// what it holds.
TEST(GhostTable, RemembersRecallsOnceAndKeepsEachBucketsNewestSixteen) {
  auto hash = [](uint64_t bucket, uint64_t tag) { return bucket | tag << 32; };
  GhostTable g;
  EXPECT_FALSE(g.recall(42));  // nothing yet, not even buckets
  g.fit(64);
  ASSERT_EQ(g.buckets(), 8u);
  g.remember(hash(2, 42));
  EXPECT_TRUE(g.recall(hash(2, 42)));
  EXPECT_FALSE(g.recall(hash(2, 42)));
  g.remember(hash(3, 7));
  EXPECT_FALSE(g.recall(hash(3, 8))) << "another tag";
  EXPECT_FALSE(g.recall(hash(4, 7))) << "another bucket";
  EXPECT_TRUE(g.recall(hash(3, 7)));

  const size_t ways = GhostTable::kWays;
  for (uint64_t k = 0; k <= ways; ++k) g.remember(hash(2, 100 + k));  // one bucket, one too many
  EXPECT_FALSE(g.recall(hash(2, 100))) << "the oldest was pushed out";
  for (uint64_t k = 1; k <= ways; ++k) EXPECT_TRUE(g.recall(hash(2, 100 + k))) << k;

  for (uint64_t b = 0; b < 8; ++b) g.remember(hash(b, 200 + b));
  g.fit(8000);
  EXPECT_EQ(g.buckets(), 1024u);
  for (uint64_t b = 0; b < 8; ++b) {
    EXPECT_TRUE(g.recall(hash(b, 200 + b))) << b;
    EXPECT_TRUE(g.recall(hash(b + 8 * 37, 200 + b))) << "a hash the grown table puts elsewhere";
  }
  g.remember(hash(5, 300));
  g.fit(10);  // never shrinks
  EXPECT_EQ(g.buckets(), 1024u);
  EXPECT_TRUE(g.recall(hash(5, 300)));
}

// Sized for `entries`, the table remembers the last `entries` hashes (random ones, as the keys'
// are) all but rarely: seventeen of them would have to land on one bucket, where eight land on
// average at the tightest size (an eighth as many buckets as entries).
TEST(GhostTable, RemembersAboutAsManyAsTheCacheHolds) {
  std::mt19937_64 rng(7);
  GhostTable g;
  constexpr size_t kEntries = 4096;
  g.fit(kEntries);
  ASSERT_EQ(g.buckets(), kEntries / 8);
  std::vector<uint64_t> hashes(kEntries);
  for (auto& h : hashes) g.remember(h = rng());
  size_t recalled = 0;
  for (uint64_t h : hashes) recalled += g.recall(h);
  EXPECT_GE(recalled, kEntries * 995 / 1000);
  // And not what it was not given.
  size_t strangers = 0;
  for (size_t i = 0; i < kEntries; ++i) strangers += g.recall(rng());
  EXPECT_EQ(strangers, 0u);
}

}  // namespace
}  // namespace gatehouse::filters::cache
