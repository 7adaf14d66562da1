#include "upstream/upstream.h"

#include "net/asio.h"

namespace gatehouse::upstream {

bool Upstream::admits(size_t t, Breaker::Clock::time_point now,
                      std::optional<Breaker::State>* moved) {
  Target& target = targets[t];
  if (target.health && !target.health->healthy()) return false;  // active health checks
  return !target.breaker || target.breaker->allow(*config().breaker, now, moved);
}

std::vector<Upstream> WorkerUpstreams::adopt(const std::vector<Shared>& shared, Random& rng) {
  std::unordered_map<std::string, std::shared_ptr<TargetPool>> pools;
  std::vector<Upstream> out;
  out.reserve(shared.size());
  for (const auto& s : shared) {
    const config::Upstream& up = *s.config;
    Upstream& u = out.emplace_back(s, rng.next());
    for (size_t i = 0; i < up.targets.size(); ++i) {
      const auto& t = up.targets[i];
      std::string address = t.address.to_string();
      std::string key = address;
      // A TLS connection is only as good as what it was checked against: one pool per name and
      // context identity (settings, CA file digest), never shared with plain HTTP. A reload that
      // changes them starts with new connections and retires the old ones.
      if (up.tls)
        key += " tls " + std::string(up.tls->server_name_for(t.host)) + " " + up.tls->identity();
      if (up.http2()) key += " h2";
      auto& pool = pools[key];
      if (!pool) {
        if (auto it = pools_.find(key); it != pools_.end()) {
          pool = it->second;  // a target that stays keeps its idle connections
        } else {
          net::tcp::endpoint ep(net::asio::ip::make_address(t.address.ip), t.address.port);
          pool = std::make_shared<TargetPool>(ep, address);
        }
      }
      Target target{pool, s.health.empty() ? nullptr : s.health[i].get(),
                    s.breakers.empty() ? nullptr : s.breakers[i].get()};
      u.targets.push_back(std::move(target));
    }
  }
  // Targets that left the config: close their idle connections now; a request still using one
  // finishes, and its connection is closed instead of pooled.
  for (auto& [key, pool] : pools_) {
    if (!pools.count(key)) pool->retire();
  }
  pools_ = std::move(pools);
  return out;
}

}  // namespace gatehouse::upstream
