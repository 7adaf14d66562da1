// S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction", SOSP 2023), by bytes:
// the eviction policy of the response cache. A new key goes into a small FIFO (10% of the
// capacity); one seen again while there moves to the main FIFO when it reaches the small queue's
// tail, the others leave and are remembered, by hash, in a ghost queue (flat_index.h); a key that
// comes back while remembered goes straight to main. Main is a FIFO with a second chance: a tail
// entry read since it was last there goes back to the head (up to three times), the others leave.
//
// Why not LRU or W-TinyLFU: one-hit wonders (most of a scan, most of a crawler's traffic) never
// reach main, so they cannot push out the popular entries, as they do in LRU; and a hit only bumps
// a counter, with no list to reorder, so the sharded store above this can serve hits under a
// shared lock. W-TinyLFU filters as well but needs its sketch updated on every access and an LRU
// window reordered on every hit.
//
// One instance is single-threaded for its mutators; find() may run concurrently with other
// find()s (the counter is atomic, its increments may be lost, which only makes it approximate).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <string>
#include <string_view>

#include "filters/cache/flat_index.h"
#include "filters/cache/pool.h"
#include "filters/cache/prefetch.h"

namespace gatehouse::filters::cache {

template <class V>
class S3Fifo {
 public:
  explicit S3Fifo(size_t capacity_bytes)
      : capacity_(capacity_bytes), small_target_(capacity_bytes / 10) {}
  S3Fifo(const S3Fifo&) = delete;
  S3Fifo& operator=(const S3Fifo&) = delete;

  // Each operation takes the key's key_hash(), or computes it: a caller that has it (the sharded
  // store, which picks the shard by it) hashes the key once.

  // The value stored for `key`, counting the read; null when there is none.
  const V* find(std::string_view key) const { return find(key, key_hash(key)); }
  const V* find(std::string_view key, size_t h) const {
    const Node* found = index_.find(key, h);
    if (!found) return nullptr;
    const Node& n = *found;
    uint8_t f = n.freq.load(std::memory_order_relaxed);
    if (f < 3) n.freq.store(f + 1, std::memory_order_relaxed);
    return &n.value;
  }

  // Stores `value` for `key` at `cost` bytes (replacing what was there, in its place), then
  // evicts until the total fits. False, with nothing stored, when `cost` alone is over capacity.
  bool insert(std::string_view key, V value, size_t cost) {
    return insert(key, key_hash(key), std::move(value), cost);
  }
  bool insert(std::string_view key, size_t h, V value, size_t cost) {
    if (cost > capacity_) {
      erase(key, h);
      return false;
    }
    if (Node* found = index_.find(key, h)) {
      Node& n = *found;
      (n.in_main ? main_bytes_ : small_bytes_) += cost - n.cost;  // unsigned: wraps back right
      n.value = std::move(value);
      n.cost = cost;
    } else {
      const bool returning = forget_ghost(h);
      auto& queue = returning ? main_ : small_;
      queue.emplace_front(key, h, std::move(value), cost, returning);
      queue.front().self = queue.begin();
      index_.insert(&queue.front());
      (returning ? main_bytes_ : small_bytes_) += cost;
    }
    while (small_bytes_ + main_bytes_ > capacity_) evict();
    return true;
  }

  // Asks for what inserting the key of hash `h` will read (its index slot, its ghost bucket, the
  // queues' tails an eviction reads), so that it arrives while the caller does other work: on a
  // large store each is a read of cold memory. Only reads, as find() does.
  void prefetch_insert(size_t h) const {
    index_.prefetch(h);
    ghost_.prefetch(h);
    if (!small_.empty()) cache::prefetch(&small_.back());
    if (!main_.empty()) cache::prefetch(&main_.back());
  }

  bool erase(std::string_view key) { return erase(key, key_hash(key)); }
  bool erase(std::string_view key, size_t h) {
    Node* found = index_.find(key, h);
    if (!found) return false;
    remove(found->self);
    return true;
  }

  // Removes every entry for which pred(key, value) is true; returns how many.
  template <class Pred>
  size_t erase_if(Pred pred) {
    size_t n = 0;
    for (auto* queue : {&small_, &main_}) {
      for (auto it = queue->begin(); it != queue->end();) {
        auto next = std::next(it);
        if (pred(std::string_view(it->key), it->value)) {
          remove(it);
          ++n;
        }
        it = next;
      }
    }
    return n;
  }

  size_t bytes() const { return small_bytes_ + main_bytes_; }
  size_t size() const { return index_.size(); }
  uint64_t evictions() const { return evictions_; }
  bool in_main(std::string_view key) const {  // for tests
    const Node* found = index_.find(key, key_hash(key));
    return found && found->in_main;
  }

 private:
  struct Node;
  // Front: the newest; nodes never move in memory. Their blocks are the pool's, as the entries'.
  using Queue = std::list<Node, pool::Allocator<Node>>;
  using Iter = typename Queue::iterator;
  struct Node {
    Node(std::string_view k, size_t h, V v, size_t c, bool main)
        : key(k), hash(h), value(std::move(v)), cost(c), in_main(main) {}
    pool::String key;  // kept as long as the entry, so in the pool too
    size_t hash;
    V value;
    size_t cost;
    Iter self;  // where it is in its queue (splicing it to the other keeps this valid)
    mutable std::atomic<uint8_t> freq{0};
    bool in_main;
  };

  void remove(Iter it) {
    (it->in_main ? main_bytes_ : small_bytes_) -= it->cost;
    index_.erase(&*it);
    (it->in_main ? main_ : small_).erase(it);
  }

  // The small queue gives up an entry while it holds its share (unless the entry just added is
  // all it holds), or when main is empty.
  void evict() {
    if ((small_bytes_ >= small_target_ && small_.size() > 1) || main_.empty()) {
      evict_small();
    } else {
      evict_main();
    }
  }

  void evict_small() {
    while (!small_.empty()) {
      Iter t = std::prev(small_.end());
      if (t->freq.load(std::memory_order_relaxed) > 1) {
        small_bytes_ -= t->cost;
        main_bytes_ += t->cost;
        t->in_main = true;
        main_.splice(main_.begin(), small_, t);
        continue;
      }
      remember_ghost(t->hash);
      remove(t);
      ++evictions_;
      return;
    }
  }

  void evict_main() {
    while (!main_.empty()) {
      Iter t = std::prev(main_.end());
      uint8_t f = t->freq.load(std::memory_order_relaxed);
      if (f > 0) {
        t->freq.store(f - 1, std::memory_order_relaxed);
        main_.splice(main_.begin(), main_, t);
        continue;
      }
      remove(t);
      ++evictions_;
      return;
    }
  }

  // The ghost queue remembers about as many evicted keys as the cache holds entries.
  void remember_ghost(uint64_t h) {
    ghost_.fit(index_.size());
    ghost_.remember(h);
  }
  bool forget_ghost(uint64_t h) { return ghost_.recall(h); }

  size_t capacity_, small_target_;
  size_t small_bytes_ = 0, main_bytes_ = 0;
  uint64_t evictions_ = 0;
  Queue small_, main_;
  FlatIndex<Node> index_;
  GhostTable ghost_;
};

}  // namespace gatehouse::filters::cache
