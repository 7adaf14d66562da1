// The upstreams section: targets, balancing, timeouts, bulkheads, TLS, and the resilience policies
// (health_check, retry, circuit_breaker; a route's retry is read here too). Part of the Loader
// (config/loader.h).
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <set>

#include "config/loader.h"
#include "grpc/status.h"

namespace gatehouse::config {

namespace {

constexpr uint64_t kMaxReplayBody = 64ull << 20;  // retry.max_replay_body: held per request

// The host part of "host:port", "[v6]:port" as written (lower case, no brackets).
std::string address_host(std::string_view text) {
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    return lower(std::string(text.substr(1, close == std::string_view::npos ? 0 : close - 1)));
  }
  return lower(std::string(text.substr(0, text.rfind(':'))));
}

}  // namespace

std::optional<double> share(const YAML::Node& v) {
  if (!v.IsScalar()) return std::nullopt;
  std::string text = v.Scalar();
  bool percent = !text.empty() && text.back() == '%';
  if (percent) text.pop_back();
  char* end = nullptr;
  double x = std::strtod(text.c_str(), &end);
  if (text.empty() || *end) return std::nullopt;
  return percent ? x / 100 : x;
}

void Loader::upstreams(const YAML::Node& n, std::vector<Upstream>* out) {
  if (!n.IsMap()) {
    r_.error(n, "upstreams", "expected a mapping of upstream names to upstreams");
    return;
  }
  std::set<std::string> seen;
  for (auto it = n.begin(); it != n.end(); ++it) {
    std::string name = it->first.Scalar();
    std::string path = child("upstreams", name);
    if (!seen.insert(name).second) {
      r_.error(it->first, path, "duplicate upstream '" + name + "'");
      continue;
    }
    YAML::Node u = it->second;  // a copy: `it->` returns a temporary
    if (!r_.check_map(u, path,
                      {"targets", "balance", "hash_on", "timeouts", "protocol",
                       "max_idle_per_target", "max_concurrent_requests", "max_pending", "tls",
                       "circuit_breaker", "retry", "health_check"}))
      continue;
    Upstream up;
    up.name = name;
    if (auto t = u["targets"]; t && t.IsSequence() && t.size() > 0) {
      for (size_t i = 0; i < t.size(); ++i) {
        std::string tp = index(child(path, "targets"), i);
        if (!r_.check_map(t[i], tp, {"address", "weight"})) continue;
        Target target;
        if (!t[i]["address"]) {
          r_.error(t[i], tp, "'address' is required");
          continue;
        }
        auto a = address(t[i]["address"], child(tp, "address"), true);
        if (!a) continue;
        target.address = *a;
        target.host = address_host(t[i]["address"].Scalar());
        if (auto w = t[i]["weight"]) {
          if (auto v = r_.integer(w, child(tp, "weight"), 1, 10'000))
            target.weight = static_cast<uint32_t>(*v);
        }
        up.targets.push_back(target);
      }
    } else {
      r_.error(t ? YAML::Node(t) : u, child(path, "targets"), "at least one target is required");
    }
    if (auto b = u["balance"]) {
      if (auto s = r_.str(b, child(path, "balance"))) {
        if (*s == "round_robin")
          up.balance = Balance::kRoundRobin;
        else if (*s == "least_request")
          up.balance = Balance::kLeastRequest;
        else if (*s == "random")
          up.balance = Balance::kRandom;
        else if (*s == "consistent_hash")
          up.balance = Balance::kConsistentHash;
        else
          r_.error(b, child(path, "balance"),
                   "unknown balance '" + *s +
                       "' (expected round_robin, least_request, random, consistent_hash)");
      }
    }
    if (auto h = u["hash_on"]) {
      if (auto s = r_.str(h, child(path, "hash_on"))) {
        if (*s == "ip") {
          up.hash_on.kind = HashOn::Kind::kClientIp;
        } else if (s->rfind("header:", 0) == 0 && is_token(s->substr(7))) {
          up.hash_on = {HashOn::Kind::kHeader, lower(s->substr(7))};
        } else if (s->rfind("cookie:", 0) == 0 && is_token(s->substr(7))) {
          up.hash_on = {HashOn::Kind::kCookie, s->substr(7)};
        } else {
          r_.error(h, child(path, "hash_on"),
                   "invalid hash_on '" + *s + "' (expected header:NAME, cookie:NAME or ip)");
        }
      }
      if (up.balance != Balance::kConsistentHash)
        r_.error(h, child(path, "hash_on"), "hash_on needs balance: consistent_hash");
    }
    if (auto t = u["timeouts"]) {
      std::string tp = child(path, "timeouts");
      if (r_.check_map(t, tp, {"connect", "response", "queue"})) {
        if (auto v = t["connect"]) {
          if (auto d = r_.duration(v, child(tp, "connect"))) up.connect_timeout = *d;
        }
        if (auto v = t["response"]) {
          if (auto d = r_.duration(v, child(tp, "response"))) up.response_timeout = *d;
        }
        up.queue_timeout = up.connect_timeout;  // unless set: as HAProxy's `timeout queue`
        if (auto v = t["queue"]) {
          if (auto d = r_.duration(v, child(tp, "queue"))) up.queue_timeout = *d;
        }
      }
    }
    if (auto p = u["protocol"]) {
      if (auto s = r_.str(p, child(path, "protocol"))) {
        if (*s == "http2") {
          up.protocol = Upstream::Protocol::kHttp2;
        } else if (*s == "grpc") {
          up.protocol = Upstream::Protocol::kGrpc;
        } else if (*s != "http1") {
          r_.error(p, child(path, "protocol"),
                   "unknown protocol '" + *s + "' (expected http1, http2 or grpc)");
        }
      }
    }
    if (auto b = u["circuit_breaker"]) up.breaker = breaker(b, child(path, "circuit_breaker"));
    if (auto rt = u["retry"]) up.retry = retry(rt, child(path, "retry"));
    if (auto hc = u["health_check"])
      up.health_check =
          health_check(hc, child(path, "health_check"), up.protocol == Upstream::Protocol::kGrpc);
    if (auto m = u["max_concurrent_requests"]) {
      if (auto v = r_.integer(m, child(path, "max_concurrent_requests"), 1, 10'000'000))
        up.max_concurrent_requests = static_cast<uint32_t>(*v);
    }
    if (auto m = u["max_pending"]) {
      if (auto v = r_.integer(m, child(path, "max_pending"), 0, 10'000'000))
        up.max_pending = static_cast<uint32_t>(*v);
      if (!up.max_concurrent_requests)
        r_.error(m, child(path, "max_pending"), "max_pending needs max_concurrent_requests");
    }
    if (auto m = u["max_idle_per_target"]) {
      if (auto v = r_.integer(m, child(path, "max_idle_per_target"), 0, 100'000))
        up.max_idle_per_target = static_cast<uint32_t>(*v);
    }
    if (auto t = u["tls"]) up.tls = client_tls(t, child(path, "tls"), up.http2());
    out->push_back(std::move(up));
  }
}

std::optional<HealthCheck> Loader::health_check(const YAML::Node& n, const std::string& path,
                                                bool grpc) {
  if (!r_.check_map(n, path,
                    {"path", "interval", "timeout", "unhealthy_after", "healthy_after",
                     "expected_statuses", "initial_state", "service"}))
    return std::nullopt;
  HealthCheck h;
  h.grpc = grpc;
  for (const char* key : {"path", "expected_statuses"}) {
    if (grpc && n[key])
      r_.error(n[key], child(path, key),
               "a gRPC upstream is checked with grpc.health.v1.Health/Check (name the service "
               "with `service`), not an HTTP path and status");
  }
  if (auto v = n["service"]) {
    if (!grpc)
      r_.error(v, child(path, "service"), "`service` is for gRPC upstreams (protocol: grpc)");
    else if (auto s = r_.str(v, child(path, "service")))
      h.service = *s;
  }
  if (auto v = n["path"]) {
    h.path = r_.str(v, child(path, "path")).value_or("/");
    if (h.path.empty() || h.path[0] != '/' || h.path.find_first_of(" \r\n") != std::string::npos)
      r_.error(v, child(path, "path"), "expected a path such as /healthz");
  }
  auto dur = [&](const char* key, Duration* out) {
    if (auto v = n[key]) {
      if (auto d = r_.duration(v, child(path, key))) {
        if (d->count() < 10)
          r_.error(v, child(path, key), "must be at least 10ms");
        else
          *out = *d;
      }
    }
  };
  dur("interval", &h.interval);
  dur("timeout", &h.timeout);
  auto count = [&](const char* key, uint32_t* out) {
    if (auto v = n[key]) {
      if (auto x = r_.integer(v, child(path, key), 1, 100)) *out = static_cast<uint32_t>(*x);
    }
  };
  count("unhealthy_after", &h.unhealthy_after);
  count("healthy_after", &h.healthy_after);
  if (auto v = n["expected_statuses"]) {
    // Codes (200) or classes (2xx).
    h.expected_statuses.clear();
    auto items = r_.str_list(v, child(path, "expected_statuses"));
    for (size_t i = 0; i < items.size(); ++i) {
      const std::string& c = items[i];
      bool digits = c.size() == 3 && c[0] >= '1' && c[0] <= '5';
      int hundreds = digits ? (c[0] - '0') * 100 : 0;
      if (digits && c[1] == 'x' && c[2] == 'x')
        h.expected_statuses.emplace_back(hundreds, hundreds + 99);
      else if (digits && std::isdigit(static_cast<unsigned char>(c[1])) &&
               std::isdigit(static_cast<unsigned char>(c[2])))
        h.expected_statuses.emplace_back(std::stoi(c), std::stoi(c));
      else
        r_.error(v.IsSequence() ? v[i] : v, index(child(path, "expected_statuses"), i),
                 "expected a status code such as 200 or a class such as 2xx");
    }
  }
  if (auto v = n["initial_state"]) {
    auto s = r_.str(v, child(path, "initial_state"));
    if (s == "healthy" || s == "unhealthy")
      h.initially_healthy = s == "healthy";
    else
      r_.error(v, child(path, "initial_state"), "expected healthy or unhealthy");
  }
  return h;
}

std::optional<RetryPolicy> Loader::retry(const YAML::Node& n, const std::string& path) {
  if (!r_.check_map(n, path,
                    {"attempts", "backoff", "max_backoff", "on", "budget", "min_retries_per_second",
                     "max_replay_body"}))
    return std::nullopt;
  RetryPolicy p;
  if (auto v = n["attempts"]) {
    if (auto x = r_.integer(v, child(path, "attempts"), 0, 10))
      p.attempts = static_cast<uint32_t>(*x);
  }
  if (auto v = n["backoff"]) {
    if (auto d = r_.duration(v, child(path, "backoff"))) p.backoff = *d;
  }
  p.max_backoff = std::max(p.max_backoff, p.backoff);
  if (auto v = n["max_backoff"]) {
    if (auto d = r_.duration(v, child(path, "max_backoff"))) p.max_backoff = *d;
  }
  if (p.max_backoff < p.backoff)
    r_.error(n, child(path, "max_backoff"), "must not be below backoff");
  if (auto v = n["on"]) {
    p.on_connect_failure = p.on_reset = p.on_timeout = false;
    auto items = r_.str_list(v, child(path, "on"));
    for (size_t i = 0; i < items.size(); ++i) {
      const std::string& c = items[i];
      if (c == "connect_failure")
        p.on_connect_failure = true;
      else if (c == "reset")
        p.on_reset = true;
      else if (c == "timeout")
        p.on_timeout = true;
      else if (c.size() == 3 && c[0] == '5' && std::isdigit(static_cast<unsigned char>(c[1])) &&
               std::isdigit(static_cast<unsigned char>(c[2])))
        p.on_status.push_back(std::stoi(c));
      else if (auto code = grpc::code_from_config_name(c); code && *code != grpc::Code::kOk)
        p.on_grpc |= 1u << static_cast<int>(*code);
      else
        r_.error(v.IsSequence() ? v[i] : v, index(child(path, "on"), i),
                 "expected connect_failure, reset, timeout, a 5xx status code or a gRPC status "
                 "(such as unavailable or resource_exhausted)");
    }
  }
  if (auto v = n["budget"]) {
    auto x = share(v);
    if (!x || !(*x >= 0 && *x <= 1))
      r_.error(v, child(path, "budget"), "expected a share such as 20% or 0.2");
    else
      p.budget = *x;
  }
  if (auto v = n["min_retries_per_second"]) {
    if (auto x = r_.integer(v, child(path, "min_retries_per_second"), 0, 100000))
      p.min_retries_per_second = static_cast<uint32_t>(*x);
  }
  if (auto v = n["max_replay_body"]) {
    if (auto x = r_.size(v, child(path, "max_replay_body"))) {
      if (*x > kMaxReplayBody)
        r_.error(v, child(path, "max_replay_body"),
                 "must be at most 64MiB (it is held per request)");
      else
        p.max_replay_body = *x;
    }
  }
  return p;
}

std::optional<BreakerSettings> Loader::breaker(const YAML::Node& n, const std::string& path) {
  if (!r_.check_map(n, path,
                    {"failure_rate", "min_requests", "window", "open_for", "max_open_for",
                     "half_open_requests", "consecutive_failures"}))
    return std::nullopt;
  BreakerSettings b;
  if (auto v = n["failure_rate"]) {
    auto x = share(v);
    if (!x || !(*x > 0 && *x <= 1))
      r_.error(v, child(path, "failure_rate"),
               "expected a share such as 50% or 0.5 (above 0, at most 100%)");
    else
      b.failure_rate = *x;
  }
  auto count = [&](const char* key, uint32_t* out, int64_t min) {
    if (auto v = n[key]) {
      if (auto x = r_.integer(v, child(path, key), min, 1'000'000))
        *out = static_cast<uint32_t>(*x);
    }
  };
  count("min_requests", &b.min_requests, 1);
  count("half_open_requests", &b.half_open_requests, 1);
  count("consecutive_failures", &b.consecutive_failures, 0);
  auto dur = [&](const char* key, Duration* out) {
    if (auto v = n[key]) {
      if (auto d = r_.duration(v, child(path, key))) {
        if (d->count() < 1)
          r_.error(v, child(path, key), "must be at least 1ms");
        else
          *out = *d;
      }
    }
  };
  dur("window", &b.window);
  dur("open_for", &b.open_for);
  b.max_open_for = std::max(b.max_open_for, b.open_for);
  dur("max_open_for", &b.max_open_for);
  if (b.max_open_for < b.open_for)
    r_.error(n, child(path, "max_open_for"), "must not be below open_for");
  return b;
}

}  // namespace gatehouse::config
