#include "upstream/bulkhead.h"

#include "config/shared_by_key.h"

namespace gatehouse::upstream {

std::shared_ptr<Bulkhead> Bulkhead::shared(const std::string& name, uint32_t limit) {
  static config::SharedByKey<Bulkhead> registry;
  auto b = registry.get(name, [&] { return std::make_shared<Bulkhead>(limit); });
  b->limit_.store(limit, std::memory_order_relaxed);  // a reload may change it
  return b;
}

}  // namespace gatehouse::upstream
