#include "upstream/retry_floor.h"

#include <algorithm>

#include "config/shared_by_key.h"

namespace gatehouse::upstream {

std::shared_ptr<RetryFloor> RetryFloor::shared(const std::string& upstream) {
  static config::SharedByKey<RetryFloor> registry;
  return registry.get(upstream, [] { return std::make_shared<RetryFloor>(); });
}

bool RetryFloor::take(uint32_t per_second, Clock::time_point now) {
  if (per_second == 0) return false;
  const double full = per_second;
  std::lock_guard lock(mutex_);
  if (tokens_ < 0) {
    tokens_ = full;
  } else {
    std::chrono::duration<double> since = now - refilled_;
    tokens_ = std::min(full, tokens_ + since.count() * per_second);
  }
  refilled_ = now;
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

}  // namespace gatehouse::upstream
