// The concurrency limit of one upstream (a bulkhead, `max_concurrent_requests`): past it, a
// request gets 503 at once instead of joining a queue, so one slow service cannot take every
// connection and worker of the gateway.
//
// One counter per upstream for the whole process, so the limit holds across workers (10 means 10,
// not 10 per worker). It is an atomic shared between workers, touched twice per request and only
// by upstreams that set the limit. Counters are shared across reloads by upstream name: requests
// still in flight under the old config keep counting against the new one.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace gatehouse::upstream {

class Bulkhead {
 public:
  explicit Bulkhead(uint32_t limit) : limit_(limit) {}
  // Takes a slot; false (and nothing taken) when the limit is reached.
  bool try_enter() {
    if (in_flight_.fetch_add(1, std::memory_order_relaxed) >= limit_.load(std::memory_order_relaxed)) {
      in_flight_.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    return true;
  }
  void leave() { in_flight_.fetch_sub(1, std::memory_order_relaxed); }
  int64_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  uint32_t limit() const { return limit_.load(std::memory_order_relaxed); }

  // The bulkhead of upstream `name`, with `limit` from now on (a reload may change it).
  static std::shared_ptr<Bulkhead> shared(const std::string& name, uint32_t limit);

 private:
  std::atomic<int64_t> in_flight_{0};
  std::atomic<uint32_t> limit_;
};

}  // namespace gatehouse::upstream
