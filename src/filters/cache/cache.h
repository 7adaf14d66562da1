// cache: a shared HTTP cache in front of the route's upstream, as RFC 9111 describes one (with
// RFC 9110's conditional requests, RFC 5861's stale-while-revalidate and stale-if-error, and RFC
// 9211's Cache-Status), in the process-wide store the top-level `cache` block sizes:
//   cache: { max_size: 256MiB, max_object_size: 8MiB }
//   routes: [ { ..., plugins: { cache: { ttl: 1h } } } ]
// Route settings (docs/caching.md):
//   ttl               freshness for responses that carry none (off by default)
//   override          true: `ttl` wins over the origin's freshness (a deliberate deviation)
//   key               extras of the cache key: [header:NAME, consumer]
//   share_set_cookie  store responses with Set-Cookie too (off: they are never shared)
//   tag_header        the response field whose tags a purge may name (e.g. Surrogate-Key)
//   heuristic_fraction  of the time since Last-Modified, for heuristic freshness (0.1)
//   max_object_size   a smaller per-entry limit for this route
//   coalesce          concurrent misses for one key send one request upstream (true)
//   coalesce_timeout  the longest the others wait for it before going themselves (5s)
//
// The request phase looks the request up: a hit is answered by the filter itself (the stored
// body is shared, never copied); a stale entry is revalidated through the route's own upstream
// call, made conditional; a miss goes on. The response phase decides what to store and taps the
// body as it streams to the client, storing it when it ends complete; a 304 freshens the entry;
// a failed revalidation may be answered stale. Unsafe requests invalidate what they name.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "filters/cache/entry.h"
#include "filters/cache/flights.h"
#include "filters/cache/key.h"
#include "filters/cache/shared_tier.h"
#include "filters/cache/status.h"
#include "filters/cache/store.h"
#include "filters/filter.h"
#include "observe/metrics.h"

namespace gatehouse::filters {

struct BuildContext;

namespace cache {

using MemoryStore = Store<Entry>;
struct Pending;
struct Conditions;
struct FlightWait;
class Flight;

class Cache final : public Filter {
 public:
  struct Settings {
    EntryRules rules;
    bool share_set_cookie = false;
    uint64_t max_object_size = 0;
    std::vector<std::string> key_headers;  // lower case
    bool key_consumer = false;
    bool coalesce = true;
    std::chrono::milliseconds coalesce_timeout{5000};  // the longest a miss waits for another
    std::shared_ptr<SharedTier> shared;                // tier: redis; null: memory only
  };
  Cache(Settings s, std::shared_ptr<MemoryStore> store);
  std::string_view name() const override { return "cache"; }
  FilterStatus on_request(RequestContext& ctx) const override;
  // A miss that waits for another request's response for the same key (coalescing).
  void resume(RequestContext& ctx, std::function<void(FilterStatus)> done) const override;
  FilterStatus on_response(RequestContext& ctx) const override;
  void on_response_tap(RequestContext& ctx, std::string_view piece, bool end) const override;

 private:
  pool::String primary_key(const RequestContext& ctx) const;
  FilterStatus lookup(RequestContext& ctx, Pending& p) const;
  FilterStatus go_forward(RequestContext& ctx, Pending& p) const;
  void start_refresh(RequestContext& ctx, const Pending& p, const MemoryStore::Ptr& entry,
                     std::shared_ptr<Flight> flight) const;
  void add_validators(RequestContext& ctx, const Entry& entry) const;
  void keep_request_fields(const RequestContext& ctx, Pending& p) const;
  void go_on(RequestContext& ctx, FilterStatus status,
             std::function<void(FilterStatus)> done) const;
  void fetch_shared(RequestContext& ctx, std::function<void(FilterStatus)> done) const;
  void wait_for_flight(RequestContext& ctx, std::function<void(FilterStatus)> done) const;
  void watch_flight(RequestContext& ctx, const std::shared_ptr<FlightWait>& wait) const;
  void settle(RequestContext& ctx, FlightWait& wait, FilterStatus status) const;
  bool follow(RequestContext& ctx, Pending& p, const std::shared_ptr<Flight>& flight) const;
  // Answers from `entry` (a hit, a freshened entry, or a stale one): 304 when the request's own
  // conditions say so.
  FilterStatus answer(RequestContext& ctx, const Conditions& c, const MemoryStore::Ptr& entry,
                      CacheStatus status) const;
  // `body`: a whole body there is already (a filter's answer), else the one that streams.
  void store_response(RequestContext& ctx, const http::ResponseHead& resp,
                      std::optional<std::string_view> body, Pending& p, CacheStatus* status) const;
  void store_reply(RequestContext& ctx, Pending& p, CacheStatus* status) const;
  // The variant key `vary` selects for the request (p.variant; cleared when it names nothing).
  void select_variant(Pending& p, const VarySpec& vary) const;
  // The marker at the primary key that names the fields `vary` selects variants by (4.1).
  void keep_marker(RequestContext& ctx, const Pending& p, const VarySpec& vary) const;
  // Into the memory store; `hash`: the key's, when the caller has it.
  bool keep(std::string_view key, MemoryStore::Ptr entry, std::optional<size_t> hash = {}) const;
  void invalidate(RequestContext& ctx, const Pending& p) const;
  void count(RequestContext& ctx, size_t event) const;

  Settings s_;
  std::shared_ptr<MemoryStore> store_;
};

// The process's store for a config's `cache` block: the same one while max_size stays the same,
// so a reload keeps what was stored.
std::shared_ptr<MemoryStore> shared_store(uint64_t max_size);

// A purge over every live in-memory store; returns how many entries went.
size_t purge(const Purge& p);

// The admin API's purge, on the main thread's `io`: `body` is {"url": U}, {"prefix": P} or
// {"tag": T}; `done` gets the status and the JSON answer ({"purged": N, "shared": M}: entries
// dropped from memory, URLs from the shared tier; or a 400 error saying what is wrong).
void purge_from_json(std::string_view body, boost::asio::io_context& io,
                     std::function<void(int, std::string)> done);

// The stores' size (bytes, entries, evictions), for the metrics exposition.
std::vector<observe::ProcessMetrics::Value> process_values();

}  // namespace cache

std::shared_ptr<const Filter> build_cache(const BuildContext& ctx);
std::vector<const observe::Family*> cache_metrics();

}  // namespace gatehouse::filters
