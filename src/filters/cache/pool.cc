#include "filters/cache/pool.h"

#include <new>

namespace gatehouse::filters::cache::pool::detail {

constinit thread_local Lists lists{};

namespace {

// Gives a thread's kept blocks back to the general allocator when the thread exits; from then on
// (destructors that run later at exit) every block goes there too.
struct Owner {
  Owner() { lists.owned = true; }
  ~Owner() {
    lists.owned = false;
    for (FreeBlock*& head : lists.heads) {
      while (head) {
        FreeBlock* next = head->next;
        ::operator delete(head);
        head = next;
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
  return ::operator new(size_of_class(class_of(bytes)));  // any thread may keep it when freed
}

void deallocate_slow(void* block, size_t bytes) noexcept {
  if (!block) return;
  if (!kPassThrough && bytes <= kMaxPooled && !owner_made) {
    own();
    return deallocate(block, bytes);
  }
  ::operator delete(block);
}

}  // namespace gatehouse::filters::cache::pool::detail
