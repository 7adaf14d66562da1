#include "filters/cache/pool.h"

#include <array>
#include <bit>
#include <new>
#include <utility>

namespace gatehouse::filters::cache::pool {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kPassThrough = true;
#else
constexpr bool kPassThrough = false;
#endif

// Classes: every 16 bytes up to 272, then 8 per doubling (a block wastes less than an eighth),
// each 16 bytes over the round size: what is stored is often a round size of bytes plus a little
// (a 16 KiB body and its string's terminating zero), which would otherwise take the next class.
constexpr size_t kSmallStep = 16, kSmallMax = 272, kOver = 16, kPerDoubling = 8;
constexpr size_t kSmallClasses = kSmallMax / kSmallStep;
constexpr size_t kFirstDoubling = 8;  // the first class above kSmallMax: 2^8 plus a step
constexpr size_t kClasses =
    kSmallClasses + kPerDoubling * (std::bit_width(kMaxPooled - kOver - 1) - kFirstDoubling);

size_t class_of(size_t bytes) {
  if (bytes <= kSmallMax) return bytes == 0 ? 0 : (bytes - 1) / kSmallStep;
  const size_t m = bytes - kOver;
  const size_t doubling = std::bit_width(m - 1) - 1;  // 2^doubling < m <= 2^(doubling+1)
  const size_t step = size_t{1} << (doubling - 3);
  const size_t sub = (m - (size_t{1} << doubling) - 1) / step;  // 0..7
  return kSmallClasses + (doubling - kFirstDoubling) * kPerDoubling + sub;
}

size_t size_of_class(size_t c) {
  if (c < kSmallClasses) return (c + 1) * kSmallStep;
  const size_t doubling = kFirstDoubling + (c - kSmallClasses) / kPerDoubling;
  const size_t sub = (c - kSmallClasses) % kPerDoubling;
  return (size_t{1} << doubling) + (sub + 1) * (size_t{1} << (doubling - 3)) + kOver;
}

struct FreeBlock {
  FreeBlock* next;
};

struct ThreadCache {
  std::array<FreeBlock*, kClasses> heads{};
  size_t kept = 0;
  ~ThreadCache();
};

// Blocks freed after the thread's cache is gone (by destructors that run later at exit) go to the
// general allocator.
thread_local bool cache_gone = false;
thread_local ThreadCache cache;

ThreadCache::~ThreadCache() {
  for (FreeBlock*& head : heads) {
    while (head) ::operator delete(std::exchange(head, head->next));
  }
  kept = 0;
  cache_gone = true;
}

}  // namespace

size_t block_size(size_t bytes) {
  return bytes > kMaxPooled ? bytes : size_of_class(class_of(bytes));
}

void* allocate(size_t bytes) {
  if (kPassThrough || bytes > kMaxPooled) return ::operator new(bytes);
  const size_t c = class_of(bytes);
  if (cache_gone) return ::operator new(size_of_class(c));  // any thread may keep it when freed
  FreeBlock*& head = cache.heads[c];
  if (!head) return ::operator new(size_of_class(c));
  FreeBlock* block = std::exchange(head, head->next);
  cache.kept -= size_of_class(c);
  return block;
}

void deallocate(void* block, size_t bytes) noexcept {
  if (!block) return;
  if (kPassThrough || bytes > kMaxPooled || cache_gone) return ::operator delete(block);
  const size_t c = class_of(bytes);
  const size_t size = size_of_class(c);
  if (cache.kept + size > kMaxKeptBytes) return ::operator delete(block);
  cache.kept += size;
  cache.heads[c] = new (block) FreeBlock{cache.heads[c]};
}

size_t kept_bytes() { return cache_gone ? 0 : cache.kept; }

}  // namespace gatehouse::filters::cache::pool
