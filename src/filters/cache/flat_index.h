// The store's hash tables, flat: open addressing with linear probing over one array of slots, at
// most half full, and backward-shift deletion (no tombstones). On a large, cold store a lookup
// reads a line of tag bytes and at most one slot's line (the hash compared first), or none when
// the key is not there, where a node-based table
// (std::unordered_map) reads the bucket, then each node of its chain, and an erase walks the chain
// again for the node before. Every miss the cache stores inserts a key, looks it up among the
// ghosts and, once the store is full, evicts one: all of it on cold memory.
//
//   FlatIndex<Node>: a key (with its hash) to the node that holds it; `Node` has `key` and `hash`,
//                    and the index never owns it.
//   GhostTable:      tags of the keys recently evicted (S3-FIFO's ghost queue), in buckets of
//                    one cache line each.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "filters/cache/pool.h"
#include "filters/cache/prefetch.h"

namespace gatehouse::filters::cache {

// The tables' arrays, in the pool's table memory (huge pages: pool.h).
template <class T>
using Array = std::vector<T, pool::TableAllocator<T>>;

// This process's hash key: random, drawn once.
uint64_t key_hash_seed();

// The hash every table of the cache keys by: a miss computes it once, for the store (its shard,
// from the high bits, and its slot, from the low ones) and the flights alike. Keyed by a seed
// drawn at start, as the keys are the clients' URLs: with a fixed function (std::hash is
// MurmurHash with a fixed seed), a client could choose URLs that all fall into one probe run and
// make every miss walk it. Sixteen bytes at a time are folded by a 128-bit multiply, the
// construction of wyhash, a few times faster than std::hash's on a URL.
inline size_t key_hash(std::string_view key) {
  constexpr uint64_t k1 = 0xa0761d6478bd642full, k2 = 0xe7037ed1a0b428dbull;
  auto fold = [](uint64_t a, uint64_t b) {
    const unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
    return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
  };
  auto load = [](const char* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  };
  static const uint64_t seed = key_hash_seed();
  const char* p = key.data();
  size_t n = key.size();
  uint64_t h = seed ^ fold(n ^ k1, k2);
  for (; n > 16; p += 16, n -= 16) h = fold(load(p) ^ k1, load(p + 8) ^ h);
  uint64_t a = 0, b = 0;
  if (n >= 8) {  // the last 8 to 16 bytes, as two words that may overlap
    a = load(p);
    b = load(p + n - 8);
  } else if (n >= 4) {  // 4 to 7: two 4-byte words that may overlap
    uint32_t x, y;
    std::memcpy(&x, p, 4);
    std::memcpy(&y, p + n - 4, 4);
    a = x;
    b = y;
  } else if (n > 0) {  // 1 to 3: the first, middle and last bytes
    a = uint64_t{static_cast<unsigned char>(p[0])} << 16 |
        uint64_t{static_cast<unsigned char>(p[n / 2])} << 8 | static_cast<unsigned char>(p[n - 1]);
  }
  return fold(fold(a ^ k2, b ^ h) ^ k1, h ^ k2);
}

// The slots and their probing, for a `Slot` with `hash` and `used()`. Beside the slots, a byte
// per slot: 0 for an empty one, else a tag of its hash (seven bits the slot's place does not come
// from). The tags are a sixteenth of the slots' bytes, so on a large store the processor's
// caches hold them far more often than the slots: a probe for a key that is not there (every
// miss) reads the tags alone, and one for a key that is reads the one slot whose tag matches.
template <class Slot>
class OpenTable {
 public:
  size_t size() const { return used_; }
  size_t slots() const { return slots_.size(); }
  // Asks for the lines of `hash`'s home slot and its tag ahead of a probe.
  void prefetch(size_t hash) const {
    if (slots_.empty()) return;
    cache::prefetch(&tags_[hash & mask_]);
    cache::prefetch(&slots_[hash & mask_]);
  }

 protected:
  // The slot for which match(slot) is true in `hash`'s run, or null.
  template <class Match>
  Slot* find(size_t hash, Match match) const {
    if (slots_.empty()) return nullptr;
    const uint8_t want = tag(hash);
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const uint8_t t = tags_[i];
      if (!t) return nullptr;
      if (t != want) continue;
      Slot& s = slots_[i];
      if (s.hash == hash && match(s)) return &s;
    }
  }
  // Room for one more (growing the array when it would be over half full): the empty slot where
  // `hash`'s run ends, tagged, which the caller fills.
  Slot& add(size_t hash) {
    if ((used_ + 1) * 2 > slots_.size()) grow();
    ++used_;
    return take_free(hash);
  }
  // Empties `s` (a slot of this table). Backward shift: each later slot of the run whose home is
  // not between the hole and itself moves into the hole, so that every probe still reaches it
  // before an empty slot.
  void remove(Slot& s) {
    size_t i = static_cast<size_t>(&s - slots_.data());
    for (size_t j = (i + 1) & mask_; tags_[j]; j = (j + 1) & mask_) {
      const size_t home = slots_[j].hash & mask_;
      const bool reachable = i <= j ? (home > i && home <= j) : (home > i || home <= j);
      if (reachable) continue;
      slots_[i] = slots_[j];
      tags_[i] = tags_[j];
      i = j;
    }
    slots_[i] = Slot{};
    tags_[i] = 0;
    --used_;
  }

 private:
  // Bits 48 to 54: neither the slot's place (the low bits, below 2^48 slots) nor the store's
  // shard (56 to 59); the high bit marks the slot used.
  static uint8_t tag(size_t hash) { return static_cast<uint8_t>(0x80 | ((hash >> 48) & 0x7f)); }
  Slot& take_free(size_t hash) {
    size_t i = hash & mask_;
    while (tags_[i]) i = (i + 1) & mask_;
    tags_[i] = tag(hash);
    return slots_[i];
  }
  void grow() {
    Array<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 64 : old.size() * 2, Slot{});
    tags_.assign(slots_.size(), 0);
    mask_ = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.used()) take_free(s.hash) = s;
    }
  }

  mutable Array<Slot> slots_;
  Array<uint8_t> tags_;
  size_t mask_ = 0;
  size_t used_ = 0;
};

template <class Node>
struct IndexSlot {
  size_t hash = 0;
  Node* node = nullptr;
  bool used() const { return node != nullptr; }
};

template <class Node>
class FlatIndex : public OpenTable<IndexSlot<Node>> {
  using Base = OpenTable<IndexSlot<Node>>;

 public:
  Node* find(std::string_view key, size_t hash) const {
    auto* s = Base::find(hash, [&](const IndexSlot<Node>& s) { return s.node->key == key; });
    return s ? s->node : nullptr;
  }
  // `node`'s key must not be in the index yet.
  void insert(Node* node) { Base::add(node->hash) = {node->hash, node}; }
  // `node` must be in the index.
  void erase(const Node* node) {
    Base::remove(*Base::find(node->hash, [&](const IndexSlot<Node>& s) { return s.node == node; }));
  }
};

// S3-FIFO's ghost queue, approximated: an evicted key goes to the front of its bucket (sixteen
// 32-bit tags, one cache line), pushing the bucket's oldest out. With at least an eighth as many
// buckets as the cache holds entries, a bucket gets eight of the last `entries` evictions on
// average (at most twice the room it has), so those are remembered all but rarely (seventeen would
// have to land on one bucket), and older ones fade as newer ones land on theirs: a FIFO about as
// long as the cache, as the paper sizes it. Remembering and recalling read one line each; an exact
// FIFO with a hash set beside it reads three scattered slots per miss (add, take the oldest, look
// up), on cold memory. Tags, not whole hashes, so that the table is small enough to stay in the
// processor's caches (8 to 16 bytes per entry): two keys of one bucket with the same 32 bits of tag
// are taken for each other, which admits about one key in 2^27 to main instead of small.
class GhostTable {
 public:
  void remember(uint64_t hash) {
    if (buckets_.empty()) return;
    uint32_t* t = buckets_[hash & mask_].tags;
    std::memmove(t + 1, t, (kWays - 1) * sizeof *t);
    t[0] = tag(hash);
  }
  // Whether `hash` is remembered; if it is, it is forgotten.
  bool recall(uint64_t hash) {
    if (buckets_.empty()) return false;
    uint32_t* t = buckets_[hash & mask_].tags;
    const uint32_t want = tag(hash);
    for (size_t i = 0; i < kWays; ++i) {
      if (t[i] != want) continue;
      std::memmove(t + i, t + i + 1, (kWays - 1 - i) * sizeof *t);
      t[kWays - 1] = 0;
      return true;
    }
    return false;
  }
  // At least entries / 8 buckets (eight at least): the table doubles, keeping what it holds.
  void fit(size_t entries) {
    size_t n = buckets_.empty() ? 8 : buckets_.size();
    while (n < entries / 8) n *= 2;
    if (n == buckets_.size()) return;
    Array<Bucket> old = std::move(buckets_);
    buckets_.assign(n, Bucket{});
    mask_ = n - 1;
    // A tag does not say which of the larger table's buckets its hash picks: what a bucket
    // remembered goes to every bucket that can be its own (the others never recall it: that
    // would take another key of theirs with its tag), oldest first, so each keeps its order.
    for (size_t b = 0; b < old.size(); ++b) {
      for (size_t i = kWays; i-- > 0;) {
        const uint32_t t = old[b].tags[i];
        if (!t) continue;
        for (size_t to = b; to < n; to += old.size()) push(buckets_[to], t);
      }
    }
  }
  // Asks for `hash`'s bucket ahead of a remember() or recall().
  void prefetch(uint64_t hash) const {
    if (!buckets_.empty()) cache::prefetch(&buckets_[hash & mask_]);
  }
  size_t buckets() const { return buckets_.size(); }  // for tests
  static constexpr size_t kWays = 16;

 private:
  struct alignas(64) Bucket {
    uint32_t tags[kWays]{};  // newest first; 0: none
  };
  // Bits the bucket's index does not use (below 2^24 buckets) nor the store's shard (56 to 59);
  // never 0, which marks an empty way.
  static uint32_t tag(uint64_t hash) { return static_cast<uint32_t>(hash >> 24) | 1; }
  static void push(Bucket& b, uint32_t t) {
    std::memmove(b.tags + 1, b.tags, (kWays - 1) * sizeof *b.tags);
    b.tags[0] = t;
  }

  Array<Bucket> buckets_;
  size_t mask_ = 0;
};

}  // namespace gatehouse::filters::cache
