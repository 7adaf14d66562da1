#include "config/snapshot.h"

namespace gatehouse::config {

Snapshot::Snapshot(Config c, uint64_t v)
    : config(std::move(c)),
      routes(config.routes),
      version(v),
      loaded_at(std::chrono::system_clock::now()) {
  upstreams.reserve(config.upstreams.size());
  for (const auto& u : config.upstreams) upstreams.emplace_back(u);
}

std::shared_ptr<const Snapshot> make_snapshot(Config c, uint64_t version) {
  return std::make_shared<const Snapshot>(std::move(c), version);
}

}  // namespace gatehouse::config
