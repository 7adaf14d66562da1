#include "upstream/bulkhead.h"

#include <map>
#include <mutex>

namespace gatehouse::upstream {

std::shared_ptr<Bulkhead> Bulkhead::shared(const std::string& name, uint32_t limit) {
  // Touched at config load only.
  static std::mutex mutex;
  static std::map<std::string, std::weak_ptr<Bulkhead>> registry;
  std::lock_guard lock(mutex);
  auto& weak = registry[name];
  auto b = weak.lock();
  if (!b) {
    b = std::make_shared<Bulkhead>(limit);
    weak = b;
  }
  b->limit_.store(limit, std::memory_order_relaxed);
  return b;
}

}  // namespace gatehouse::upstream
