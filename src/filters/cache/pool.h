// The memory the store keeps (entries, their fields and bodies, the store's nodes), in blocks of
// size classes, from free lists each thread keeps for itself.
//
// Why not the general allocator: a full store evicts one entry for each it stores, so every miss
// frees blocks of about the sizes it then asks for, on memory that has gone cold. glibc's malloc
// keeps only 7 freed blocks per size for a thread (its tcache), and none above 1032 bytes; the rest
// go to bins that coalesce with their (cold) neighbours and are sorted again on the next request.
// Measured on the miss path (bench/run.sh UNIQUE_URLS=1), that was most of what a miss cost over
// an uncached request. Here a freed block goes, as it is, to the front of its class's list, and
// the next request of that class takes it back: the block an eviction just touched.
//
// A thread keeps at most kMaxKeptBytes of freed blocks; past that, and for blocks larger than
// kMaxPooled (whose cost is their bytes, not their allocation), the general allocator takes them.
// Sanitizer builds go to the general allocator for every block, so that its checks see them all.
#pragma once

#include <cstddef>
#include <string>

namespace gatehouse::filters::cache::pool {

inline constexpr size_t kMaxPooled = (size_t{64} << 10) + 16;  // 64 KiB of body, and a little
inline constexpr size_t kMaxKeptBytes = size_t{4} << 20;

// A block of at least `bytes`, and the return of one allocate(bytes) gave.
void* allocate(size_t bytes);
void deallocate(void* block, size_t bytes) noexcept;
// What a block for `bytes` takes: its size class (bytes itself above kMaxPooled).
size_t block_size(size_t bytes);
// Freed blocks this thread keeps, in bytes (for tests).
size_t kept_bytes();

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

// Bytes held in the pool.
using String = std::basic_string<char, std::char_traits<char>, Allocator<char>>;
// What a string's bytes take from the pool: none while they fit in the string itself (up to 15,
// libstdc++'s short-string capacity), else a block for them and their terminating zero.
inline size_t cost_of(const String& s) {
  return s.capacity() <= 15 ? 0 : block_size(s.capacity() + 1);
}

}  // namespace gatehouse::filters::cache::pool
