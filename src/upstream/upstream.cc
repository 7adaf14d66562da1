#include "upstream/upstream.h"

#include "net/asio.h"

namespace gatehouse::upstream {

bool Upstream::admits(size_t t, Breaker::Clock::time_point now, bool* moved) {
  *moved = false;
  Target& target = targets[t];
  if (target.health && !target.health->healthy()) return false;  // active health checks
  if (!config().breaker) return true;
  auto before = target.breaker.state();
  bool ok = target.breaker.allow(now);
  *moved = target.breaker.state() != before;  // open -> half-open
  return ok;
}

std::vector<Upstream> WorkerUpstreams::adopt(const std::vector<Shared>& shared,
                                             const std::vector<Upstream>* before, Random& rng) {
  // Circuit breakers of targets that stay (same upstream, same address) keep their state, as
  // Envoy keeps a host's outlier state over a cluster update: a reload does not send traffic
  // back to a target just found failing.
  std::unordered_map<std::string, const Breaker*> breakers_before;
  if (before) {
    for (const auto& u : *before) {
      if (!u.config().breaker) continue;
      for (size_t t = 0; t < u.targets.size(); ++t)
        breakers_before[u.name() + " " + u.config().targets[t].address.to_string()] =
            &u.targets[t].breaker;
    }
  }
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
      auto& pool = pools[key];
      if (!pool) {
        if (auto it = pools_.find(key); it != pools_.end()) {
          pool = it->second;  // a target that stays keeps its idle connections
        } else {
          net::tcp::endpoint ep(net::asio::ip::make_address(t.address.ip), t.address.port);
          pool = std::make_shared<TargetPool>(ep, address);
        }
      }
      const config::BreakerSettings* settings = up.breaker ? &*up.breaker : nullptr;
      auto kept = settings ? breakers_before.find(up.name + " " + address) : breakers_before.end();
      Target target{
          pool,
          kept != breakers_before.end() ? Breaker(*kept->second, settings) : Breaker(settings),
          s.health.empty() ? nullptr : s.health[i].get()};
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
