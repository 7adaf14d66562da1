// The store's hash tables, flat: open addressing with linear probing over one array of slots, at
// most half full, and backward-shift deletion (no tombstones). On a large, cold store a lookup
// reads one slot's cache line (the hash compared first) where a node-based table
// (std::unordered_map) reads the bucket, then each node of its chain, and an erase walks the chain
// again for the node before. Every miss the cache stores inserts a key, looks it up among the
// ghosts and, once the store is full, evicts one: all of it on cold memory.
//
//   FlatIndex<Node>: a key (with its hash) to the node that holds it; `Node` has `key` and `hash`,
//                    and the index never owns it.
//   GhostTable:      the hashes of keys recently evicted (S3-FIFO's ghost queue), in buckets of
//                    one cache line each.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace gatehouse::filters::cache {

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

// The slots and their probing, for a `Slot` with `hash` and `used()`.
template <class Slot>
class OpenTable {
 public:
  size_t size() const { return used_; }
  size_t slots() const { return slots_.size(); }
  // Asks for the line of `hash`'s home slot ahead of a probe.
  void prefetch(size_t hash) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[hash & mask_]);
  }

 protected:
  // The slot for which match(slot) is true in `hash`'s run, or null.
  template <class Match>
  Slot* find(size_t hash, Match match) const {
    if (slots_.empty()) return nullptr;
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (!s.used()) return nullptr;
      if (s.hash == hash && match(s)) return &s;
    }
  }
  // Room for one more (growing the array when it would be over half full): the empty slot where
  // `hash`'s run ends, which the caller fills.
  Slot& add(size_t hash) {
    if ((used_ + 1) * 2 > slots_.size()) grow();
    ++used_;
    return free_slot(hash);
  }
  // Empties `s` (a slot of this table). Backward shift: each later slot of the run whose home is
  // not between the hole and itself moves into the hole, so that every probe still reaches it
  // before an empty slot.
  void remove(Slot& s) {
    size_t i = static_cast<size_t>(&s - slots_.data());
    for (size_t j = (i + 1) & mask_; slots_[j].used(); j = (j + 1) & mask_) {
      const size_t home = slots_[j].hash & mask_;
      const bool reachable = i <= j ? (home > i && home <= j) : (home > i || home <= j);
      if (reachable) continue;
      slots_[i] = slots_[j];
      i = j;
    }
    slots_[i] = Slot{};
    --used_;
  }

 private:
  Slot& free_slot(size_t hash) {
    size_t i = hash & mask_;
    while (slots_[i].used()) i = (i + 1) & mask_;
    return slots_[i];
  }
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 64 : old.size() * 2, Slot{});
    mask_ = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.used()) free_slot(s.hash) = s;
    }
  }

  mutable std::vector<Slot> slots_;
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

// S3-FIFO's ghost queue, approximated: an evicted key's hash goes to the front of its bucket (eight
// hashes, one cache line), pushing the bucket's oldest out. With at least half as many buckets as
// the cache holds entries, a bucket gets two of the last `entries` evictions on average, so those
// are remembered all but rarely (eight would have to land on one bucket), and older ones fade as
// newer ones land on theirs: a FIFO about as long as the cache, as the paper sizes it. Remembering
// and recalling read one line each; an exact FIFO with a hash set beside it reads three scattered
// slots per miss (add, take the oldest, look up), on cold memory.
class GhostTable {
 public:
  void remember(uint64_t hash) {
    if (buckets_.empty()) return;
    uint64_t* h = buckets_[hash & mask_].hashes;
    std::memmove(h + 1, h, (kWays - 1) * sizeof *h);
    h[0] = tag(hash);
  }
  // Whether `hash` is remembered; if it is, it is forgotten.
  bool recall(uint64_t hash) {
    if (buckets_.empty()) return false;
    uint64_t* h = buckets_[hash & mask_].hashes;
    for (size_t i = 0; i < kWays; ++i) {
      if (h[i] != tag(hash)) continue;
      std::memmove(h + i, h + i + 1, (kWays - 1 - i) * sizeof *h);
      h[kWays - 1] = 0;
      return true;
    }
    return false;
  }
  // At least entries / 2 buckets (eight at least): the table doubles, keeping what it holds.
  void fit(size_t entries) {
    size_t n = buckets_.empty() ? 8 : buckets_.size();
    while (n < entries / 2) n *= 2;
    if (n == buckets_.size()) return;
    std::vector<Bucket> old = std::move(buckets_);
    buckets_.assign(n, Bucket{});
    mask_ = n - 1;
    for (const Bucket& b : old) {
      for (size_t i = kWays; i-- > 0;) {  // oldest first, so each bucket keeps its order
        if (b.hashes[i]) remember(b.hashes[i]);
      }
    }
  }
  // Asks for `hash`'s bucket ahead of a remember() or recall().
  void prefetch(uint64_t hash) const {
    if (!buckets_.empty()) __builtin_prefetch(&buckets_[hash & mask_]);
  }
  size_t buckets() const { return buckets_.size(); }  // for tests

 private:
  static constexpr size_t kWays = 8;
  struct alignas(64) Bucket {
    uint64_t hashes[kWays]{};  // newest first; 0: none
  };
  // Never 0, which marks an empty way; the low bits, which pick the bucket, as they are (a hash
  // that differs only in its highest bit collides).
  static uint64_t tag(uint64_t hash) { return hash | uint64_t{1} << 63; }

  std::vector<Bucket> buckets_;
  size_t mask_ = 0;
};

}  // namespace gatehouse::filters::cache
