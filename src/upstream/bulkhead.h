// The concurrency limit of one upstream (a bulkhead, `max_concurrent_requests`): past it, a
// request gets 503 at once, or, with `max_pending`, waits in a bounded queue for a slot (as
// HAProxy's server `maxconn` with its queue, or Envoy's max_pending_requests), so one slow service
// cannot take every connection and worker of the gateway.
//
// One counter per upstream for the whole process, so the limit holds across workers (10 means 10,
// not 10 per worker). The fast path is one atomic add, touched twice per request and only by
// upstreams that set the limit; the queue, behind a mutex, is touched only when the limit is
// reached. A slot that frees while requests wait is handed to the oldest of them. Shared across
// reloads by upstream name: requests still in flight under the old config count against the new.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace gatehouse::upstream {

class Bulkhead {
 public:
  Bulkhead(uint32_t limit, uint32_t max_pending) : limit_(limit), max_pending_(max_pending) {}

  // Takes a slot; false (and nothing taken) when the limit is reached.
  bool try_enter() {
    if (in_flight_.fetch_add(1) >= limit_.load(std::memory_order_relaxed)) {
      in_flight_.fetch_sub(1);
      return false;
    }
    return true;
  }
  // Gives a slot back, to the oldest waiting request if there is one.
  void leave() {
    in_flight_.fetch_sub(1);
    if (waiting_.load() > 0) hand_over();
  }

  // A request waiting for a slot. `wake` is called once, on whichever thread freed the slot, with
  // true: the slot is the waiter's now (it must leave() later).
  struct Waiter {
    std::function<void(bool granted)> wake;
  };
  enum class Queued { kGranted, kWaiting, kFull };
  // Joins the queue (kWaiting), unless a slot freed meanwhile (kGranted: taken, wake not called)
  // or max_pending requests already wait (kFull).
  Queued wait(std::shared_ptr<Waiter> w);
  // Leaves the queue: true when `w` was still waiting (wake will not be called), false when a
  // slot was already handed to it (wake has been or is being called with true).
  bool cancel(const Waiter* w);

  int64_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  uint32_t limit() const { return limit_.load(std::memory_order_relaxed); }
  uint32_t max_pending() const { return max_pending_.load(std::memory_order_relaxed); }
  uint32_t waiting() const { return waiting_.load(std::memory_order_relaxed); }

  // The bulkhead of upstream `name`, with these limits from now on (a reload may change them).
  static std::shared_ptr<Bulkhead> shared(const std::string& name, uint32_t limit,
                                          uint32_t max_pending);

 private:
  void hand_over();

  // Sequentially consistent where it matters: a waiter adds itself to waiting_ then tries for a
  // slot; leave() frees a slot then reads waiting_. One of the two always sees the other, so a
  // slot never frees unseen while a request waits for it.
  std::atomic<int64_t> in_flight_{0};
  std::atomic<uint32_t> waiting_{0};
  std::atomic<uint32_t> limit_;
  std::atomic<uint32_t> max_pending_;
  std::mutex mutex_;
  std::deque<std::shared_ptr<Waiter>> queue_;  // oldest first
};

}  // namespace gatehouse::upstream
