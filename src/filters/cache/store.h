// The in-memory tier of the response cache: one per process, shared by every worker, bounded in
// bytes. Keys are spread over 16 shards, each an S3-FIFO (s3fifo.h) under its own reader-writer
// lock (a spinning one: spin_lock.h): a hit takes the lock shared (S3-FIFO reorders nothing on a
// hit), so hits on one shard from several workers do not wait for each other; only a store, an
// eviction or a purge takes it exclusively. Each shard holds a sixteenth of the bytes.
//
// Values are shared and immutable: a hit being written to a slow client keeps its entry alive
// after an eviction or a purge has dropped it from the store.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>

#include "filters/cache/s3fifo.h"
#include "filters/cache/spin_lock.h"

namespace gatehouse::filters::cache {

template <class Entry>
class Store {
 public:
  static constexpr size_t kShards = 16;
  using Ptr = std::shared_ptr<const Entry>;

  explicit Store(size_t max_bytes) : max_entry_(max_bytes / kShards) {
    for (auto& s : shards_) s = std::make_unique<Shard>(max_entry_);
  }

  // A key's hash, for the calls that take it: a caller that looks a key up and then stores it
  // hashes it once.
  static size_t hash(std::string_view key) { return key_hash(key); }

  Ptr find(std::string_view key) const { return find(key, hash(key)); }
  Ptr find(std::string_view key, size_t h) const {
    Shard& s = shard(h);
    std::shared_lock lock(s.rw);
    const Ptr* p = s.fifo.find(key, h);
    return p ? *p : nullptr;
  }
  // False when the entry is larger than a shard's share of the store (nothing is stored).
  bool insert(std::string_view key, Ptr entry, size_t cost) {
    return insert(key, hash(key), std::move(entry), cost);
  }
  bool insert(std::string_view key, size_t h, Ptr entry, size_t cost) {
    Shard& s = shard(h);
    std::unique_lock lock(s.rw);
    return s.fifo.insert(key, h, std::move(entry), cost);
  }
  // Before an insert of the key of hash `h` (a miss whose response will be stored, while its head
  // goes to the client): what the insert will read is asked for now (S3Fifo::prefetch_insert).
  void prefetch_insert(size_t h) const {
    Shard& s = shard(h);
    std::shared_lock lock(s.rw);
    s.fifo.prefetch_insert(h);
  }
  bool erase(std::string_view key) {
    const size_t h = hash(key);
    Shard& s = shard(h);
    std::unique_lock lock(s.rw);
    return s.fifo.erase(key, h);
  }
  // Drops every entry for which pred(key, entry) is true, shard by shard; returns how many.
  size_t erase_if(const std::function<bool(std::string_view, const Entry&)>& pred) {
    size_t n = 0;
    for (auto& s : shards_) {
      std::unique_lock lock(s->rw);
      n += s->fifo.erase_if([&](std::string_view k, const Ptr& e) { return pred(k, *e); });
    }
    return n;
  }

  struct Stats {
    size_t bytes = 0, entries = 0;
    uint64_t evictions = 0;
  };
  Stats stats() const {
    Stats st;
    for (const auto& s : shards_) {
      std::shared_lock lock(s->rw);
      st.bytes += s->fifo.bytes();
      st.entries += s->fifo.size();
      st.evictions += s->fifo.evictions();
    }
    return st;
  }
  // The largest entry the store can hold: a shard's share.
  size_t max_entry_bytes() const { return max_entry_; }

 private:
  using Fifo = S3Fifo<Ptr>;
  struct Shard {
    explicit Shard(size_t bytes) : fifo(bytes) {}
    mutable SharedSpinLock rw;
    Fifo fifo;
  };
  // The hash's high bits: its low bits pick the key's bucket within the shard.
  Shard& shard(size_t hash) const { return *shards_[(hash >> 56) % kShards]; }

  size_t max_entry_;
  std::array<std::unique_ptr<Shard>, kShards> shards_;
};

}  // namespace gatehouse::filters::cache
