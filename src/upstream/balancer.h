// Load balancing. A Balancer is per worker and per upstream (no sharing, no atomics); the
// consistent-hash ring is immutable and shared by all workers through the Snapshot, so every
// worker maps a key to the same target.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"

namespace gatehouse::upstream {

// "No target": what a pick among allowed targets returns when none is allowed.
constexpr size_t kNone = SIZE_MAX;

// splitmix64-seeded xorshift: fast, per worker, not for security.
class Random {
 public:
  explicit Random(uint64_t seed);
  uint64_t next();
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }

 private:
  uint64_t s_;
};

uint64_t hash64(std::string_view data);

// Smooth weighted round robin (the NGINX algorithm): with weights 5,1,1 it yields a a b a c a a,
// never long runs, and exactly the weights' proportions over every cycle.
class SmoothWeighted {
 public:
  explicit SmoothWeighted(std::vector<uint32_t> weights);
  size_t next();
  // The same among the targets `allowed` marks (non-zero), as if the others had weight 0 for
  // this pick; kNone when it marks none.
  size_t next(std::span<const uint8_t> allowed);
  size_t size() const { return weights_.size(); }

 private:
  std::vector<uint32_t> weights_;
  std::vector<int64_t> current_;
  int64_t total_ = 0;
};

// A hash ring with virtual nodes (about 160 per target, in proportion to weight), each placed by
// hashing the target's address, so a target keeps its points when others come or go: adding one
// target to N moves about 1/(N+1) of the keys.
class HashRing {
 public:
  explicit HashRing(const std::vector<config::Target>& targets);
  size_t pick(uint64_t key_hash) const;
  // The first target from the key's point on, clockwise, that `allowed` marks (as Envoy's ring
  // hash skips unavailable hosts); kNone when it marks none.
  size_t pick(uint64_t key_hash, std::span<const uint8_t> allowed) const;

 private:
  std::vector<std::pair<uint64_t, uint32_t>> points_;  // sorted by hash
};

struct PickInput {
  std::string_view hash_key;  // for consistent_hash; empty = no key (falls back to random)
};

class Balancer {
 public:
  // `ring` must outlive the balancer (it lives in the snapshot); null unless consistent_hash.
  Balancer(const config::Upstream& up, const HashRing* ring, uint64_t seed);

  size_t pick(const PickInput& in);
  // A pick among the targets `allowed` marks (non-zero; by target index), by the same algorithm
  // and weights: for a try that must pass over some targets (unhealthy, breaker open, or the one
  // a retry leaves). kNone when it marks none.
  size_t pick(const PickInput& in, std::span<const uint8_t> allowed);
  void started(size_t target) { ++in_flight_[target]; }
  void finished(size_t target) { --in_flight_[target]; }
  uint32_t in_flight(size_t target) const { return in_flight_[target]; }

 private:
  size_t less_loaded(size_t a, size_t b) const;

  config::Balance algo_;
  std::vector<uint32_t> weights_;
  uint64_t total_weight_ = 0;
  std::vector<uint32_t> in_flight_;
  SmoothWeighted rr_;
  const HashRing* ring_;
  Random rng_;
};

}  // namespace gatehouse::upstream
