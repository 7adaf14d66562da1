// An immutable, validated configuration with everything derived from it that the data plane
// reads: the ordered route table and the consistent-hash rings. Shared by all workers through
// std::shared_ptr<const Snapshot>; a request keeps the snapshot it started with, so a reload never
// changes a request in flight.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "config/config.h"
#include "router/router.h"
#include "upstream/balancer.h"
#include "upstream/bulkhead.h"
#include "upstream/health.h"

namespace gatehouse::config {

struct Snapshot {
  Config config;
  router::RouteTable routes;  // points into config.routes
  std::vector<std::unique_ptr<upstream::HashRing>> rings;  // by upstream index; null if unused
  // By upstream index; null for upstreams without max_concurrent_requests.
  std::vector<std::shared_ptr<upstream::Bulkhead>> bulkheads;
  // By upstream, then target; empty for upstreams without health_check.
  std::vector<std::vector<std::shared_ptr<upstream::Health>>> health;
  uint64_t version = 0;
  std::chrono::system_clock::time_point loaded_at;

  Snapshot(Config c, uint64_t v);
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;
};

std::shared_ptr<const Snapshot> make_snapshot(Config c, uint64_t version);

}  // namespace gatehouse::config
