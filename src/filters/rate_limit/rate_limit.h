// rate_limit: requests per key per window, exact within this instance (all workers share one
// Limiter; GCRA, see gcra.h), with the IETF RateLimit-Policy / RateLimit headers
// (draft-ietf-httpapi-ratelimit-headers) on every response of the route and 429 with
// Retry-After when a limit is reached.
//   plugins: { rate_limit: { limits: ["100/s", "5000/h"], key: consumer } }
// A limit is "COUNT/UNIT" (s, m, h, d) or { rate: "COUNT/UNIT", burst: N }; the burst defaults to
// COUNT (the whole quota may be used at once, then it refills evenly). Several limits apply
// together: a request passes only if every one allows it, and only then does it count.
// key: consumer | ip | route | header:NAME | claim:NAME; a request without that value (no
// consumer, no header) is keyed by its client address.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "filters/filter.h"
#include "filters/rate_limit/limiter.h"
#include "filters/registry.h"

namespace gatehouse::observe {
struct Family;
}
namespace gatehouse::redis {
class Client;
}

namespace gatehouse::filters {

class RateLimit final : public Filter {
 public:
  enum class KeyKind { kConsumer, kIp, kRoute, kHeader, kClaim };
  struct Settings {
    std::vector<std::string> names;  // per limit, for the headers ("100/s")
    std::vector<gcra::Limit> limits;
    KeyKind key = KeyKind::kConsumer;
    std::string key_name;  // header (lower case) or claim
    size_t max_keys = 1'000'000;
    // scope: cluster: every decision is one Lua script in Redis (cluster.md in docs); the local
    // limiter then serves only as the on_error: local fallback.
    bool cluster = false;
    config::Redis redis;
    std::string redis_prefix;  // "gh:rl:<identity hash>:"
  };
  RateLimit(Settings s, std::shared_ptr<Limiter> limiter);
  std::string_view name() const override { return "rate_limit"; }
  FilterStatus on_request(RequestContext& ctx) const override;
  // Cluster scope: asks Redis, then answers like the local scope.
  void resume(RequestContext& ctx, std::function<void(FilterStatus)> done) const override;

 private:
  std::string key_of(const RequestContext& ctx) const;  // at most about 64 bytes
  std::string raw_key_of(const RequestContext& ctx) const;
  FilterStatus decide_locally(RequestContext& ctx) const;
  void decide_in_redis(RequestContext& ctx, redis::Client& client,
                       std::function<void(FilterStatus)> done) const;
  FilterStatus answer(RequestContext& ctx, bool allowed,
                      const std::vector<gcra::Decision>& d) const;
  FilterStatus redis_failed(RequestContext& ctx) const;  // the on_error policy
  void count(RequestContext& ctx, bool allowed) const;   // metrics

  Settings s_;
  std::string policy_header_;  // RateLimit-Policy, the same on every response
  std::shared_ptr<Limiter> limiter_;
};

std::shared_ptr<const Filter> build_rate_limit(const BuildContext& ctx);
// Its metric families (decisions, fallbacks, Redis round trips), for the registry.
std::vector<const observe::Family*> rate_limit_metrics();

// Drops drained keys of every limiter about once a second, on the main thread's io_context.
std::unique_ptr<Background> start_limiter_sweeper(boost::asio::io_context& io);

}  // namespace gatehouse::filters
