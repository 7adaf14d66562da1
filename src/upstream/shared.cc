#include "upstream/shared.h"

namespace gatehouse::upstream {

Shared::Shared(const config::Upstream& up)
    : config(&up),
      ring(up.balance == config::Balance::kConsistentHash ? std::make_unique<HashRing>(up.targets)
                                                          : nullptr),
      bulkhead(up.max_concurrent_requests
                   ? Bulkhead::shared(up.name, up.max_concurrent_requests, up.max_pending)
                   : nullptr),
      retry_floor(RetryFloor::shared(up.name)) {
  if (up.health_check) {
    for (const auto& t : up.targets)
      health.push_back(Health::shared(up.name, t, *up.health_check, up.tls, up.http2()));
  }
  if (up.breaker) {
    for (const auto& t : up.targets)
      breakers.push_back(Breaker::shared(up.name, t.address.to_string()));
  }
}

}  // namespace gatehouse::upstream
