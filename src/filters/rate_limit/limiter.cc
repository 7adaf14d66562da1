#include "filters/rate_limit/limiter.h"

#include <algorithm>
#include <functional>

#include "config/shared_by_key.h"

namespace gatehouse::filters {

Limiter::Limiter(std::vector<gcra::Limit> limits, size_t max_keys)
    : limits_(std::move(limits)), max_per_shard_(std::max<size_t>(1, max_keys / kShards)) {}

bool Limiter::decide(std::string_view key, int64_t now, std::vector<gcra::Decision>* out) {
  size_t h = std::hash<std::string_view>{}(key);
  Shard& shard = shards_[h % kShards];
  std::lock_guard lock(shard.mutex);
  // Workers read the clock before taking the lock, so a request can arrive here with a `now`
  // older than one already decided. Deciding it in the past would count the other request's
  // refill as not yet due and report one fewer remaining; time under one lock only moves forward.
  now = std::max(now, shard.latest);
  shard.latest = now;
  auto it = shard.keys.find(key);
  if (it == shard.keys.end()) {
    if (shard.keys.size() >= max_per_shard_) shard.keys.erase(shard.keys.begin());
    it = shard.keys.emplace(std::string(key), State{}).first;
  }
  // Decide on copies first: a request refused by one limit must not count against the others.
  std::array<int64_t, kMaxLimits> tat = it->second.tat;
  out->clear();
  bool allowed = true;
  for (size_t i = 0; i < limits_.size(); ++i) {
    out->push_back(gcra::decide(limits_[i], now, tat[i]));
    allowed = allowed && out->back().allowed;
  }
  if (allowed) it->second.tat = tat;
  return allowed;
}

size_t Limiter::sweep(int64_t now) {
  size_t left = 0;
  for (auto& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    std::erase_if(shard.keys, [&](const auto& kv) {
      return std::all_of(kv.second.tat.begin(), kv.second.tat.end(),
                         [&](int64_t t) { return t <= now; });
    });
    left += shard.keys.size();
  }
  return left;
}

size_t Limiter::size() const {
  size_t n = 0;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    n += shard.keys.size();
  }
  return n;
}

namespace {
config::SharedByKey<Limiter>& registry() {
  static config::SharedByKey<Limiter> limiters;
  return limiters;
}
}  // namespace

std::shared_ptr<Limiter> Limiter::shared(const std::string& identity,
                                         std::vector<gcra::Limit> limits, size_t max_keys) {
  return registry().get(identity,
                        [&] { return std::make_shared<Limiter>(std::move(limits), max_keys); });
}

std::vector<std::shared_ptr<Limiter>> Limiter::all() { return registry().live(); }

}  // namespace gatehouse::filters
