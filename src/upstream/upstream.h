// One record per upstream. What every worker shares (the hash ring, the bulkhead, each target's
// health and circuit breaker) is built once with the snapshot, as `Shared`; what one worker keeps
// for itself (its balancer, pools and retry budget) is an `Upstream`, which points at the shared
// part. Code that needs an upstream takes one record instead of indexing parallel vectors.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "upstream/balancer.h"
#include "upstream/pool.h"
#include "upstream/shared.h"

namespace gatehouse::upstream {

// A target as one worker sees it.
struct Target {
  std::shared_ptr<TargetPool> pool;
  const Health* health = nullptr;  // null: not checked
  Breaker* breaker = nullptr;      // null: no circuit_breaker
};

// An upstream as one worker sees it. Used on that worker's thread only.
class Upstream {
 public:
  Upstream(const Shared& shared, uint64_t seed)
      : balancer(*shared.config, shared.ring.get(), seed), shared_(&shared) {}

  const config::Upstream& config() const { return *shared_->config; }
  const std::string& name() const { return shared_->config->name; }
  Bulkhead* bulkhead() const { return shared_->bulkhead.get(); }
  RetryFloor& retry_floor() const { return *shared_->retry_floor; }

  // May target t take a request now: healthy (when checked) and its breaker closed, or half-open
  // with a probe to spare (which this call takes). *moved: the state this call moved the breaker
  // to, if it did.
  bool admits(size_t t, Breaker::Clock::time_point now, std::optional<Breaker::State>* moved);
  // What admits() would answer now, without taking a probe.
  bool available(size_t t, Breaker::Clock::time_point now) const {
    const Target& target = targets[t];
    return (!target.health || target.health->healthy()) &&
           (!target.breaker || target.breaker->would_allow(*config().breaker, now));
  }

  Balancer balancer;
  std::vector<Target> targets;
  double retry_tokens = 0;  // the retry budget's share earned here (see upstream::Client)

 private:
  const Shared* shared_;
};

// A worker's upstreams for one snapshot, with the pools of targets that stay over a reload (by
// address and TLS identity).
class WorkerUpstreams {
 public:
  // This worker's records for `shared`, keeping the pools of targets it had before.
  std::vector<Upstream> adopt(const std::vector<Shared>& shared, Random& rng);
  // The end of a drain: every pooled connection closes (HTTP/2 ones once their streams end), so
  // that none keeps the worker's io_context running.
  void close_all() {
    for (auto& [key, pool] : pools_) pool->retire();
  }

 private:
  std::unordered_map<std::string, std::shared_ptr<TargetPool>> pools_;
};

}  // namespace gatehouse::upstream
