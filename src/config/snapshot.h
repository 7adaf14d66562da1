// An immutable, validated configuration with everything derived from it that the data plane
// reads: the ordered route table and what the workers share of each upstream (hash ring,
// bulkhead, health). Shared by all workers through
// std::shared_ptr<const Snapshot>; a request keeps the snapshot it started with, so a reload never
// changes a request in flight.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "config/config.h"
#include "router/router.h"
#include "upstream/shared.h"

namespace gatehouse::config {

struct Snapshot {
  Config config;
  router::RouteTable routes;                // points into config.routes
  std::vector<upstream::Shared> upstreams;  // one record each, in config.upstreams' order
  uint64_t version = 0;
  std::chrono::system_clock::time_point loaded_at;

  Snapshot(Config c, uint64_t v);
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;
};

std::shared_ptr<const Snapshot> make_snapshot(Config c, uint64_t version);

}  // namespace gatehouse::config
