#include "config/config.h"

#include <re2/re2.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "config/yaml_reader.h"
#include "crypto/digest.h"
#include "tls/client_context.h"
#include "tls/server_context.h"
#include "filters/registry.h"

namespace gatehouse::config {

std::string ConfigError::to_string() const {
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + path + ": " +
         message;
}

namespace {

constexpr uint64_t kMaxReplayBody = 64ull << 20;  // retry.max_replay_body: held per request

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// The host part of "host:port", "[v6]:port" as written (lower case, no brackets).
std::string address_host(std::string_view text) {
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    return lower(std::string(text.substr(1, close == std::string_view::npos ? 0 : close - 1)));
  }
  return lower(std::string(text.substr(0, text.rfind(':'))));
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!(std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos))
      return false;
  }
  return true;
}

class Loader {
 public:
  Loader(const std::string& file, std::vector<ConfigError>* errors) : r_(file, errors) {}

  Config load(const YAML::Node& root) {
    Config c;
    c.file = r_.file();
    if (!root || root.IsNull()) {
      r_.error(root, "", "the config file is empty");
      return c;
    }
    if (!r_.check_map(root, "",
                      {"server", "admin", "redis", "observability", "consumers", "jwt_providers",
                       "upstreams", "routes"}))
      return c;
    auto srv = root["server"];
    if (srv) server(srv, &c.server);
    // Only when none is written: a listener with a bad address has its own error already.
    if (!srv || !srv.IsMap() || !srv["listen"] || srv["listen"].size() == 0)
      r_.error(srv ? srv : root, "server.listen", "at least one listener is required");
    if (auto n = root["admin"]) admin(n, c.server, &c.admin);
    if (auto n = root["observability"]) observability(n, &c.observability);
    if (auto n = root["redis"]) redis(n, &c.redis);
    if (auto n = root["consumers"]) consumers(n, &c.consumers);
    if (auto n = root["jwt_providers"]) {
      if (!n.IsMap()) {
        r_.error(n, "jwt_providers", "expected a mapping of provider names to their settings");
      } else {
        for (auto it = n.begin(); it != n.end(); ++it) {
          std::string name = it->first.Scalar();
          std::string path = child("jwt_providers", name);
          if (c.jwt_providers.count(name)) {
            r_.error(it->first, path, "duplicate JWT provider '" + name + "'");
            continue;
          }
          c.jwt_providers[name] = filters::build_jwt_provider(name, it->second, path, r_);
        }
      }
    }
    if (auto n = root["upstreams"]) upstreams(n, &c.upstreams);
    if (auto n = root["routes"]) {
      routes(n, c, &c.routes);
    } else {
      r_.error(root, "routes", "at least one route is required");
    }
    return c;
  }

 private:
  void server(const YAML::Node& n, Server* s) {
    if (!r_.check_map(n, "server",
                      {"workers", "listen", "limits", "timeouts", "trusted_proxies",
                       "path_normalization"}))
      return;
    if (auto w = n["workers"]) {
      if (w.IsScalar() && w.Scalar() == "auto") {
        s->workers = 0;
      } else if (auto v = r_.integer(w, "server.workers", 1, 1024)) {
        s->workers = static_cast<int>(*v);
      }
    }
    if (auto l = n["listen"]) {
      if (!l.IsSequence()) {
        r_.error(l, "server.listen", "expected a list of listeners");
      } else {
        for (size_t i = 0; i < l.size(); ++i) {
          std::string path = index("server.listen", i);
          if (!r_.check_map(l[i], path, {"address", "tls"})) continue;
          if (!l[i]["address"]) {
            r_.error(l[i], path, "'address' is required");
            continue;
          }
          if (auto a = address(l[i]["address"], child(path, "address"), false)) {
            Listener listener{*a, nullptr};
            if (auto t = l[i]["tls"]) listener.tls = tls(t, child(path, "tls"));
            s->listen.push_back(std::move(listener));
          }
        }
      }
    }
    if (auto l = n["limits"]) {
      if (r_.check_map(l, "server.limits",
                       {"max_header_bytes", "max_body_bytes", "max_connections", "max_uri_bytes",
                        "max_headers"})) {
        auto sz = [&](const char* key, uint64_t* out, uint64_t min) {
          if (auto v = l[key]) {
            if (auto b = r_.size(v, child("server.limits", key))) {
              if (*b < min) {
                r_.error(v, child("server.limits", key), "must be at least " + std::to_string(min));
              } else {
                *out = *b;
              }
            }
          }
        };
        sz("max_header_bytes", &s->limits.max_header_bytes, 1024);
        sz("max_body_bytes", &s->limits.max_body_bytes, 0);
        sz("max_uri_bytes", &s->limits.max_uri_bytes, 64);
        if (s->limits.max_uri_bytes > s->limits.max_header_bytes)
          s->limits.max_uri_bytes = s->limits.max_header_bytes;
        if (auto v = l["max_connections"]) {
          if (auto x = r_.integer(v, "server.limits.max_connections", 1, 10'000'000))
            s->limits.max_connections = static_cast<uint64_t>(*x);
        }
        if (auto v = l["max_headers"]) {
          if (auto x = r_.integer(v, "server.limits.max_headers", 1, 10'000))
            s->limits.max_headers = static_cast<uint32_t>(*x);
        }
      }
    }
    if (auto t = n["timeouts"]) {
      if (r_.check_map(t, "server.timeouts", {"header_read", "idle", "drain"})) {
        auto d = [&](const char* key, Duration* out) {
          if (auto v = t[key]) {
            if (auto x = r_.duration(v, child("server.timeouts", key))) *out = *x;
          }
        };
        d("header_read", &s->timeouts.header_read);
        d("idle", &s->timeouts.idle);
        d("drain", &s->timeouts.drain);
      }
    }
    if (auto p = n["path_normalization"]) {
      const std::string path = "server.path_normalization";
      if (r_.check_map(p, path, {"merge_slashes", "encoded_slashes"})) {
        if (auto v = p["merge_slashes"]) {
          if (auto b = r_.boolean(v, child(path, "merge_slashes")))
            s->path_normalization.merge_slashes = *b;
        }
        if (auto v = p["encoded_slashes"]) {
          if (auto e = r_.str(v, child(path, "encoded_slashes"))) {
            if (*e == "reject" || *e == "keep") {
              s->path_normalization.reject_encoded_slashes = *e == "reject";
            } else {
              r_.error(v, child(path, "encoded_slashes"), "expected reject or keep, got '" + *e + "'");
            }
          }
        }
      }
    }
    if (auto t = n["trusted_proxies"]) {
      auto list = r_.str_list(t, "server.trusted_proxies");
      for (size_t i = 0; i < list.size(); ++i) {
        if (auto c = parse_cidr(list[i])) {
          s->trusted_proxies.push_back(*c);
        } else {
          r_.error(t.IsSequence() ? t[i] : t, index("server.trusted_proxies", i),
                   "invalid CIDR '" + list[i] + "'");
        }
      }
    }
  }

  // listen[].tls: certificates chosen by SNI, a protocol floor, ALPN (docs/configuration.md).
  std::shared_ptr<const tls::ServerContext> tls(const YAML::Node& n, const std::string& path) {
    if (!r_.check_map(n, path, {"certificates", "min_version", "alpn"})) return nullptr;
    tls::ServerSettings settings;
    auto certs = n["certificates"];
    if (!certs || !certs.IsSequence() || certs.size() == 0) {
      r_.error(certs ? certs : n, child(path, "certificates"),
               "expected a list of { cert: FILE, key: FILE } (the first is the default)");
      return nullptr;
    }
    bool ok = true;
    for (size_t i = 0; i < certs.size(); ++i) {
      std::string cp = index(child(path, "certificates"), i);
      if (!r_.check_map(certs[i], cp, {"cert", "key"})) {
        ok = false;
        continue;
      }
      auto cert = certs[i]["cert"] ? r_.str(certs[i]["cert"], child(cp, "cert")) : std::nullopt;
      auto key = certs[i]["key"] ? r_.str(certs[i]["key"], child(cp, "key")) : std::nullopt;
      if (!cert || !key) {
        if (!certs[i]["cert"] || !certs[i]["key"]) r_.error(certs[i], cp, "'cert' and 'key' are required");
        ok = false;
        continue;
      }
      settings.certificates.push_back({r_.resolve_path(*cert), r_.resolve_path(*key)});
    }
    if (auto v = n["min_version"]) {
      if (!tls_version(v, child(path, "min_version"), &settings.min_version)) ok = false;
    }
    if (auto v = n["alpn"]) {
      settings.alpn = r_.str_list(v, child(path, "alpn"));
      for (size_t i = 0; i < settings.alpn.size(); ++i) {
        const auto& proto = settings.alpn[i];
        const YAML::Node& at = v.IsSequence() ? v[i] : v;
        if (proto == "h2") {
          r_.error(at, index(child(path, "alpn"), i),
                   "'h2' is not supported yet by this version of gatehouse");
          ok = false;
        } else if (proto != "http/1.1") {
          r_.error(at, index(child(path, "alpn"), i), "unknown protocol '" + proto + "' (known: http/1.1, h2)");
          ok = false;
        }
      }
    }
    if (!ok) return nullptr;
    std::string error;
    auto ctx = tls::ServerContext::create(settings, &error);
    if (!ctx) r_.error(n, path, error);
    return ctx;
  }

  // upstreams.*.tls (HTTPS to the targets) and redis.tls (rediss://): the client side of TLS,
  // verified (docs/configuration.md, docs/security.md).
  std::shared_ptr<const tls::ClientContext> client_tls(const YAML::Node& n, const std::string& path) {
    tls::ClientSettings settings;
    // `tls:` with nothing after it, like `tls: {}`: every default.
    if (n.IsNull()) return client_context(settings, n, path);
    if (!r_.check_map(n, path, {"ca_file", "server_name", "verify", "min_version"})) return nullptr;
    bool ok = true;
    auto ca = n["ca_file"];
    if (ca) {
      auto f = r_.str(ca, child(path, "ca_file"));
      if (f && !f->empty()) {
        settings.ca_file = r_.resolve_path(*f);
      } else {
        if (f)
          r_.error(ca, child(path, "ca_file"),
                   "must not be empty (leave it out for the system CA store)");
        ok = false;
      }
    }
    if (auto v = n["server_name"]) {
      auto name = r_.str(v, child(path, "server_name"));
      if (name && tls::valid_server_name(*name)) {
        settings.server_name = lower(*name);
      } else {
        if (name)
          r_.error(v, child(path, "server_name"),
                   "'" + *name + "' is not a DNS name or an IP address");
        ok = false;
      }
    }
    if (auto v = n["verify"]) {
      if (auto b = r_.boolean(v, child(path, "verify"))) {
        settings.verify = *b;
        if (!*b)
          r_.warning(v, child(path, "verify"),
                     "certificate verification is off: any certificate is accepted, so anyone on "
                     "the path can read and change this traffic (for tests and labs only)");
      } else {
        ok = false;
      }
    }
    if (auto v = n["min_version"]) {
      if (!tls_version(v, child(path, "min_version"), &settings.min_version)) ok = false;
    }
    if (!ok) return nullptr;
    return ca ? client_context(settings, ca, child(path, "ca_file"))
              : client_context(settings, n, path);
  }

  // Builds the context; its failures are about the CA file (`at`), or the system store.
  std::shared_ptr<const tls::ClientContext> client_context(const tls::ClientSettings& settings,
                                                           const YAML::Node& at,
                                                           const std::string& path) {
    std::string error;
    auto ctx = tls::ClientContext::create(settings, &error);
    if (!ctx) r_.error(at, path, error);
    return ctx;
  }

  // "1.2" -> 12, "1.3" -> 13; anything else is an error.
  bool tls_version(const YAML::Node& v, const std::string& path, int* out) {
    auto s = r_.str(v, path).value_or("");
    if (s == "1.2" || s == "1.3") {
      *out = s == "1.2" ? 12 : 13;
      return true;
    }
    r_.error(v, path, "expected \"1.2\" or \"1.3\" (TLS 1.0 and 1.1 are broken and refused)");
    return false;
  }

  std::optional<SocketAddress> address(const YAML::Node& n, const std::string& path,
                                       bool allow_hostname) {
    auto s = r_.str(n, path);
    if (!s) return std::nullopt;
    std::string err;
    auto a = parse_socket_address(*s, allow_hostname, &err);
    if (!a) r_.error(n, path, "invalid address '" + *s + "': " + err);
    return a;
  }

  std::optional<HealthCheck> health_check(const YAML::Node& n, const std::string& path) {
    if (!r_.check_map(n, path, {"path", "interval", "timeout", "unhealthy_after", "healthy_after",
                                "expected_statuses", "initial_state"}))
      return std::nullopt;
    HealthCheck h;
    if (auto v = n["path"]) {
      h.path = r_.str(v, child(path, "path")).value_or("/");
      if (h.path.empty() || h.path[0] != '/' ||
          h.path.find_first_of(" \r\n") != std::string::npos)
        r_.error(v, child(path, "path"), "expected a path such as /healthz");
    }
    auto dur = [&](const char* key, Duration* out) {
      if (auto v = n[key]) {
        if (auto d = r_.duration(v, child(path, key))) {
          if (d->count() < 10) r_.error(v, child(path, key), "must be at least 10ms");
          else *out = *d;
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

  // A share written as "50%" or 0.5; nullopt when it is neither (the caller checks the range).
  static std::optional<double> share(const YAML::Node& v) {
    if (!v.IsScalar()) return std::nullopt;
    std::string text = v.Scalar();
    bool percent = !text.empty() && text.back() == '%';
    if (percent) text.pop_back();
    char* end = nullptr;
    double x = std::strtod(text.c_str(), &end);
    if (text.empty() || *end) return std::nullopt;
    return percent ? x / 100 : x;
  }

  std::optional<RetryPolicy> retry(const YAML::Node& n, const std::string& path) {
    if (!r_.check_map(n, path, {"attempts", "backoff", "max_backoff", "on", "budget",
                                  "max_replay_body"})) return std::nullopt;
    RetryPolicy p;
    if (auto v = n["attempts"]) {
      if (auto x = r_.integer(v, child(path, "attempts"), 0, 10)) p.attempts = static_cast<uint32_t>(*x);
    }
    if (auto v = n["backoff"]) {
      if (auto d = r_.duration(v, child(path, "backoff"))) p.backoff = *d;
    }
    p.max_backoff = std::max(p.max_backoff, p.backoff);
    if (auto v = n["max_backoff"]) {
      if (auto d = r_.duration(v, child(path, "max_backoff"))) p.max_backoff = *d;
    }
    if (p.max_backoff < p.backoff) r_.error(n, child(path, "max_backoff"), "must not be below backoff");
    if (auto v = n["on"]) {
      p.on_connect_failure = p.on_reset = p.on_timeout = false;
      auto items = r_.str_list(v, child(path, "on"));
      for (size_t i = 0; i < items.size(); ++i) {
        const std::string& c = items[i];
        if (c == "connect_failure") p.on_connect_failure = true;
        else if (c == "reset") p.on_reset = true;
        else if (c == "timeout") p.on_timeout = true;
        else if (c.size() == 3 && c[0] == '5' && std::isdigit(static_cast<unsigned char>(c[1])) &&
                 std::isdigit(static_cast<unsigned char>(c[2])))
          p.on_status.push_back(std::stoi(c));
        else
          r_.error(v.IsSequence() ? v[i] : v, index(child(path, "on"), i),
                   "expected connect_failure, reset, timeout or a 5xx status code");
      }
    }
    if (auto v = n["budget"]) {
      auto x = share(v);
      if (!x || !(*x >= 0 && *x <= 1))
        r_.error(v, child(path, "budget"), "expected a share such as 20% or 0.2");
      else
        p.budget = *x;
    }
    if (auto v = n["max_replay_body"]) {
      if (auto x = r_.size(v, child(path, "max_replay_body"))) {
        if (*x > kMaxReplayBody)
          r_.error(v, child(path, "max_replay_body"), "must be at most 64MiB (it is held per request)");
        else
          p.max_replay_body = *x;
      }
    }
    return p;
  }

  std::optional<BreakerSettings> breaker(const YAML::Node& n, const std::string& path) {
    if (!r_.check_map(n, path, {"failure_rate", "min_requests", "window", "open_for", "max_open_for",
                                "half_open_requests", "consecutive_failures"}))
      return std::nullopt;
    BreakerSettings b;
    if (auto v = n["failure_rate"]) {
      auto x = share(v);
      if (!x || !(*x > 0 && *x <= 1))
        r_.error(v, child(path, "failure_rate"), "expected a share such as 50% or 0.5 (above 0, at most 100%)");
      else
        b.failure_rate = *x;
    }
    auto count = [&](const char* key, uint32_t* out, int64_t min) {
      if (auto v = n[key]) {
        if (auto x = r_.integer(v, child(path, key), min, 1'000'000)) *out = static_cast<uint32_t>(*x);
      }
    };
    count("min_requests", &b.min_requests, 1);
    count("half_open_requests", &b.half_open_requests, 1);
    count("consecutive_failures", &b.consecutive_failures, 0);
    auto dur = [&](const char* key, Duration* out) {
      if (auto v = n[key]) {
        if (auto d = r_.duration(v, child(path, key))) {
          if (d->count() < 1) r_.error(v, child(path, key), "must be at least 1ms");
          else *out = *d;
        }
      }
    };
    dur("window", &b.window);
    dur("open_for", &b.open_for);
    b.max_open_for = std::max(b.max_open_for, b.open_for);
    dur("max_open_for", &b.max_open_for);
    if (b.max_open_for < b.open_for) r_.error(n, child(path, "max_open_for"), "must not be below open_for");
    return b;
  }

  void redis(const YAML::Node& n, Redis* out) {
    if (!r_.check_map(n, "redis", {"url", "tls", "timeout", "on_error", "connections", "cluster", "sentinels"}))
      return;
    out->enabled = true;
    bool secure = false;
    if (auto u = n["url"]) {
      out->url = r_.str(u, "redis.url").value_or("");
      secure = out->url.starts_with("rediss://");
      if (!(secure || out->url.starts_with("redis://")) || out->url.size() == (secure ? 9 : 8))
        r_.error(u, "redis.url", "expected redis:// or rediss://[[user]:password@]host[:port][/db]");
      // rediss:// without `tls`: verified against the system CA store, by the URL's host name.
      if (secure && !n["tls"]) out->tls = client_context(tls::ClientSettings{}, u, "redis.url");
    } else {
      r_.error(n, "redis.url", "'url' is required");
    }
    if (auto t = n["tls"]) {
      if (secure)
        out->tls = client_tls(t, "redis.tls");
      else
        r_.error(t, "redis.tls", "TLS to Redis needs a rediss:// url");
    }
    if (auto t = n["timeout"]) {
      if (auto d = r_.duration(t, "redis.timeout")) {
        if (d->count() < 1) r_.error(t, "redis.timeout", "must be at least 1ms");
        out->timeout = *d;
      }
    }
    if (auto e = n["on_error"]) {
      auto v = r_.str(e, "redis.on_error").value_or("");
      if (v == "local") out->on_error = Redis::OnError::kLocal;
      else if (v == "deny") out->on_error = Redis::OnError::kDeny;
      else if (v == "allow") out->on_error = Redis::OnError::kAllow;
      else r_.error(e, "redis.on_error", "expected local, deny or allow");
    }
    if (auto c = n["connections"]) {
      if (auto v = r_.integer(c, "redis.connections", 1, 16)) out->connections = static_cast<int>(*v);
    }
    if (auto c = n["cluster"]) {
      if (auto b = r_.boolean(c, "redis.cluster")) out->cluster = *b;
    }
    if (auto v = n["sentinels"]) {
      auto items = r_.str_list(v, "redis.sentinels");
      for (size_t i = 0; i < items.size(); ++i) {
        // host:port, [v6]:port
        const std::string& a = items[i];
        auto colon = a.rfind(':');
        std::string host = colon == std::string::npos ? "" : a.substr(0, colon);
        if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
        char* end = nullptr;
        long port = colon == std::string::npos ? 0 : std::strtol(a.c_str() + colon + 1, &end, 10);
        if (host.empty() || port < 1 || port > 65535 || !end || *end)
          r_.error(v.IsSequence() ? v[i] : v, index("redis.sentinels", i), "expected host:port");
        else
          out->sentinels.emplace_back(host, static_cast<uint16_t>(port));
      }
      if (items.empty()) r_.error(v, "redis.sentinels", "expected a list of host:port");
      if (out->cluster) r_.error(v, "redis.sentinels", "a Redis Cluster needs no sentinels: leave one of the two out");
    }
  }

  void admin(const YAML::Node& n, const Server& server, Admin* a) {
    if (!n.IsNull() && !r_.check_map(n, "admin", {"listen", "token_env"})) return;
    a->enabled = true;
    if (!n.IsMap()) return;
    if (auto l = n["listen"]) {
      if (auto addr = address(l, "admin.listen", false)) {
        a->listen = *addr;
        // The admin API never shares a port with traffic.
        for (const auto& t : server.listen) {
          if (t.address.port == addr->port && addr->port != 0)
            r_.error(l, "admin.listen", "port " + std::to_string(addr->port) +
                                            " is already a traffic listener (server.listen)");
        }
      }
    }
    if (auto t = n["token_env"]) {
      if (auto s = r_.str(t, "admin.token_env")) {
        if (s->empty() || s->find_first_of("= \t") != std::string::npos)
          r_.error(t, "admin.token_env", "'" + *s + "' is not an environment variable name");
        else
          a->token_env = *s;
      }
    }
  }

  void observability(const YAML::Node& n, Observability* o) {
    if (!r_.check_map(n, "observability", {"request_id_header", "access_log"}, {"tracing"})) return;
    if (auto h = n["request_id_header"]) {
      if (auto s = r_.str(h, "observability.request_id_header")) {
        if (!is_token(*s)) {
          r_.error(h, "observability.request_id_header", "'" + *s + "' is not a valid header name");
        } else {
          o->request_id_header = lower(*s);
        }
      }
    }
    if (auto a = n["access_log"]) {
      const std::string path = "observability.access_log";
      if (r_.check_map(a, path, {"path", "format"})) {
        if (auto p = a["path"]) {
          if (auto s = r_.str(p, child(path, "path"))) {
            if (*s == "stdout") o->access_log.sink = AccessLog::Sink::kStdout;
            else if (*s == "stderr") o->access_log.sink = AccessLog::Sink::kStderr;
            else if (*s == "off") o->access_log.sink = AccessLog::Sink::kOff;
            else if (s->empty()) r_.error(p, child(path, "path"), "must not be empty");
            else {
              o->access_log.sink = AccessLog::Sink::kFile;
              o->access_log.path = *s;
            }
          }
        }
        if (auto f = a["format"]) {
          if (auto s = r_.str(f, child(path, "format")); s && *s != "json")
            r_.error(f, child(path, "format"), "unknown format '" + *s + "' (expected: json)");
        }
      }
    }
  }

  void upstreams(const YAML::Node& n, std::vector<Upstream>* out) {
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
      const YAML::Node& u = it->second;
      if (!r_.check_map(u, path, {"targets", "balance", "hash_on", "timeouts", "protocol",
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
          if (*s == "round_robin") up.balance = Balance::kRoundRobin;
          else if (*s == "least_request") up.balance = Balance::kLeastRequest;
          else if (*s == "random") up.balance = Balance::kRandom;
          else if (*s == "consistent_hash") up.balance = Balance::kConsistentHash;
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
        if (auto s = r_.str(p, child(path, "protocol")); s && *s != "http1") {
          if (*s == "http2" || *s == "grpc")
            r_.error(p, child(path, "protocol"),
                     "protocol '" + *s + "' is not supported yet by this version of gatehouse");
          else
            r_.error(p, child(path, "protocol"),
                     "unknown protocol '" + *s + "' (expected http1, http2 or grpc)");
        }
      }
      if (auto b = u["circuit_breaker"]) up.breaker = breaker(b, child(path, "circuit_breaker"));
      if (auto rt = u["retry"]) up.retry = retry(rt, child(path, "retry"));
      if (auto hc = u["health_check"]) up.health_check = health_check(hc, child(path, "health_check"));
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
      if (auto t = u["tls"]) up.tls = client_tls(t, child(path, "tls"));
      out->push_back(std::move(up));
    }
  }

  ValueMatch value_match(const std::string& name, const YAML::Node& v, const std::string& path,
                         bool* ok) {
    ValueMatch m;
    m.name = name;
    *ok = true;
    if (v.IsScalar()) {
      m.kind = ValueMatch::Kind::kExact;
      m.value = v.Scalar();
      return m;
    }
    if (v.IsMap() && r_.check_map(v, path, {"regex", "present"}) && v.size() == 1) {
      if (auto re = v["regex"]) {
        if (auto s = r_.str(re, child(path, "regex"))) {
          m.kind = ValueMatch::Kind::kRegex;
          m.regex = compile(*s, re, child(path, "regex"), ok);
          return m;
        }
      } else if (auto p = v["present"]) {
        if (auto b = r_.boolean(p, child(path, "present"))) {
          m.kind = *b ? ValueMatch::Kind::kPresent : ValueMatch::Kind::kAbsent;
          return m;
        }
      }
    } else {
      r_.error(v, path, "expected a value, {regex: RE}, or {present: true|false}");
    }
    *ok = false;
    return m;
  }

  std::shared_ptr<const re2::RE2> compile(const std::string& pattern, const YAML::Node& at,
                                          const std::string& path, bool* ok) {
    RE2::Options opts;
    opts.set_log_errors(false);
    auto re = std::make_shared<const re2::RE2>(pattern, opts);
    if (!re->ok()) {
      r_.error(at, path, "invalid regex: " + re->error());
      *ok = false;
    }
    return re;
  }

  void path_match(const YAML::Node& n, const std::string& path, PathMatch* m,
                  std::set<std::string>* captures) {
    auto s = r_.str(n, path);
    if (!s) return;
    if (s->empty() || s->front() != '/') {
      r_.error(n, path, "a path must start with '/'");
      return;
    }
    auto star = s->find('*');
    bool has_brace = s->find('{') != std::string::npos || s->find('}') != std::string::npos;
    if (star != std::string::npos) {
      if (star != s->size() - 1 || (*s)[star - 1] != '/' || has_brace) {
        r_.error(n, path, "'*' may only end a path, after '/' (as in /api/products/*)");
        return;
      }
      m->kind = PathMatch::Kind::kPrefix;
      m->text = s->substr(0, star);
      return;
    }
    if (!has_brace) {
      m->kind = PathMatch::Kind::kExact;
      m->text = *s;
      return;
    }
    m->kind = PathMatch::Kind::kTemplate;
    m->text = *s;
    std::string_view rest(*s);
    rest.remove_prefix(1);
    while (true) {
      auto slash = rest.find('/');
      std::string seg(rest.substr(0, slash));
      if (seg.find_first_of("{}") != std::string::npos) {
        bool ok = seg.size() > 2 && seg.front() == '{' && seg.back() == '}' &&
                  seg.find_first_of("{}", 1) == seg.size() - 1;
        std::string name = ok ? seg.substr(1, seg.size() - 2) : "";
        ok = ok && (std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_') &&
             std::all_of(name.begin(), name.end(),
                         [](unsigned char c) { return std::isalnum(c) || c == '_'; });
        if (!ok) {
          r_.error(n, path, "invalid template segment '" + seg + "' (expected {name})");
          return;
        }
        if (!captures->insert(name).second) {
          r_.error(n, path, "parameter '{" + name + "}' appears twice");
          return;
        }
      }
      m->segments.push_back(seg);
      if (slash == std::string_view::npos) break;
      rest.remove_prefix(slash + 1);
    }
  }

  void match(const YAML::Node& n, const std::string& path, Route* r,
             std::set<std::string>* captures) {
    if (!r_.check_map(n, path, {"host", "path", "path_regex", "methods", "headers", "query"})) return;
    if (auto h = n["host"]) {
      for (auto& host : r_.str_list(h, child(path, "host"))) {
        HostMatch hm;
        std::string lh = lower(host);
        if (lh.rfind("*.", 0) == 0) {
          hm.wildcard = true;
          hm.host = lh.substr(1);
        } else {
          hm.host = lh;
        }
        if (hm.host.empty() || hm.host.find_first_of("*/ ") != std::string::npos) {
          r_.error(h, child(path, "host"), "invalid host '" + host + "'");
          continue;
        }
        r->hosts.push_back(hm);
      }
    }
    if (n["path"] && n["path_regex"]) {
      r_.error(n["path_regex"], child(path, "path_regex"), "use either path or path_regex, not both");
    } else if (auto p = n["path"]) {
      path_match(p, child(path, "path"), &r->path, captures);
    } else if (auto p = n["path_regex"]) {
      if (auto s = r_.str(p, child(path, "path_regex"))) {
        bool ok = true;
        r->path.kind = PathMatch::Kind::kRegex;
        r->path.text = *s;
        r->path.regex = compile(*s, p, child(path, "path_regex"), &ok);
        if (ok) {
          for (auto& [name, idx] : r->path.regex->NamedCapturingGroups()) captures->insert(name);
        }
      }
    }
    if (auto m = n["methods"]) {
      for (auto& method : r_.str_list(m, child(path, "methods"))) {
        if (!is_token(method)) {
          r_.error(m, child(path, "methods"), "invalid method '" + method + "'");
          continue;
        }
        std::string up = method;
        std::transform(up.begin(), up.end(), up.begin(),
                       [](unsigned char c) { return std::toupper(c); });
        r->methods.push_back(up);
      }
    }
    auto matchers = [&](const char* key, std::vector<ValueMatch>* out, bool header) {
      auto h = n[key];
      if (!h) return;
      std::string hp = child(path, key);
      if (!h.IsMap()) {
        r_.error(h, hp, "expected a mapping of names to values");
        return;
      }
      for (auto it = h.begin(); it != h.end(); ++it) {
        std::string name = it->first.Scalar();
        if (header && !is_token(name)) {
          r_.error(it->first, child(hp, name), "invalid header name '" + name + "'");
          continue;
        }
        bool ok;
        auto vm = value_match(header ? lower(name) : name, it->second, child(hp, name), &ok);
        if (ok) out->push_back(std::move(vm));
      }
    };
    matchers("headers", &r->headers, true);
    matchers("query", &r->query, false);
  }

  void rewrite(const YAML::Node& n, const std::string& path, Route* r,
               const std::set<std::string>& captures) {
    if (!r_.check_map(n, path, {"strip_prefix", "replace_prefix", "path", "host"})) return;
    int path_rules = 0;
    if (auto s = n["strip_prefix"]) {
      ++path_rules;
      if (auto v = r_.str(s, child(path, "strip_prefix"))) {
        if (v->empty() || v->front() != '/')
          r_.error(s, child(path, "strip_prefix"), "must start with '/'");
        else
          r->rewrite.strip_prefix = *v;
      }
    }
    if (auto s = n["replace_prefix"]) {
      ++path_rules;
      std::string rp = child(path, "replace_prefix");
      if (r_.check_map(s, rp, {"from", "to"})) {
        auto from = s["from"] ? r_.str(s["from"], child(rp, "from")) : std::nullopt;
        auto to = s["to"] ? r_.str(s["to"], child(rp, "to")) : std::nullopt;
        if (!from || !to || from->empty() || from->front() != '/' || to->empty() || to->front() != '/')
          r_.error(s, rp, "needs 'from' and 'to', both starting with '/'");
        else
          r->rewrite.replace_prefix = std::make_pair(*from, *to);
      }
    }
    if (auto s = n["path"]) {
      ++path_rules;
      if (auto v = r_.str(s, child(path, "path"))) {
        bool ok = !v->empty() && v->front() == '/';
        if (!ok) r_.error(s, child(path, "path"), "must start with '/'");
        for (size_t pos = v->find('{'); ok && pos != std::string::npos; pos = v->find('{', pos + 1)) {
          auto end = v->find('}', pos);
          std::string name = end == std::string::npos ? "" : v->substr(pos + 1, end - pos - 1);
          if (!captures.count(name)) {
            r_.error(s, child(path, "path"),
                     "'{" + name + "}' is not captured by this route's path (captures: " +
                         [&] {
                           std::string l;
                           for (auto& c : captures) l += (l.empty() ? "" : ", ") + c;
                           return l.empty() ? std::string("none") : l;
                         }() +
                         ")");
            ok = false;
          }
        }
        if (ok) r->rewrite.path_template = *v;
      }
    }
    if (path_rules > 1)
      r_.error(n, path, "use only one of strip_prefix, replace_prefix and path");
    if (auto s = n["host"]) {
      if (auto v = r_.str(s, child(path, "host"))) {
        if (v->empty() || v->find_first_of(" /\t\r\n") != std::string::npos)
          r_.error(s, child(path, "host"), "invalid host '" + *v + "'");
        else
          r->rewrite.host = *v;
      }
    }
  }

  void to(const YAML::Node& n, const std::string& path, const std::vector<Upstream>& ups,
          Route* r) {
    auto resolve = [&](const YAML::Node& at, const std::string& p, const std::string& name,
                       uint32_t weight) {
      auto it = std::find_if(ups.begin(), ups.end(), [&](auto& u) { return u.name == name; });
      if (it == ups.end()) {
        r_.error(at, p, "unknown upstream '" + name + "'");
        return;
      }
      r->to.push_back({name, static_cast<size_t>(it - ups.begin()), weight});
    };
    if (n.IsScalar()) {
      resolve(n, path, n.Scalar(), 1);
      return;
    }
    if (!n.IsSequence() || n.size() == 0) {
      r_.error(n, path, "expected an upstream name or a list of {upstream, weight}");
      return;
    }
    for (size_t i = 0; i < n.size(); ++i) {
      std::string p = index(path, i);
      if (!r_.check_map(n[i], p, {"upstream", "weight"})) continue;
      uint32_t weight = 1;
      if (auto w = n[i]["weight"]) {
        if (auto v = r_.integer(w, child(p, "weight"), 0, 1'000'000)) weight = static_cast<uint32_t>(*v);
      }
      if (auto u = n[i]["upstream"]) {
        if (auto s = r_.str(u, child(p, "upstream"))) resolve(u, child(p, "upstream"), *s, weight);
      } else {
        r_.error(n[i], p, "'upstream' is required");
      }
    }
    uint64_t total = 0;
    for (auto& t : r->to) total += t.weight;
    if (!r->to.empty() && total == 0) r_.error(n, path, "the weights add up to 0");
  }

  // API keys never appear in the file: a SHA-256 digest, or the name of an environment variable
  // read now (so that a missing secret fails the load, not the first request).
  void consumers(const YAML::Node& n, std::vector<Consumer>* out) {
    if (!n.IsSequence()) {
      r_.error(n, "consumers", "expected a list of consumers");
      return;
    }
    std::set<std::string> names;
    std::map<std::array<uint8_t, 32>, std::string> key_owner;
    for (size_t i = 0; i < n.size(); ++i) {
      std::string path = index("consumers", i);
      const YAML::Node& cn = n[i];
      if (!r_.check_map(cn, path, {"name", "groups", "api_keys"})) continue;
      Consumer c;
      if (auto nm = cn["name"]) {
        if (auto s = r_.str(nm, child(path, "name"))) {
          c.name = *s;
          if (!is_token(c.name)) {
            r_.error(nm, child(path, "name"), "a consumer name must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~)");
          } else if (!names.insert(c.name).second) {
            r_.error(nm, child(path, "name"), "duplicate consumer '" + c.name + "'");
          }
        }
      } else {
        r_.error(cn, child(path, "name"), "'name' is required");
      }
      if (auto g = cn["groups"]) {
        c.groups = r_.str_list(g, child(path, "groups"));
        for (size_t j = 0; j < c.groups.size(); ++j) {
          if (!is_token(c.groups[j]))
            r_.error(g.IsSequence() ? g[j] : g, index(child(path, "groups"), j),
                     "a group name must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~)");
        }
      }
      if (auto keys = cn["api_keys"]) {
        std::string kp = child(path, "api_keys");
        if (!keys.IsSequence()) {
          r_.error(keys, kp, "expected a list of { sha256: HEX } or { env: VARIABLE }");
        } else {
          for (size_t j = 0; j < keys.size(); ++j) {
            std::string ip = index(kp, j);
            if (!r_.check_map(keys[j], ip, {"sha256", "env"})) continue;
            if ((keys[j]["sha256"] ? 1 : 0) + (keys[j]["env"] ? 1 : 0) != 1) {
              r_.error(keys[j], ip, "give exactly one of 'sha256' and 'env'");
              continue;
            }
            std::optional<crypto::Sha256> digest;
            if (auto h = keys[j]["sha256"]) {
              if (auto s = r_.str(h, child(ip, "sha256"))) {
                digest = crypto::parse_sha256_hex(*s);
                if (!digest)
                  r_.error(h, child(ip, "sha256"), "expected the key's SHA-256 as 64 hexadecimal digits");
              }
            } else if (auto e = keys[j]["env"]) {
              if (auto var = r_.str(e, child(ip, "env"))) {
                const char* value = std::getenv(var->c_str());
                if (!value || !*value) {
                  r_.error(e, child(ip, "env"), "environment variable " + *var + " is not set");
                } else {
                  digest = crypto::sha256(value);
                }
              }
            }
            if (!digest) continue;
            auto [it, fresh] = key_owner.emplace(*digest, c.name);
            if (!fresh) {
              r_.error(keys[j], ip, "the same API key is already given to consumer '" + it->second + "'");
              continue;
            }
            c.api_key_sha256.push_back(*digest);
          }
        }
      }
      out->push_back(std::move(c));
    }
  }

  void routes(const YAML::Node& n, const Config& config, std::vector<Route>* out) {
    const std::vector<Upstream>& ups = config.upstreams;
    if (!n.IsSequence()) {
      r_.error(n, "routes", "expected a list of routes");
      return;
    }
    std::set<std::string> names;
    for (size_t i = 0; i < n.size(); ++i) {
      std::string path = index("routes", i);
      const YAML::Node& rn = n[i];
      if (!r_.check_map(rn, path, {"name", "match", "rewrite", "to", "plugins", "timeout", "retry"},
                        {"aggregate", "grpc_transcode"}))
        continue;
      Route r;
      r.order = i;
      r.name = "route-" + std::to_string(i);
      if (auto nm = rn["name"]) {
        if (auto s = r_.str(nm, child(path, "name"))) r.name = *s;
        if (!names.insert(r.name).second)
          r_.error(nm, child(path, "name"), "duplicate route name '" + r.name + "'");
      }
      std::set<std::string> captures;
      if (auto m = rn["match"]) {
        match(m, child(path, "match"), &r, &captures);
      } else {
        r_.error(rn, child(path, "match"), "'match' is required");
      }
      if (auto rw = rn["rewrite"]) rewrite(rw, child(path, "rewrite"), &r, captures);
      if (auto rt = rn["retry"]) r.retry = retry(rt, child(path, "retry"));
      if (auto t = rn["timeout"]) {
        if (auto d = r_.duration(t, child(path, "timeout"))) {
          if (d->count() < 1) r_.error(t, child(path, "timeout"), "must be at least 1ms");
          else r.timeout = *d;
        }
      }
      if (auto t = rn["to"]) {
        to(t, child(path, "to"), ups, &r);
      } else if (!rn["aggregate"] && !rn["grpc_transcode"]) {
        r_.error(rn, child(path, "to"), "'to' is required");
      }
      if (auto p = rn["plugins"]) {
        std::string pp = child(path, "plugins");
        if (!p.IsMap()) {
          r_.error(p, pp, "expected a mapping of plugin names to their settings");
        } else {
          std::set<std::string> seen;
          for (auto it = p.begin(); it != p.end(); ++it) {
            std::string name = it->first.Scalar();
            std::string fp = child(pp, name);
            if (!seen.insert(name).second) {
              r_.error(it->first, fp, "duplicate plugin '" + name + "'");
              continue;
            }
            const YAML::Node& plugins = p;  // const: a lookup must not insert while iterating
            if (name == "acl" && !plugins["key_auth"] && !plugins["jwt_auth"])
              r_.error(it->first, fp, "acl needs key_auth or jwt_auth on the same route to know the consumer");
            if (auto f = filters::build_filter(name, it->first, {it->second, fp, r_, config, r.name}))
              r.filters.push_back(std::move(f));
          }
          std::stable_sort(r.filters.begin(), r.filters.end(), [](auto& a, auto& b) {
            return filters::filter_phase(a->name()) < filters::filter_phase(b->name());
          });
        }
      }
      out->push_back(std::move(r));
    }
  }

  YamlReader r_;
};

}  // namespace

std::optional<Config> parse_config(const std::string& text, const std::string& file,
                                   std::vector<ConfigError>* errors) {
  size_t before = errors->size();
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    ConfigError err;
    err.file = file;
    err.line = e.mark.is_null() ? 0 : e.mark.line + 1;
    err.column = e.mark.is_null() ? 0 : e.mark.column + 1;
    err.path = "(syntax)";
    err.message = e.msg;
    errors->push_back(err);
    return std::nullopt;
  }
  Config c;
  try {
    c = Loader(file, errors).load(root);
  } catch (const YAML::Exception& e) {  // yaml-cpp throws on some malformed shapes
    ConfigError err{file, e.mark.is_null() ? 0 : e.mark.line + 1,
                    e.mark.is_null() ? 0 : e.mark.column + 1, "(root)", e.msg};
    errors->push_back(err);
  }
  if (errors->size() != before) {
    // In file order, as a reader goes through the file.
    std::stable_sort(errors->begin() + static_cast<long>(before), errors->end(),
                     [](const ConfigError& a, const ConfigError& b) {
                       return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                     });
    return std::nullopt;
  }
  return c;
}

std::optional<Config> load_config(const std::string& file, std::vector<ConfigError>* errors) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    errors->push_back({file, 0, 0, "(file)", "cannot read the config file"});
    return std::nullopt;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), file, errors);
}

}  // namespace gatehouse::config
