// The memory the cache keeps (entries, their fields and bodies, the store's nodes and keys) and
// what a miss makes on the way (its pending state, its flight), in blocks of size classes, from
// free lists each thread keeps for itself.
//
// Why not the general allocator: a full store evicts one entry for each it stores, so every miss
// frees blocks of about the sizes it then asks for, on memory that has gone cold. glibc's malloc
// keeps only 7 freed blocks per size for a thread (its tcache), and none above 1032 bytes; the rest
// go to bins that coalesce with their (cold) neighbours and are sorted again on the next request:
// 16% of the miss path's CPU (perf, bench/run.sh UNIQUE_URLS=1), 4% with the pool. Here a freed
// block goes, as it is, to the front of its class's list, and the next request of that class takes
// it back: the block an eviction just touched.
//
// Blocks are carved from chunks of 2 MiB backed by huge pages where the kernel has them (pool.cc
// says why), and never go back to the general allocator: a thread keeps at most kMaxKeptBytes of
// freed blocks, and gives the rest (and all it kept, when it exits) to lists that every thread
// takes from before it carves. Blocks larger than kMaxPooled (whose cost is their bytes, not their
// allocation) are the general allocator's. Sanitizer builds go to the general allocator for every
// block, so that its checks see them all.
#pragma once

#include <bit>
#include <cstddef>
#include <new>
#include <string>

namespace gatehouse::filters::cache::pool {

inline constexpr size_t kMaxPooled = (size_t{64} << 10) + 48;  // 64 KiB of body, and a little
inline constexpr size_t kMaxKeptBytes = size_t{4} << 20;

namespace detail {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kPassThrough = true;
#else
inline constexpr bool kPassThrough = false;
#endif

// Classes: every 16 bytes up to 304, then 8 per doubling (a block wastes less than an eighth),
// each 48 bytes over the round size: what is stored is often a round size of bytes plus a little
// (a 16 KiB body and its block's 40-byte header, entry.h), which would otherwise take the next
// class.
inline constexpr size_t kSmallStep = 16, kOver = 48, kSmallMax = 256 + kOver, kPerDoubling = 8;
inline constexpr size_t kSmallClasses = kSmallMax / kSmallStep;
inline constexpr size_t kFirstDoubling = 8;  // the first class above kSmallMax: 2^8 plus a step
inline constexpr size_t kClasses =
    kSmallClasses + kPerDoubling * (std::bit_width(kMaxPooled - kOver - 1) - kFirstDoubling);

constexpr size_t class_of(size_t bytes) {
  if (bytes <= kSmallMax) return bytes == 0 ? 0 : (bytes - 1) / kSmallStep;
  const size_t m = bytes - kOver;
  const size_t doubling = std::bit_width(m - 1) - 1;  // 2^doubling < m <= 2^(doubling+1)
  const size_t step = size_t{1} << (doubling - 3);
  const size_t sub = (m - (size_t{1} << doubling) - 1) / step;  // 0..7
  return kSmallClasses + (doubling - kFirstDoubling) * kPerDoubling + sub;
}

constexpr size_t size_of_class(size_t c) {
  if (c < kSmallClasses) return (c + 1) * kSmallStep;
  const size_t doubling = kFirstDoubling + (c - kSmallClasses) / kPerDoubling;
  const size_t sub = (c - kSmallClasses) % kPerDoubling;
  return (size_t{1} << doubling) + (sub + 1) * (size_t{1} << (doubling - 3)) + kOver;
}

struct FreeBlock {
  FreeBlock* next;
};

// A thread's free lists. Plain data, so that a worker reaches them without a call: the thread's
// first slow path registers what gives the blocks back when it exits (`owned`).
struct Lists {
  FreeBlock* heads[kClasses];
  size_t kept;  // bytes in all lists
  bool owned;
};
extern constinit thread_local Lists lists;

void* allocate_slow(size_t bytes);
void deallocate_slow(void* block, size_t bytes) noexcept;

}  // namespace detail

// A block of at least `bytes`, and the return of one allocate(bytes) gave.
inline void* allocate(size_t bytes) {
  using namespace detail;
  if (!kPassThrough && bytes <= kMaxPooled) {
    const size_t c = class_of(bytes);
    if (FreeBlock* block = lists.heads[c]) {
      lists.heads[c] = block->next;
      lists.kept -= size_of_class(c);
      return block;
    }
  }
  return allocate_slow(bytes);
}
inline void deallocate(void* block, size_t bytes) noexcept {
  using namespace detail;
  if (!kPassThrough && block && bytes <= kMaxPooled && lists.owned) {
    const size_t c = class_of(bytes);
    if (lists.kept + size_of_class(c) <= kMaxKeptBytes) {
      lists.heads[c] = new (block) FreeBlock{lists.heads[c]};
      lists.kept += size_of_class(c);
      return;
    }
  }
  deallocate_slow(block, bytes);
}
// What a block for `bytes` takes: its size class (bytes itself above kMaxPooled).
constexpr size_t block_size(size_t bytes) {
  return bytes > kMaxPooled ? bytes : detail::size_of_class(detail::class_of(bytes));
}
// Freed blocks this thread keeps, in bytes (for tests).
inline size_t kept_bytes() { return detail::lists.kept; }

// For the standard containers and std::allocate_shared.
template <class T>
struct Allocator {
  using value_type = T;
  Allocator() = default;
  template <class U>
  Allocator(const Allocator<U>&) noexcept {}  // NOLINT(google-explicit-constructor): rebinding
  T* allocate(size_t n) { return static_cast<T*>(pool::allocate(n * sizeof(T))); }
  void deallocate(T* p, size_t n) noexcept { pool::deallocate(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const Allocator<U>&) const noexcept {
    return true;
  }
};

// The store's tables (its index's slots and tags, its ghost buckets): arrays of a power of two
// bytes, which a miss reads at one random line each. From kTableMin up they are carved from huge
// pages as the blocks are (pool.cc), so that such a read, and the prefetch that asks for it
// ahead, is not also a page walk; smaller ones, and sanitizer builds, use the general allocator.
// Every table is aligned to a cache line.
// A freed table is kept for the next table of its size and never given back: as the tables
// double, the smaller sizes stay behind, up to as much again as the tables take.
inline constexpr size_t kTableMin = size_t{64} << 10;
void* table_allocate(size_t bytes);
void table_deallocate(void* table, size_t bytes) noexcept;

template <class T>
struct TableAllocator {
  using value_type = T;
  TableAllocator() = default;
  template <class U>
  TableAllocator(const TableAllocator<U>&) noexcept {}  // NOLINT(google-explicit-constructor)
  T* allocate(size_t n) { return static_cast<T*>(table_allocate(n * sizeof(T))); }
  void deallocate(T* p, size_t n) noexcept { table_deallocate(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const TableAllocator<U>&) const noexcept {
    return true;
  }
};

// Bytes held in the pool.
using String = std::basic_string<char, std::char_traits<char>, Allocator<char>>;
// What a string's bytes take from the pool: none while they fit in the string itself (up to 15,
// libstdc++'s short-string capacity), else a block for them and their terminating zero.
inline size_t cost_of(const String& s) {
  return s.capacity() <= 15 ? 0 : block_size(s.capacity() + 1);
}

}  // namespace gatehouse::filters::cache::pool
