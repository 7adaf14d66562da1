// The store's hash tables, flat: open addressing with linear probing over one array of slots, at
// most half full, and backward-shift deletion (no tombstones). On a large, cold store a lookup
// reads one slot's cache line (the hash compared first) where a node-based table
// (std::unordered_map) reads the bucket, then each node of its chain, and an erase walks the chain
// again for the node before. Every miss the cache stores inserts a key, looks it up among the
// ghosts and, once the store is full, evicts one: all of it on cold memory.
//
//   FlatIndex<Node>: a key (with its hash) to the node that holds it; `Node` has `key` and `hash`,
//                    and the index never owns it.
//   HashCounts:      how many times each hash is held (S3-FIFO's ghost queue remembers evicted
//                    keys by hash).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

namespace gatehouse::filters::cache {

// The hash every table of the cache keys by: a miss computes it once, for the store (its shard
// and slot) and the flights alike.
inline size_t key_hash(std::string_view key) { return std::hash<std::string_view>{}(key); }

// The slots and their probing, for a `Slot` with `hash` and `used()`.
template <class Slot>
class OpenTable {
 public:
  size_t size() const { return used_; }
  size_t slots() const { return slots_.size(); }

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

struct CountSlot {
  size_t hash = 0;
  uint32_t count = 0;
  bool used() const { return count != 0; }
};

class HashCounts : public OpenTable<CountSlot> {
 public:
  void add(size_t hash) {
    if (CountSlot* s = find(hash))
      ++s->count;
    else
      OpenTable::add(hash) = {hash, 1};
  }
  // One of `hash`'s counts goes; false when it had none.
  bool take(size_t hash) {
    CountSlot* s = find(hash);
    if (!s) return false;
    if (--s->count == 0) remove(*s);
    return true;
  }
  uint32_t count(size_t hash) const {
    const CountSlot* s = find(hash);
    return s ? s->count : 0;
  }

 private:
  CountSlot* find(size_t hash) const {
    return OpenTable::find(hash, [](const CountSlot&) { return true; });
  }
};

}  // namespace gatehouse::filters::cache
