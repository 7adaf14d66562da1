// A lock for the flights' few-instruction critical sections (a map probe, a state change), taken
// on every miss by every worker: uncontended, it is one atomic exchange and one store, where a
// pthread mutex is two calls that check its kind and its owner. A waiter spins briefly, then
// yields the CPU, so a holder that was preempted gets it back. Meets Lockable, for
// std::lock_guard and std::unique_lock.
#pragma once

#include <atomic>
#include <thread>

namespace gatehouse::filters::cache {

class SpinLock {
 public:
  void lock() noexcept {
    for (int spins = 0; held_.exchange(true, std::memory_order_acquire); ++spins) {
      while (held_.load(std::memory_order_relaxed)) {
        if (spins++ < 64)
          relax();
        else
          std::this_thread::yield();
      }
    }
  }
  bool try_lock() noexcept { return !held_.exchange(true, std::memory_order_acquire); }
  void unlock() noexcept { held_.store(false, std::memory_order_release); }

 private:
  static void relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();  // tells the core it spins (saves power, frees its sibling thread)
#endif
  }
  std::atomic<bool> held_{false};
};

}  // namespace gatehouse::filters::cache
