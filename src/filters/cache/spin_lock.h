// Locks for the cache's short critical sections, taken on every miss (and, shared, on every hit)
// by every worker: uncontended, each is an atomic operation or two, where a pthread mutex or
// reader-writer lock is two calls that check its kind, its owner and its waiters (about 150
// instructions per miss for the store's lock alone). A waiter spins briefly, then yields the CPU,
// so a holder that was preempted gets it back.
//
//   SpinLock:        the flights' map and each flight's state (Lockable: std::lock_guard,
//                    std::unique_lock).
//   SharedSpinLock:  a store shard: hits read it together, a store or an eviction writes it alone
//                    (SharedLockable: std::shared_lock too). A writer that waits keeps new readers
//                    out, so a stream of hits cannot starve it.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

namespace gatehouse::filters::cache {

namespace detail {
// Spins `spins` (counting up from 0) times, then yields.
inline void backoff(int spins) noexcept {
  if (spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();  // tells the core it spins (saves power, frees its sibling thread)
#endif
  } else {
    std::this_thread::yield();
  }
}
}  // namespace detail

class SpinLock {
 public:
  void lock() noexcept {
    for (int spins = 0; held_.exchange(true, std::memory_order_acquire);) {
      while (held_.load(std::memory_order_relaxed)) detail::backoff(spins++);
    }
  }
  bool try_lock() noexcept { return !held_.exchange(true, std::memory_order_acquire); }
  void unlock() noexcept { held_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> held_{false};
};

class SharedSpinLock {
 public:
  void lock_shared() noexcept {
    for (int spins = 0;; detail::backoff(spins++)) {
      uint32_t s = state_.load(std::memory_order_relaxed);
      if (!(s & kWriter) && state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                                         std::memory_order_relaxed))
        return;
    }
  }
  void unlock_shared() noexcept { state_.fetch_sub(1, std::memory_order_release); }

  // The writer's bit first (one writer at a time; no new reader from then on), then the readers
  // that were in leave.
  void lock() noexcept {
    for (int spins = 0;; detail::backoff(spins++)) {
      uint32_t s = state_.load(std::memory_order_relaxed);
      if (!(s & kWriter) && state_.compare_exchange_weak(s, s | kWriter, std::memory_order_acquire,
                                                         std::memory_order_relaxed))
        break;
    }
    for (int spins = 0; state_.load(std::memory_order_acquire) != kWriter;)
      detail::backoff(spins++);
  }
  void unlock() noexcept { state_.store(0, std::memory_order_release); }

 private:
  static constexpr uint32_t kWriter = uint32_t{1} << 31;
  std::atomic<uint32_t> state_{0};  // the writer's bit, and how many readers hold it
};

}  // namespace gatehouse::filters::cache
