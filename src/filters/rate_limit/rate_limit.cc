#include "filters/rate_limit/rate_limit.h"

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <chrono>
#include <span>
#include <variant>

#include "crypto/digest.h"
#include "filters/jwt_auth/claims.h"
#include "filters/redis_clients.h"
#include "jwt/jwt.h"
#include "observe/log.h"
#include "observe/metrics.h"
#include "redis/client.h"

namespace gatehouse::filters {
namespace {

// The plugin's metrics, registered through the plugin registry. A decision Redis could not make
// is a fallback, counted by the on_error policy that answered instead, and also under what that
// policy decided.
constexpr std::string_view kResults[] = {"allowed", "limited"};
const observe::Family kDecisions{"gatehouse_rate_limit_decisions_total",
                                 "Rate-limit decisions by route and result.",
                                 observe::Family::Kind::kCounter, "result", kResults};
const observe::Family kFallbacks{
    "gatehouse_rate_limit_fallbacks_total",
    "Cluster-scope decisions Redis could not make (slow, down), answered by redis.on_error.",
    observe::Family::Kind::kCounter,
    {},
    {}};
const observe::Family kRedisDuration{
    "gatehouse_rate_limit_redis_duration_seconds",
    "Cluster scope: the decision script's round trip to Redis (or until it failed), by route.",
    observe::Family::Kind::kHistogram,
    {},
    {}};

}  // namespace

std::vector<const observe::Family*> rate_limit_metrics() {
  return {&kDecisions, &kFallbacks, &kRedisDuration};
}

namespace {

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// "100/s" -> count 100, period 1 s.
bool parse_rate(std::string_view s, int64_t* count, int64_t* period_ns) {
  size_t slash = s.find('/');
  if (slash == std::string_view::npos) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + slash, *count);
  if (ec != std::errc() || end != s.data() + slash || *count < 1 || *count > 1'000'000'000)
    return false;
  std::string_view unit = s.substr(slash + 1);
  constexpr int64_t kS = 1'000'000'000;
  if (unit == "s")
    *period_ns = kS;
  else if (unit == "m")
    *period_ns = 60 * kS;
  else if (unit == "h")
    *period_ns = 3600 * kS;
  else if (unit == "d")
    *period_ns = 86400 * kS;
  else
    return false;
  return true;
}

// RateLimit: "<policy>";r=<remaining>;t=<reset> (draft-ietf-httpapi-ratelimit-headers 4).
std::string rate_limit_header(const std::vector<std::string>& names,
                              const std::vector<gcra::Decision>& d) {
  std::string out;
  for (size_t i = 0; i < d.size(); ++i) {
    if (i) out += ", ";
    out += '"' + names[i] + "\";r=" + std::to_string(d[i].remaining) +
           ";t=" + std::to_string(d[i].reset_s);
  }
  return out;
}

}  // namespace

RateLimit::RateLimit(Settings s, std::shared_ptr<Limiter> limiter)
    : s_(std::move(s)), limiter_(std::move(limiter)) {
  // RateLimit-Policy: "<policy>";q=<quota>;w=<window> (draft-ietf-httpapi-ratelimit-headers 3).
  for (size_t i = 0; i < s_.limits.size(); ++i) {
    if (i) policy_header_ += ", ";
    policy_header_ += '"' + s_.names[i] + "\";q=" + std::to_string(s_.limits[i].count) +
                      ";w=" + std::to_string(s_.limits[i].window_s);
  }
}

// Keys come from the client (a header, a claim): a long one is replaced by its digest, so that
// neither this process's memory per key nor Redis's grows with what a client sends.
static std::string bounded(std::string key) {
  constexpr size_t kMaxKeyBytes = 64;
  if (key.size() <= kMaxKeyBytes) return key;
  crypto::Sha256 d = crypto::sha256(key);
  return "sha256:" + crypto::hex(d.data(), d.size());
}

std::string RateLimit::key_of(const RequestContext& ctx) const { return bounded(raw_key_of(ctx)); }

std::string RateLimit::raw_key_of(const RequestContext& ctx) const {
  switch (s_.key) {
    case KeyKind::kConsumer:
      if (ctx.consumer) return "c:" + ctx.consumer->name;
      break;
    case KeyKind::kIp:
      break;
    case KeyKind::kRoute:
      return "route";
    case KeyKind::kHeader:
      if (auto v = ctx.request->get(s_.key_name); !v.empty()) return "h:" + std::string(v);
      break;
    case KeyKind::kClaim:
      if (const auto* claims = ctx.slots.get(kJwtClaims); claims && *claims) {
        if (auto v = jwt::claim_text(**claims, s_.key_name); !v.empty()) return "j:" + v;
      }
      break;
  }
  return "ip:" + std::string(ctx.client_ip);  // the fallback for a request without the value
}

FilterStatus RateLimit::on_request(RequestContext& ctx) const {
  if (s_.cluster) return FilterStatus::kPause;  // resume() asks Redis
  return decide_locally(ctx);
}

FilterStatus RateLimit::decide_locally(RequestContext& ctx) const {
  std::vector<gcra::Decision> decisions;
  decisions.reserve(Limiter::kMaxLimits);
  bool allowed = limiter_->decide(key_of(ctx), steady_ns(), &decisions);
  return answer(ctx, allowed, decisions);
}

FilterStatus RateLimit::answer(RequestContext& ctx, bool allowed,
                               const std::vector<gcra::Decision>& decisions) const {
  count(ctx, allowed);
  std::string state = rate_limit_header(s_.names, decisions);
  if (allowed) {
    ctx.response_add.emplace_back("RateLimit-Policy", policy_header_);
    ctx.response_add.emplace_back("RateLimit", std::move(state));
    return FilterStatus::kContinue;
  }
  int64_t retry = 0;
  for (const auto& d : decisions) {
    if (!d.allowed) retry = std::max(retry, d.retry_after_s);
  }
  ctx.reply.status = 429;
  ctx.reply.code = "rate_limited";
  ctx.reply.message = "too many requests; retry in " + std::to_string(retry) + " s";
  ctx.reply.headers.emplace_back("Retry-After", std::to_string(retry));
  ctx.reply.headers.emplace_back("RateLimit-Policy", policy_header_);
  ctx.reply.headers.emplace_back("RateLimit", std::move(state));
  return FilterStatus::kRespond;
}

std::shared_ptr<const Filter> build_rate_limit(const BuildContext& ctx) {
  const auto& r = ctx.reader;
  const auto& n = ctx.settings;
  if (!r.check_map(n, ctx.path, {"limits", "key", "scope", "max_keys"})) return nullptr;
  RateLimit::Settings s;
  bool ok = true;
  auto lp = config::child(ctx.path, "limits");
  auto limits = n["limits"];
  if (!limits || !limits.IsSequence() || limits.size() == 0) {
    r.error(limits ? limits : n, lp, "expected a list of limits such as [\"100/s\", \"5000/h\"]");
    return nullptr;
  }
  if (limits.size() > Limiter::kMaxLimits) {
    r.error(limits, lp, "at most " + std::to_string(Limiter::kMaxLimits) + " limits per route");
    return nullptr;
  }
  std::string identity = std::string(ctx.route) + "|";
  for (size_t i = 0; i < limits.size(); ++i) {
    std::string ip = config::index(lp, i);
    std::optional<std::string> rate;
    int64_t burst = 0;
    if (limits[i].IsMap()) {
      if (!r.check_map(limits[i], ip, {"rate", "burst"})) {
        ok = false;
        continue;
      }
      if (auto v = limits[i]["rate"]) rate = r.str(v, config::child(ip, "rate"));
      if (auto v = limits[i]["burst"])
        burst = r.integer(v, config::child(ip, "burst"), 1, 1'000'000'000).value_or(0);
    } else {
      rate = r.str(limits[i], ip);
    }
    int64_t count = 0, period = 0;
    if (!rate || !parse_rate(*rate, &count, &period)) {
      r.error(limits[i], ip, "expected COUNT/UNIT with UNIT s, m, h or d, e.g. \"100/s\"");
      ok = false;
      continue;
    }
    s.names.push_back(*rate);
    s.limits.push_back(gcra::make_limit(count, period, burst > 0 ? burst : count));
    identity += *rate + "b" + std::to_string(burst) + ",";
  }
  if (auto k = n["key"]) {
    auto key = r.str(k, config::child(ctx.path, "key")).value_or("");
    if (key == "consumer")
      s.key = RateLimit::KeyKind::kConsumer;
    else if (key == "ip")
      s.key = RateLimit::KeyKind::kIp;
    else if (key == "route")
      s.key = RateLimit::KeyKind::kRoute;
    else if (key.starts_with("header:") && key.size() > 7) {
      s.key = RateLimit::KeyKind::kHeader;
      s.key_name = key.substr(7);
      std::transform(s.key_name.begin(), s.key_name.end(), s.key_name.begin(), ::tolower);
    } else if (key.starts_with("claim:") && key.size() > 6) {
      s.key = RateLimit::KeyKind::kClaim;
      s.key_name = key.substr(6);
    } else {
      r.error(k, config::child(ctx.path, "key"),
              "expected consumer, ip, route, header:NAME or claim:NAME");
      ok = false;
    }
    identity += "|" + key;
  }
  if (auto sc = n["scope"]) {
    auto scope = r.str(sc, config::child(ctx.path, "scope")).value_or("");
    if (scope == "cluster") {
      s.cluster = true;
      s.redis = ctx.config.redis;
      std::string error;
      if (!ctx.config.redis.enabled) {
        r.error(sc, config::child(ctx.path, "scope"), "scope: cluster needs the redis section");
        ok = false;
      } else if (auto ep = redis::parse_url(ctx.config.redis.url, &error); !ep) {
        r.error(sc, config::child(ctx.path, "scope"), "the redis url is not usable: " + error);
        ok = false;
      } else if (ctx.config.redis.cluster && ep->db != 0) {
        r.error(sc, config::child(ctx.path, "scope"),
                "the redis url names database " + std::to_string(ep->db) +
                    ", but Redis Cluster has only 0");
        ok = false;
      }
    } else if (scope != "local") {
      r.error(sc, config::child(ctx.path, "scope"), "expected local or cluster");
      ok = false;
    }
  }
  if (auto m = n["max_keys"]) {
    if (auto v = r.integer(m, config::child(ctx.path, "max_keys"), 64, 100'000'000))
      s.max_keys = *v;
  }
  if (!ok) return nullptr;
  if (s.cluster) {
    // Keys in Redis are named after this limiter's identity, so that two routes (or a changed
    // limit) never share counts by accident, and the same route on every instance does.
    // A stable hash (the same on every instance and version).
    crypto::Sha256 d = crypto::sha256(identity);
    s.redis_prefix = "gh:rl:" + crypto::hex(d.data(), 6) + ":";
  }
  auto limiter = Limiter::shared(identity, s.limits, s.max_keys);
  return std::make_shared<RateLimit>(std::move(s), std::move(limiter));
}

namespace {

class Sweeper final : public Background {
 public:
  explicit Sweeper(boost::asio::io_context& io) : timer_(io) { schedule(); }
  void stop() override {
    stopped_ = true;
    timer_.cancel();
  }

 private:
  void schedule() {
    timer_.expires_after(std::chrono::seconds(1));
    timer_.async_wait([this](boost::system::error_code ec) {
      if (ec || stopped_) return;
      int64_t now = steady_ns();
      for (auto& l : Limiter::all()) l->sweep(now);
      schedule();
    });
  }
  boost::asio::steady_timer timer_;
  bool stopped_ = false;
};

}  // namespace

// --- cluster scope -------------------------------------------------------------------------

namespace {

// GCRA for several limits at once, atomically, on Redis's own clock (so the instances' clocks
// never matter). KEYS[i] holds limit i's TAT in microseconds; ARGV[2i-1], ARGV[2i] are its
// interval and tolerance. A request counts only if every limit allows it (as Limiter::decide).
// Returns { allowed, then per limit: allowed, remaining, reset_s, retry_after_s }.
const redis::Script& gcra_script() {
  static const redis::Script script(R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local base, ok = {}, 1
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i])) or 0
  base[i] = math.max(tat, now)
  if base[i] - now > tonumber(ARGV[2 * i]) then ok = 0 end
end
local out = { ok }
for i = 1, #KEYS do
  local T, tau = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local ahead, fits = base[i] - now, 1
  if ahead > tau then fits = 0 end
  if ok == 1 then
    local tat = base[i] + T
    ahead = tat - now
    redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.ceil(ahead / 1000) + 1000)
  end
  local remaining = 0
  if ahead <= tau then remaining = math.floor((tau - ahead) / T) + 1 end
  local retry = 0
  if fits == 0 then retry = math.max(1, math.ceil((base[i] - tau - now) / 1000000)) end
  out[#out + 1] = fits
  out[#out + 1] = remaining
  out[#out + 1] = math.ceil(ahead / 1000000)
  out[#out + 1] = retry
end
return out
)lua");
  return script;
}

bool parse_decision(const redis::Result& r, size_t limits, bool* allowed,
                    std::vector<gcra::Decision>* out) {
  const auto* reply = std::get_if<redis::Reply>(&r);
  if (!reply || reply->type != redis::Reply::Type::kArray ||
      reply->elements.size() != 1 + 4 * limits)
    return false;
  for (const auto& e : reply->elements) {
    if (e.type != redis::Reply::Type::kInteger) return false;
  }
  *allowed = reply->elements[0].integer == 1;
  out->clear();
  for (size_t i = 0; i < limits; ++i) {
    const auto* e = &reply->elements[1 + 4 * i];
    out->push_back({e[0].integer == 1, e[1].integer, e[2].integer, e[3].integer});
  }
  return true;
}

}  // namespace

void RateLimit::resume(RequestContext& ctx, std::function<void(FilterStatus)> done) const {
  if (!ctx.io || !ctx.worker) return done(redis_failed(ctx));
  with_redis(*ctx.worker, *ctx.io, s_.redis,
             [this, &ctx, done = std::move(done)](redis::Client* client) mutable {
               if (!client) return done(redis_failed(ctx));
               decide_in_redis(ctx, *client, std::move(done));
             });
}

void RateLimit::decide_in_redis(RequestContext& ctx, redis::Client& client,
                                std::function<void(FilterStatus)> done) const {
  // One hash tag for all of a key's limits: one slot, so a Redis Cluster runs the script too.
  std::string base = s_.redis_prefix + "{" + key_of(ctx) + "}:";
  std::array<std::string, Limiter::kMaxLimits> keys, args;
  std::array<std::string_view, Limiter::kMaxLimits> key_views;
  std::array<std::string_view, 2 * Limiter::kMaxLimits> arg_views;
  std::array<std::string, 2 * Limiter::kMaxLimits> arg_text;
  const size_t n = s_.limits.size();
  for (size_t i = 0; i < n; ++i) {
    keys[i] = base + std::to_string(i);
    key_views[i] = keys[i];
    arg_text[2 * i] = std::to_string(s_.limits[i].interval_ns / 1000);
    arg_text[2 * i + 1] = std::to_string(s_.limits[i].tolerance_ns / 1000);
    arg_views[2 * i] = arg_text[2 * i];
    arg_views[2 * i + 1] = arg_text[2 * i + 1];
  }
  auto start = std::chrono::steady_clock::now();
  client.eval(
      gcra_script(), std::span<const std::string_view>(key_views.data(), n),
      std::span<const std::string_view>(arg_views.data(), 2 * n), s_.redis.timeout,
      [this, &ctx, start, done = std::move(done)](redis::Result r) {
        if (ctx.metrics) {
          ctx.metrics->observe(
              kRedisDuration, ctx.route->name,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        }
        std::vector<gcra::Decision> decisions;
        bool allowed = false;
        if (!parse_decision(r, s_.limits.size(), &allowed, &decisions))
          return done(redis_failed(ctx));
        done(answer(ctx, allowed, decisions));
      });
}

// Redis is down, slow or confused: never a 5xx because of it; the policy decides.
FilterStatus RateLimit::redis_failed(RequestContext& ctx) const {
  if (ctx.metrics) ctx.metrics->count(kFallbacks, ctx.route->name);
  switch (s_.redis.on_error) {
    case config::Redis::OnError::kLocal:
      return decide_locally(ctx);
    case config::Redis::OnError::kAllow:
      count(ctx, true);
      return FilterStatus::kContinue;
    case config::Redis::OnError::kDeny:
      break;
  }
  count(ctx, false);
  ctx.reply.status = 429;
  ctx.reply.code = "rate_limited";
  ctx.reply.message = "the shared rate limit cannot be checked now; retry in 1 s";
  ctx.reply.headers.emplace_back("Retry-After", "1");
  return FilterStatus::kRespond;
}

void RateLimit::count(RequestContext& ctx, bool allowed) const {
  if (!ctx.metrics || !ctx.route) return;
  ctx.metrics->count(kDecisions, ctx.route->name, allowed ? 0 : 1);
}

std::unique_ptr<Background> start_limiter_sweeper(boost::asio::io_context& io) {
  return std::make_unique<Sweeper>(io);
}

}  // namespace gatehouse::filters
