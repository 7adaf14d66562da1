#include "upstream/balancer.h"

#include <algorithm>
#include <string>

namespace gatehouse::upstream {
namespace {
uint64_t mix(uint64_t z) {  // the splitmix64 finaliser
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
std::vector<uint32_t> weights_of(const std::vector<config::Target>& targets) {
  std::vector<uint32_t> w;
  for (const auto& t : targets) w.push_back(t.weight);
  return w;
}
}  // namespace

Random::Random(uint64_t seed) : s_(mix(seed + 0x9e3779b97f4a7c15ULL) | 1) {}

uint64_t Random::next() {
  s_ ^= s_ << 13;
  s_ ^= s_ >> 7;
  s_ ^= s_ << 17;
  return s_;
}

uint64_t hash64(std::string_view data) {
  // FNV-1a, then a finaliser so that nearby inputs spread over the whole ring.
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return mix(h);
}

SmoothWeighted::SmoothWeighted(std::vector<uint32_t> weights)
    : weights_(std::move(weights)), current_(weights_.size(), 0) {
  for (auto w : weights_) total_ += w;
}

size_t SmoothWeighted::next() {
  size_t best = 0;
  for (size_t i = 0; i < weights_.size(); ++i) {
    current_[i] += weights_[i];
    if (current_[i] > current_[best]) best = i;
  }
  current_[best] -= total_;
  return best;
}

size_t SmoothWeighted::next(std::span<const uint8_t> allowed) {
  size_t best = kNone;
  int64_t total = 0;
  for (size_t i = 0; i < weights_.size(); ++i) {
    if (!allowed[i]) continue;
    current_[i] += weights_[i];
    total += weights_[i];
    if (best == kNone || current_[i] > current_[best]) best = i;
  }
  if (best != kNone) current_[best] -= total;
  return best;
}

HashRing::HashRing(const std::vector<config::Target>& targets) {
  uint64_t total = 0;
  for (const auto& t : targets) total += t.weight;
  for (size_t i = 0; i < targets.size(); ++i) {
    uint64_t points = std::max<uint64_t>(1, 160 * targets.size() * targets[i].weight / total);
    std::string base = targets[i].address.to_string() + "#";
    for (uint64_t p = 0; p < points; ++p) {
      points_.emplace_back(hash64(base + std::to_string(p)), static_cast<uint32_t>(i));
    }
  }
  std::sort(points_.begin(), points_.end());
}

size_t HashRing::pick(uint64_t key_hash) const {
  auto it = std::lower_bound(points_.begin(), points_.end(), std::make_pair(key_hash, uint32_t{0}));
  if (it == points_.end()) it = points_.begin();
  return it->second;
}

size_t HashRing::pick(uint64_t key_hash, std::span<const uint8_t> allowed) const {
  auto it = std::lower_bound(points_.begin(), points_.end(), std::make_pair(key_hash, uint32_t{0}));
  for (size_t step = 0; step < points_.size(); ++step, ++it) {
    if (it == points_.end()) it = points_.begin();
    if (allowed[it->second]) return it->second;
  }
  return kNone;
}

Balancer::Balancer(const config::Upstream& up, const HashRing* ring, uint64_t seed)
    : algo_(up.balance),
      weights_(weights_of(up.targets)),
      in_flight_(up.targets.size(), 0),
      rr_(weights_),
      ring_(ring),
      rng_(seed) {
  for (auto w : weights_) total_weight_ += w;
}

// Of two targets, the one with fewer requests in flight per unit of weight (ties: the heavier).
size_t Balancer::less_loaded(size_t a, size_t b) const {
  uint64_t la = uint64_t{in_flight_[a]} * weights_[b];
  uint64_t lb = uint64_t{in_flight_[b]} * weights_[a];
  if (la != lb) return la < lb ? a : b;
  return weights_[a] >= weights_[b] ? a : b;
}

size_t Balancer::pick(const PickInput& in) {
  size_t n = weights_.size();
  if (n == 1) return 0;
  auto weighted_random = [&] {
    uint64_t r = rng_.below(total_weight_);
    for (size_t i = 0; i < n; ++i) {
      if (r < weights_[i]) return i;
      r -= weights_[i];
    }
    return n - 1;
  };
  switch (algo_) {
    case config::Balance::kRoundRobin:
      return rr_.next();
    case config::Balance::kRandom:
      return weighted_random();
    case config::Balance::kLeastRequest: {
      // Power of two choices: two distinct random targets, the one with fewer requests in
      // flight per unit of weight wins.
      size_t a = rng_.below(n);
      size_t b = rng_.below(n - 1);
      if (b >= a) ++b;
      return less_loaded(a, b);
    }
    case config::Balance::kConsistentHash:
      if (ring_ && !in.hash_key.empty()) return ring_->pick(hash64(in.hash_key));
      return weighted_random();
  }
  return 0;
}

size_t Balancer::pick(const PickInput& in, std::span<const uint8_t> allowed) {
  const size_t n = weights_.size();
  uint64_t total = 0;
  size_t count = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!allowed[i]) continue;
    total += weights_[i];
    ++count;
  }
  if (count == 0) return kNone;
  // The k-th allowed target (k from 0).
  auto nth = [&](size_t k) {
    for (size_t i = 0; i < n; ++i) {
      if (allowed[i] && k-- == 0) return i;
    }
    return kNone;
  };
  auto weighted_random = [&] {
    uint64_t r = rng_.below(total);
    for (size_t i = 0; i < n; ++i) {
      if (!allowed[i]) continue;
      if (r < weights_[i]) return i;
      r -= weights_[i];
    }
    return nth(count - 1);
  };
  if (count == 1) return nth(0);
  switch (algo_) {
    case config::Balance::kRoundRobin:
      return rr_.next(allowed);
    case config::Balance::kRandom:
      return weighted_random();
    case config::Balance::kLeastRequest: {
      size_t a = rng_.below(count);
      size_t b = rng_.below(count - 1);
      if (b >= a) ++b;
      return less_loaded(nth(a), nth(b));
    }
    case config::Balance::kConsistentHash:
      if (ring_ && !in.hash_key.empty()) return ring_->pick(hash64(in.hash_key), allowed);
      return weighted_random();
  }
  return kNone;
}

}  // namespace gatehouse::upstream
