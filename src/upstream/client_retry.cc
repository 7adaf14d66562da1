// upstream::Client, its choices: which target takes a try (through the balancer, past unhealthy
// targets and open breakers) and whether a failed try is tried again (the retry policy, the
// Retry-After of the upstream, the retry budget, the backoff). The call itself is in client.cc.
#include <algorithm>
#include <charconv>

#include "config/config.h"
#include "http/date.h"
#include "observe/log.h"
#include "upstream/client.h"

namespace gatehouse::upstream {

// Asks the balancer for a target, so that its weights and in-flight counts decide every try. When
// it picks one that will not take the request now (unhealthy, its breaker open) or the one a
// retry just left (`exclude`), it is asked again among the targets that will (as Envoy retries
// host selection with its previous-hosts predicate); the target left is taken again only when no
// other will do. False, after answering 503, when no target takes the request. Only upstreams
// with breakers pay for a clock read, and only a refused first pick for the second pass.
bool Client::choose_target(size_t exclude) {
  PickInput pick{hash_key_};
  auto now = up_->config().breaker ? net::Clock::now() : net::Clock::time_point();
  auto admits = [&](size_t t) {
    std::optional<Breaker::State> moved;
    bool ok = up_->admits(t, now, &moved);
    if (moved) breaker_moved(t, *moved);
    return ok;
  };
  // A first try takes the balancer's plain pick when that target admits it (the common case); a
  // retry picks among the others from the start, so that it takes a turn from one of them (with
  // round robin, a plain pick would give the next request's turn away).
  size_t t = exclude == kNone ? up_->balancer.pick(pick) : exclude;
  if (t == exclude || !admits(t)) {
    const size_t n = up_->targets.size();
    allowed_.assign(n, 0);
    for (size_t i = 0; i < n; ++i) allowed_[i] = i != exclude && i != t && up_->available(i, now);
    do {
      t = up_->balancer.pick(pick, allowed_);
      if (t != kNone && admits(t)) break;
      if (t != kNone) allowed_[t] = 0;  // its last half-open probe went meanwhile
    } while (t != kNone);
    if (t == kNone && exclude < n && admits(exclude)) t = exclude;
    if (t == kNone) {
      auto soonest = net::Clock::time_point::max();
      for (const auto& target : up_->targets)
        soonest = std::min(
            soonest, target.breaker ? target.breaker->open_until() : net::Clock::time_point());
      auto wait = std::chrono::ceil<std::chrono::seconds>(soonest - now).count();
      http::HeaderList retry_after;
      retry_after.emplace_back("Retry-After", std::to_string(std::max<int64_t>(1, wait)));
      fail(503, "upstream_unavailable",
           up_->name() + " has no target available (unhealthy, or its circuit breaker open)",
           std::move(retry_after));
      return false;
    }
  }
  target_ = t;
  pool_ = up_->targets[t].pool.get();
  return true;
}

void Client::breaker_moved(size_t target, Breaker::State to) {
  const char* now = state_name(to);
  spdlog::warn("circuit breaker of {} target {} is now {}", up_->name(),
               up_->targets[target].pool->address(), now);
  ++metrics_.upstreams[up_->name()].breaker_transitions[now];
}

// --- retries ---------------------------------------------------------------------------------

// The route's `retry`, else the upstream's; without one, only the immediate resend on a dead
// pooled connection happens.
const config::RetryPolicy* Client::retry_policy() const {
  return route_->retry ? &*route_->retry : up_->config().retry ? &*up_->config().retry : nullptr;
}

// A try may be retried when its failure is one the policy names, the request is safe to send again
// (RFC 9110 9.2.2: an idempotent method or an Idempotency-Key, and its body, if any, kept whole
// for replay up to `max_replay_body` -- or not yet read at all, after a connect failure; and any
// request, whatever its method, whose connection was never made, since none of it reached the
// upstream, as nginx's proxy_next_upstream error does), tries are left, and the retry budget
// allows: each request to the upstream earns `budget` of a retry and each retry spends one, or,
// when none is earned, takes one of the upstream's `min_retries_per_second` (upstream::RetryFloor),
// as Finagle's retry budget does. So retries stay under `budget` of requests plus that rate: a
// brownout cannot multiply the load, and a quiet service still gets its retries.
bool Client::may_retry(RetryReason reason) {
  const config::RetryPolicy* p = retry_policy();
  if (!p || tries_ >= p->attempts) return false;
  bool wanted =
      (reason == RetryReason::kConnectFailure && p->on_connect_failure) ||
      (reason == RetryReason::kReset && p->on_reset) ||
      (reason == RetryReason::kTimeout && p->on_timeout) ||
      (reason == RetryReason::kStatus &&
       std::find(p->on_status.begin(), p->on_status.end(), resp_.status) != p->on_status.end()) ||
      (reason == RetryReason::kGrpcStatus && (p->on_grpc >> grpc_status_ & 1));
  if (!wanted) return false;
  // An upstream's Retry-After (delta-seconds or an HTTP-date, RFC 9110 10.2.3) is honoured: the
  // retry waits that long, if the route's deadline (or, without one, the upstream's response
  // timeout) leaves room; else the answer goes to the client as it is.
  retry_after_ = net::Clock::duration::zero();
  if (reason == RetryReason::kStatus) {
    std::string_view ra = resp_.get("retry-after");
    if (!ra.empty()) {
      net::Clock::duration wait;
      uint64_t seconds = 0;
      auto [end, ec] = std::from_chars(ra.data(), ra.data() + ra.size(), seconds);
      if (ec == std::errc() && end == ra.data() + ra.size()) {
        wait = std::chrono::seconds(std::min<uint64_t>(seconds, 86400));
      } else if (auto date = http::parse_http_date(ra)) {
        // Compared before subtracting: a date in the distant past (as early as 1677) minus now
        // overflows the nanosecond count.
        auto now = std::chrono::system_clock::now();
        wait = *date > now ? std::chrono::duration_cast<net::Clock::duration>(*date - now)
                           : net::Clock::duration::zero();
      } else {
        return false;  // unreadable: the answer goes to the client
      }
      auto room = deadline_ != net::Clock::time_point::max()
                      ? deadline_ - net::coarse_now()
                      : net::Clock::duration(up_->config().response_timeout);
      if (wait >= room) return false;
      retry_after_ = wait;
    }
  }
  const bool never_sent = reason == RetryReason::kConnectFailure;
  if (!(idempotent_ || never_sent) || !body_replayable()) return false;
  auto& m = metrics_.upstreams[up_->name()];
  if (up_->retry_tokens >= 1) {
    up_->retry_tokens -= 1;
  } else if (!up_->retry_floor().take(p->min_retries_per_second, net::coarse_now())) {
    ++m.retry_budget_exhausted;
    return false;
  }
  ++m.retries[static_cast<size_t>(reason) - 1];
  return true;
}

// Full jitter (a random wait up to backoff * 2^try, capped by max_backoff), within the route's
// deadline.
net::Task<> Client::before_retry() {
  const config::RetryPolicy& p = *retry_policy();
  ++tries_;
  auto cap =
      std::min<net::Clock::duration>(p.max_backoff, p.backoff * (1u << std::min(tries_ - 1, 20u)));
  auto wait = net::Clock::duration(static_cast<int64_t>(rng_.next() % (cap.count() + 1)));
  wait = std::max(wait, retry_after_);
  if (deadline_ != net::Clock::time_point::max())
    wait = std::min(wait, std::max(net::Clock::duration::zero(), deadline_ - net::coarse_now()));
  if (wait.count() > 0) {
    net::Timer t(ex_, wait);
    co_await t.async_wait(net::use_task);
  }
  error_.clear();
  error_.status = 0;
  in_.consume(in_.size());
}

}  // namespace gatehouse::upstream
