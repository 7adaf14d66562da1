#include "config/snapshot.h"

namespace gatehouse::config {

Snapshot::Snapshot(Config c, uint64_t v)
    : config(std::move(c)), routes(config.routes), version(v),
      loaded_at(std::chrono::system_clock::now()) {
  for (const auto& u : config.upstreams) {
    rings.push_back(u.balance == Balance::kConsistentHash
                        ? std::make_unique<upstream::HashRing>(u.targets)
                        : nullptr);
    health.emplace_back();
    if (u.health_check) {
      for (const auto& t : u.targets)
        health.back().push_back(upstream::Health::shared(u.name, t, *u.health_check, u.tls));
    }
    bulkheads.push_back(u.max_concurrent_requests
                            ? upstream::Bulkhead::shared(u.name, u.max_concurrent_requests, u.max_pending)
                            : nullptr);
  }
}

std::shared_ptr<const Snapshot> make_snapshot(Config c, uint64_t version) {
  return std::make_shared<const Snapshot>(std::move(c), version);
}

}  // namespace gatehouse::config
