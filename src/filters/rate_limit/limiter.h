// Rate-limit state of one rate_limit filter, shared by every worker of the process so that a
// limit is exact per instance (10/s lets 10 through, not 10 per worker). Keys are spread over
// 64 shards, each a hash map under its own mutex: two workers contend only when they decide for
// keys of the same shard at the same instant, and a decision holds the lock for a hash lookup and
// a few additions.
//
// Memory stays bounded: a key whose every TAT is in the past is the same as a key never seen
// (gcra.h), so sweep() drops such keys (the fetcher-style background task calls it about once a
// second); and past max_keys a shard evicts an entry to admit a new one (an evicted key starts
// afresh: it can only gain, never be refused wrongly).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "filters/rate_limit/gcra.h"

namespace gatehouse::filters {

class Limiter {
 public:
  static constexpr size_t kShards = 64;
  static constexpr size_t kMaxLimits = 4;

  Limiter(std::vector<gcra::Limit> limits, size_t max_keys);

  // Decides a request for `key` at `now` (ns, steady clock) against every limit: allowed only
  // if every limit allows it, and then every limit counts it. `out` gets one decision per limit.
  bool decide(std::string_view key, int64_t now, std::vector<gcra::Decision>* out);
  // Drops keys whose state has fully drained; returns how many are left.
  size_t sweep(int64_t now);
  size_t size() const;
  const std::vector<gcra::Limit>& limits() const { return limits_; }

  // Limiters are shared across reloads by identity (route, key and limits), so a reload does not
  // hand every client a fresh budget. Also the registry the sweeper walks.
  static std::shared_ptr<Limiter> shared(const std::string& identity,
                                         std::vector<gcra::Limit> limits, size_t max_keys);
  static std::vector<std::shared_ptr<Limiter>> all();

 private:
  struct State {
    std::array<int64_t, kMaxLimits> tat{};
  };
  // Lookups by string_view, without building a std::string per request.
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Shard {
    mutable std::mutex mutex;
    std::unordered_map<std::string, State, KeyHash, std::equal_to<>> keys;
    int64_t latest = 0;  // the latest `now` decided under this lock
  };
  std::vector<gcra::Limit> limits_;
  size_t max_per_shard_;
  std::array<Shard, kShards> shards_;
};

}  // namespace gatehouse::filters
