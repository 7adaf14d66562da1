#include "filters/cache/pool.h"

#include <sys/mman.h>

#include <bit>
#include <cstdint>
#include <mutex>
#include <new>

namespace gatehouse::filters::cache::pool::detail {

constinit thread_local Lists lists{};

namespace {

// Pooled blocks are carved from chunks of 2 MiB, aligned, that the kernel is asked to back with
// huge pages (madvise MADV_HUGEPAGE: transparent huge pages, in "always" or "madvise" mode). A
// miss reaches several blocks at random across the whole store (the evicted entry, its fields,
// body and key); with 4 KiB pages each of those is also a TLB miss, and under a hypervisor a page
// walk is two-dimensional. Where huge pages are not to be had, the chunk is ordinary memory.
constexpr size_t kChunk = size_t{2} << 20;

// `size` bytes (a multiple of kChunk), aligned to kChunk.
char* new_chunk(size_t size = kChunk) {
  // A chunk more, then the unaligned ends given back: aligned, and no more mapped.
  void* m =
      mmap(nullptr, size + kChunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<uintptr_t>(m);
  const uintptr_t aligned = (start + kChunk - 1) & ~(kChunk - 1);
  if (aligned > start) munmap(m, aligned - start);
  if (const uintptr_t end = start + size + kChunk; end > aligned + size)
    munmap(reinterpret_cast<void*>(aligned + size), end - aligned - size);
  auto* chunk = reinterpret_cast<char*>(aligned);
  madvise(chunk, size, MADV_HUGEPAGE);  // advice: its failure leaves 4 KiB pages
  return chunk;
}

// Blocks never go back to the general allocator (they are not its own): a thread keeps up to
// kMaxKeptBytes of them, and past that, or when it exits, gives them here, where any thread takes
// them before carving new ones. The pool's memory is the most the cache has held at once.
struct Shared {
  std::mutex mutex;
  FreeBlock* heads[kClasses] = {};
};
Shared& shared() {
  static Shared s;
  return s;
}

void give(FreeBlock* block, size_t c) {
  Shared& s = shared();
  std::lock_guard lock(s.mutex);
  block->next = s.heads[c];
  s.heads[c] = block;
}

void* take(size_t c) {
  Shared& s = shared();
  std::lock_guard lock(s.mutex);
  FreeBlock* block = s.heads[c];
  if (block) s.heads[c] = block->next;
  return block;
}

// The thread's chunk being carved.
thread_local char* carve_at = nullptr;
thread_local size_t carve_left = 0;

void* carve(size_t bytes) {
  if (carve_left < bytes) {
    // The rest of the old chunk (less than one block of this class) goes to the classes it fits.
    while (carve_left >= kSmallStep) {
      size_t c = class_of(carve_left);
      if (size_of_class(c) > carve_left) --c;
      give(new (carve_at) FreeBlock{nullptr}, c);
      carve_at += size_of_class(c);
      carve_left -= size_of_class(c);
    }
    carve_at = new_chunk();
    carve_left = kChunk;
  }
  void* block = carve_at;
  carve_at += bytes;
  carve_left -= bytes;
  return block;
}

// At a thread's exit, its kept blocks go to the shared lists; from then on (destructors that run
// later at exit) every block goes there too.
struct Owner {
  Owner() { lists.owned = true; }
  ~Owner() {
    lists.owned = false;
    for (size_t c = 0; c < kClasses; ++c) {
      while (FreeBlock* block = lists.heads[c]) {
        lists.heads[c] = block->next;
        give(block, c);
      }
    }
    lists.kept = 0;
  }
};
thread_local bool owner_made = false;  // once made, never again (not after it is destroyed)

void own() {
  if (owner_made) return;
  owner_made = true;
  thread_local Owner owner;
}

}  // namespace

void* allocate_slow(size_t bytes) {
  if (kPassThrough || bytes > kMaxPooled) return ::operator new(bytes);
  own();
  const size_t c = class_of(bytes);
  if (void* block = take(c)) return block;
  return carve(size_of_class(c));
}

void deallocate_slow(void* block, size_t bytes) noexcept {
  if (!block) return;
  if (kPassThrough || bytes > kMaxPooled) return ::operator delete(block);
  if (!owner_made) {
    own();
    return deallocate(block, bytes);
  }
  give(new (block) FreeBlock{nullptr}, class_of(bytes));  // over the thread's bound, or exited
}

}  // namespace gatehouse::filters::cache::pool::detail

namespace gatehouse::filters::cache::pool {
namespace {

// Every table starts on a line of its own (the ghost's buckets are lines; a carved table is).
constexpr std::align_val_t kTableAlign{64};

// Tables by size (powers of two from kTableMin), free ones in a list per size; those of a chunk
// or less carved from shared chunks, larger ones a mapping each. Growth is rare (a table
// doubles), so one lock serves every thread.
struct Tables {
  std::mutex mutex;
  detail::FreeBlock* free[64] = {};
  char* carve_at = nullptr;
  size_t carve_left = 0;
};
Tables& tables() {
  static Tables t;
  return t;
}

}  // namespace

void* table_allocate(size_t bytes) {
  if (detail::kPassThrough || bytes < kTableMin) return ::operator new(bytes, kTableAlign);
  const size_t size = std::bit_ceil(bytes);
  Tables& t = tables();
  std::lock_guard lock(t.mutex);
  if (detail::FreeBlock*& head = t.free[std::countr_zero(size)]) {
    void* table = head;
    head = head->next;
    return table;
  }
  if (size >= detail::kChunk) return detail::new_chunk(size);
  if (t.carve_left < size) {
    // The rest of the chunk (a multiple of kTableMin, as every table carved from it) goes to
    // the lists, in the largest sizes it holds.
    while (t.carve_left >= kTableMin) {
      const size_t piece = std::bit_floor(t.carve_left);
      t.free[std::countr_zero(piece)] =
          new (t.carve_at) detail::FreeBlock{t.free[std::countr_zero(piece)]};
      t.carve_at += piece;
      t.carve_left -= piece;
    }
    t.carve_at = detail::new_chunk();
    t.carve_left = detail::kChunk;
  }
  void* table = t.carve_at;
  t.carve_at += size;
  t.carve_left -= size;
  return table;
}

void table_deallocate(void* table, size_t bytes) noexcept {
  if (!table) return;
  if (detail::kPassThrough || bytes < kTableMin) return ::operator delete(table, kTableAlign);
  const size_t size = std::bit_ceil(bytes);
  Tables& t = tables();
  std::lock_guard lock(t.mutex);
  detail::FreeBlock*& head = t.free[std::countr_zero(size)];
  head = new (table) detail::FreeBlock{head};
}

}  // namespace gatehouse::filters::cache::pool
