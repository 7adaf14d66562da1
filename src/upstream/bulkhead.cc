#include "upstream/bulkhead.h"

#include <algorithm>

#include "config/shared_by_key.h"

namespace gatehouse::upstream {

Bulkhead::Queued Bulkhead::wait(std::shared_ptr<Waiter> w) {
  std::lock_guard lock(mutex_);
  if (queue_.size() >= max_pending()) return Queued::kFull;
  waiting_.store(static_cast<uint32_t>(queue_.size() + 1));
  if (try_enter()) {  // a slot freed since the caller's own try
    waiting_.store(static_cast<uint32_t>(queue_.size()));
    return Queued::kGranted;
  }
  queue_.push_back(std::move(w));
  return Queued::kWaiting;
}

bool Bulkhead::cancel(const Waiter* w) {
  std::lock_guard lock(mutex_);
  auto it = std::find_if(queue_.begin(), queue_.end(), [w](const auto& q) { return q.get() == w; });
  if (it == queue_.end()) return false;
  queue_.erase(it);
  waiting_.store(static_cast<uint32_t>(queue_.size()));
  return true;
}

void Bulkhead::hand_over() {
  std::shared_ptr<Waiter> next;
  {
    std::lock_guard lock(mutex_);
    // A request that came along meanwhile may have taken the slot: then the queue waits on.
    if (queue_.empty() || !try_enter()) return;
    next = std::move(queue_.front());
    queue_.pop_front();
    waiting_.store(static_cast<uint32_t>(queue_.size()));
  }
  next->wake(true);
}

std::shared_ptr<Bulkhead> Bulkhead::shared(const std::string& name, uint32_t limit,
                                           uint32_t max_pending) {
  static config::SharedByKey<Bulkhead> registry;
  auto b = registry.get(name, [&] { return std::make_shared<Bulkhead>(limit, max_pending); });
  b->limit_.store(limit, std::memory_order_relaxed);  // a reload may change them
  b->max_pending_.store(max_pending, std::memory_order_relaxed);
  return b;
}

}  // namespace gatehouse::upstream
