// The response cache's shared tier: entries also kept in Redis (the config's `redis` block: a
// server, a Cluster or a master found through Sentinel), so that every gateway instance in front
// of the same Redis shares what any of them stored. The in-memory store stays in front: Redis is
// asked only on a memory miss, and what it has is copied into memory. Redis being slow, down or
// confused makes the cache memory-only for that request; never an error.
//
// Layout: one hash per URL, "gh:c:" + URL, whose fields are the rest of each cache key (key
// extras and Vary variants), so that invalidating a URL is one DEL whatever its variants; one
// set per tag, "gh:ct:" + tag, of the URL hashes whose entries carry it. A hash lives as long as
// its longest-lived entry: the time it stays fresh, its stale-while-revalidate or stale-if-error
// window, and an hour more when it has a validator (a stale entry that can be revalidated is
// still worth a 304 instead of a full body).
//
// What one instance drops (an unsafe request's invalidation, an admin purge) it also adds to a
// capped stream, "gh:cp"; one worker per instance reads the stream and drops what the others
// added from its own memory tier, which would otherwise serve the old response until it expires.
// A stream, not PUBLISH: a reader cut off for a moment reads on from the last event it saw, where
// a subscriber misses what was published while it was away. (Kong's cluster events, polled from
// its database, do the same for its nodes' caches.)
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "filters/cache/entry.h"
#include "filters/filter.h"

namespace boost::asio {
class io_context;
}

namespace gatehouse::filters::cache {

struct Purge;

class SharedTier : public std::enable_shared_from_this<SharedTier> {
 public:
  SharedTier(config::Redis redis, uint64_t max_object_size)
      : redis_(std::move(redis)), max_object_size_(max_object_size) {}

  // The entry stored under the cache key `key` (a URL, extras and variant), as encoded; nullopt
  // when there is none or Redis cannot say now.
  void fetch(RequestContext& ctx, std::string_view key,
             std::function<void(std::optional<std::string>)> done) const;
  // Keeps `e` under `key` too, when it is small enough (fire and forget).
  void put(RequestContext& ctx, std::string_view key, const Entry& e) const;
  // Drops every entry of these URLs (fire and forget), from Redis and, through the stream, from
  // the other instances' memory tiers.
  void drop(RequestContext& ctx, const std::vector<std::string>& urls) const;
  // Reads the stream on this worker, unless a worker of this process already does: `apply` gets
  // each purge another instance added, on `io`'s thread. The reading stops with the worker's
  // state (its drain) or with this tier.
  void follow_purges(WorkerState& state, boost::asio::io_context& io,
                     std::function<void(const Purge&)> apply);

  const config::Redis& redis() const { return redis_; }

 private:
  friend struct PurgeFollower;
  config::Redis redis_;
  uint64_t max_object_size_;
  std::atomic<bool> followed_{false};  // a worker reads the stream
};

// A purge of `tier` on the main thread's `io` (the admin API): `done` gets how many URLs went.
void purge_shared(std::shared_ptr<const SharedTier> tier, boost::asio::io_context& io,
                  const Purge& p, std::function<void(size_t)> done);

// The live shared tiers (one per Redis configuration), for purges.
std::shared_ptr<SharedTier> shared_tier(const config::Redis& redis, uint64_t max_object_size);
std::vector<std::shared_ptr<SharedTier>> live_shared_tiers();

}  // namespace gatehouse::filters::cache
