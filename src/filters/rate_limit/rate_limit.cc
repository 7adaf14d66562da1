#include "filters/rate_limit/rate_limit.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <charconv>
#include <chrono>

#include "jwt/jwt.h"
#include "observe/log.h"

namespace gatehouse::filters {
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
  if (ec != std::errc() || end != s.data() + slash || *count < 1 || *count > 1'000'000'000) return false;
  std::string_view unit = s.substr(slash + 1);
  constexpr int64_t kS = 1'000'000'000;
  if (unit == "s") *period_ns = kS;
  else if (unit == "m") *period_ns = 60 * kS;
  else if (unit == "h") *period_ns = 3600 * kS;
  else if (unit == "d") *period_ns = 86400 * kS;
  else return false;
  return true;
}

// RateLimit: "<policy>";r=<remaining>;t=<reset> (draft-ietf-httpapi-ratelimit-headers 4).
std::string rate_limit_header(const std::vector<std::string>& names,
                              const std::vector<gcra::Decision>& d) {
  std::string out;
  for (size_t i = 0; i < d.size(); ++i) {
    if (i) out += ", ";
    out += '"' + names[i] + "\";r=" + std::to_string(d[i].remaining) + ";t=" + std::to_string(d[i].reset_s);
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

std::string RateLimit::key_of(const RequestContext& ctx) const {
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
      if (ctx.jwt_claims) {
        if (auto v = jwt::claim_text(*ctx.jwt_claims, s_.key_name); !v.empty()) return "j:" + v;
      }
      break;
  }
  return "ip:" + std::string(ctx.client_ip);  // the fallback for a request without the value
}

FilterStatus RateLimit::on_request(RequestContext& ctx) const {
  thread_local std::vector<gcra::Decision> decisions;
  bool allowed = limiter_->decide(key_of(ctx), steady_ns(), &decisions);
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
      if (auto v = limits[i]["burst"]) burst = r.integer(v, config::child(ip, "burst"), 1, 1'000'000'000).value_or(0);
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
    if (key == "consumer") s.key = RateLimit::KeyKind::kConsumer;
    else if (key == "ip") s.key = RateLimit::KeyKind::kIp;
    else if (key == "route") s.key = RateLimit::KeyKind::kRoute;
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
      r.error(sc, config::child(ctx.path, "scope"),
              "'scope: cluster' is not supported yet by this version of gatehouse");
      ok = false;
    } else if (scope != "local") {
      r.error(sc, config::child(ctx.path, "scope"), "expected local or cluster");
      ok = false;
    }
  }
  if (auto m = n["max_keys"]) {
    if (auto v = r.integer(m, config::child(ctx.path, "max_keys"), 64, 100'000'000)) s.max_keys = *v;
  }
  if (!ok) return nullptr;
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

void release_rate_limit_connections() {}

std::unique_ptr<Background> start_limiter_sweeper(boost::asio::io_context& io) {
  return std::make_unique<Sweeper>(io);
}

}  // namespace gatehouse::filters
