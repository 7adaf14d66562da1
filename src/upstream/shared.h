// The part of an upstream that every worker shares, built once with the snapshot on the main
// thread and read by the workers: the consistent-hash ring, the bulkhead, the retry budget's floor,
// and each target's health and circuit breaker.
// Kept apart from upstream.h so that the snapshot can hold it without pulling in Asio.
#pragma once

#include <memory>
#include <vector>

#include "config/config.h"
#include "upstream/balancer.h"
#include "upstream/breaker.h"
#include "upstream/bulkhead.h"
#include "upstream/health.h"
#include "upstream/retry_floor.h"

namespace gatehouse::upstream {

// Built with the snapshot on the main thread; read by every worker.
struct Shared {
  explicit Shared(const config::Upstream& up);

  const config::Upstream* config;
  std::unique_ptr<HashRing> ring;                  // consistent_hash only
  std::shared_ptr<Bulkhead> bulkhead;              // max_concurrent_requests only
  std::vector<std::shared_ptr<Health>> health;     // by target; empty without health_check
  std::vector<std::shared_ptr<Breaker>> breakers;  // by target; empty without circuit_breaker
  std::shared_ptr<RetryFloor> retry_floor;
};

}  // namespace gatehouse::upstream
