// Loads a config file: the YAML text, the top-level keys in their order, and the small sections
// (admin, observability, redis, consumers). The larger sections have a file each (server.cc,
// upstreams.cc, routes.cc), all methods of the one Loader (config/loader.h).
#include "config/config.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "config/loader.h"
#include "crypto/digest.h"
#include "filters/registry.h"
#include "http/url.h"
#include "tls/client_context.h"

namespace gatehouse::config {

std::string ConfigError::to_string() const {
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + path + ": " +
         message;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!(std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos))
      return false;
  }
  return true;
}

Config Loader::load(const YAML::Node& root) {
  Config c;
  c.file = r_.file();
  if (!root || root.IsNull()) {
    r_.error(root, "", "the config file is empty");
    return c;
  }
  if (!r_.check_map(root, "",
                    {"server", "admin", "redis", "cache", "observability", "consumers",
                     "jwt_providers", "upstreams", "routes"}))
    return c;
  auto srv = root["server"];
  if (srv) server(srv, &c.server);
  // Only when none is written: a listener with a bad address has its own error already.
  if (!srv || !srv.IsMap() || !srv["listen"] || srv["listen"].size() == 0)
    r_.error(srv ? srv : root, "server.listen", "at least one listener is required");
  if (auto n = root["admin"]) admin(n, c.server, &c.admin);
  if (auto n = root["observability"]) observability(n, &c.observability);
  if (auto n = root["redis"]) redis(n, &c.redis);
  if (auto n = root["cache"]) cache(n, &c.cache);
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

std::optional<SocketAddress> Loader::address(const YAML::Node& n, const std::string& path,
                                             bool allow_hostname) {
  auto s = r_.str(n, path);
  if (!s) return std::nullopt;
  std::string err;
  auto a = parse_socket_address(*s, allow_hostname, &err);
  if (!a) r_.error(n, path, "invalid address '" + *s + "': " + err);
  return a;
}

void Loader::cache(const YAML::Node& n, CacheStore* out) {
  if (!r_.check_map(n, "cache", {"max_size", "max_object_size", "shared_max_object_size"})) return;
  if (auto v = n["shared_max_object_size"]) {
    if (auto size = r_.size(v, "cache.shared_max_object_size")) {
      if (*size == 0 || *size > (512u << 20))
        r_.error(v, "cache.shared_max_object_size", "must be more than 0 and at most 512MiB");
      out->shared_max_object_size = *size;
    }
  }
  if (auto v = n["max_size"]) {
    if (auto size = r_.size(v, "cache.max_size")) {
      if (*size < (1u << 20))
        r_.error(v, "cache.max_size", "must be at least 1MiB");
      else
        out->max_size = *size;
    }
  }
  if (auto v = n["max_object_size"]) {
    if (auto size = r_.size(v, "cache.max_object_size")) {
      if (*size == 0) r_.error(v, "cache.max_object_size", "must be more than 0");
      out->max_object_size = *size;
    }
  }
  // The store is 16 shards, each with a sixteenth of the bytes: an entry must fit one.
  if (out->max_object_size > out->max_size / 16) {
    auto at = n["max_object_size"] ? n["max_object_size"] : n;
    r_.error(at, "cache.max_object_size",
             "must be at most max_size / 16 (" + std::to_string(out->max_size / 16) +
                 " bytes): the store is 16 shards, and an entry lives in one");
  }
}

void Loader::redis(const YAML::Node& n, Redis* out) {
  if (!r_.check_map(n, "redis",
                    {"url", "tls", "timeout", "on_error", "connections", "cluster", "sentinels"}))
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
    if (v == "local")
      out->on_error = Redis::OnError::kLocal;
    else if (v == "deny")
      out->on_error = Redis::OnError::kDeny;
    else if (v == "allow")
      out->on_error = Redis::OnError::kAllow;
    else
      r_.error(e, "redis.on_error", "expected local, deny or allow");
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
      if (host.size() > 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
      char* end = nullptr;
      long port = colon == std::string::npos ? 0 : std::strtol(a.c_str() + colon + 1, &end, 10);
      if (host.empty() || port < 1 || port > 65535 || !end || *end)
        r_.error(v.IsSequence() ? v[i] : v, index("redis.sentinels", i), "expected host:port");
      else
        out->sentinels.emplace_back(host, static_cast<uint16_t>(port));
    }
    if (items.empty()) r_.error(v, "redis.sentinels", "expected a list of host:port");
    if (out->cluster)
      r_.error(v, "redis.sentinels",
               "a Redis Cluster needs no sentinels: leave one of the two out");
  }
}

void Loader::admin(const YAML::Node& n, const Server& server, Admin* a) {
  if (!n.IsNull() && !r_.check_map(n, "admin", {"listen", "token_env"})) return;
  a->enabled = true;
  if (!n.IsMap()) return;
  if (auto l = n["listen"]) {
    if (auto addr = address(l, "admin.listen", false)) {
      a->listen = *addr;
      // The admin API never shares a port with traffic.
      for (const auto& t : server.listen) {
        if (t.address.port == addr->port && addr->port != 0)
          r_.error(l, "admin.listen",
                   "port " + std::to_string(addr->port) +
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

void Loader::observability(const YAML::Node& n, Observability* o) {
  if (!r_.check_map(n, "observability", {"request_id_header", "access_log", "tracing"})) return;
  if (auto t = n["tracing"]) tracing(t, &o->tracing.emplace());
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
    if (r_.check_map(a, path, {"path", "format", "fields"})) {
      if (auto p = a["path"]) {
        if (auto s = r_.str(p, child(path, "path"))) {
          if (*s == "stdout")
            o->access_log.sink = AccessLog::Sink::kStdout;
          else if (*s == "stderr")
            o->access_log.sink = AccessLog::Sink::kStderr;
          else if (*s == "off")
            o->access_log.sink = AccessLog::Sink::kOff;
          else if (s->empty())
            r_.error(p, child(path, "path"), "must not be empty");
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
      if (auto f = a["fields"]) {
        o->access_log.fields = 0;
        const auto& names = AccessLog::kFieldNames;
        for (const auto& name : r_.str_list(f, child(path, "fields"))) {
          const auto it = std::find(names.begin(), names.end(), name);
          if (it == names.end()) {
            std::string all;
            for (auto n : names) all.append(all.empty() ? "" : ", ").append(n);
            r_.error(f, child(path, "fields"),
                     "unknown field '" + name + "' (expected: " + all + ")");
          } else {
            o->access_log.fields |= 1u << (it - names.begin());
          }
        }
      }
    }
  }
}

void Loader::tracing(const YAML::Node& n, Tracing* t) {
  const std::string path = "observability.tracing";
  if (!r_.check_map(n, path,
                    {"otlp_endpoint", "sample_ratio", "always_sample_errors", "propagation",
                     "service_name", "resource", "export"}))
    return;
  if (auto e = n["otlp_endpoint"]) {
    if (auto s = r_.str(e, child(path, "otlp_endpoint"))) {
      std::string why;
      auto url = http::parse_url(*s, &why);
      if (!url || (url->scheme != "http" && url->scheme != "https"))
        why = "expected an http:// or https:// URL" + (url ? "" : " (" + why + ")");
      if (!why.empty())
        r_.error(e, child(path, "otlp_endpoint"), why);
      else
        t->otlp_endpoint = *s;
    }
  }
  if (auto v = n["sample_ratio"]) {
    auto x = share(v);
    if (!x || !(*x >= 0 && *x <= 1))
      r_.error(v, child(path, "sample_ratio"), "expected a share from 0 to 1 (or 0% to 100%)");
    else
      t->sample_ratio = *x;
  }
  if (auto v = n["always_sample_errors"])
    if (auto b = r_.boolean(v, child(path, "always_sample_errors"))) t->always_sample_errors = *b;
  if (auto v = n["propagation"]) {
    t->propagation.clear();
    const auto names = r_.str_list(v, child(path, "propagation"));
    if (names.empty()) r_.error(v, child(path, "propagation"), "must name a propagator");
    for (const auto& name : names) {
      using P = Tracing::Propagator;
      std::optional<P> p = name == "tracecontext" ? std::optional(P::kTraceContext)
                           : name == "b3"         ? std::optional(P::kB3)
                           : name == "b3multi"    ? std::optional(P::kB3Multi)
                                                  : std::nullopt;
      if (!p)
        r_.error(v, child(path, "propagation"),
                 "unknown propagator '" + name + "' (expected: tracecontext, b3, b3multi)");
      else if (std::find(t->propagation.begin(), t->propagation.end(), *p) == t->propagation.end())
        t->propagation.push_back(*p);
    }
  }
  auto string_map = [&](const YAML::Node& m, const std::string& at, bool header_names,
                        std::vector<std::pair<std::string, std::string>>* out) {
    if (!m.IsMap()) return r_.error(m, at, "expected a mapping");
    for (auto it = m.begin(); it != m.end(); ++it) {
      const std::string key = it->first.Scalar();
      if (auto v = r_.str(it->second, child(at, key))) {
        if (header_names && !is_token(key))
          r_.error(it->first, at, "'" + key + "' is not a header name");
        else
          out->emplace_back(key, *v);
      }
    }
  };
  if (auto v = n["service_name"])
    if (auto s = r_.str(v, child(path, "service_name")))
      t->resource.emplace_back("service.name", *s);
  if (auto v = n["resource"]) string_map(v, child(path, "resource"), false, &t->resource);
  if (auto x = n["export"]) {
    const std::string ep = child(path, "export");
    if (!r_.check_map(x, ep,
                      {"max_queue", "max_batch", "interval", "timeout", "max_retries",
                       "compression", "headers"}))
      return;
    if (auto v = x["max_queue"])
      if (auto i = r_.integer(v, child(ep, "max_queue"), 1, 1'000'000)) t->max_queue = *i;
    if (auto v = x["max_batch"])
      if (auto i = r_.integer(v, child(ep, "max_batch"), 1, 100'000)) t->max_batch = *i;
    if (auto v = x["interval"])
      if (auto d = r_.duration(v, child(ep, "interval"))) t->interval = *d;
    if (auto v = x["timeout"])
      if (auto d = r_.duration(v, child(ep, "timeout"))) t->timeout = *d;
    if (auto v = x["max_retries"])
      if (auto i = r_.integer(v, child(ep, "max_retries"), 0, 10)) t->max_retries = *i;
    if (auto v = x["compression"]) {
      if (auto s = r_.str(v, child(ep, "compression"))) {
        if (*s == "gzip" || *s == "none")
          t->gzip = *s == "gzip";
        else
          r_.error(v, child(ep, "compression"), "expected gzip or none");
      }
    }
    if (auto v = x["headers"]) string_map(v, child(ep, "headers"), true, &t->headers);
  }
}

// API keys never appear in the file: a SHA-256 digest, or the name of an environment variable
// read now (so that a missing secret fails the load, not the first request).
void Loader::consumers(const YAML::Node& n, std::vector<Consumer>* out) {
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
          r_.error(nm, child(path, "name"),
                   "a consumer name must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~)");
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
                r_.error(h, child(ip, "sha256"),
                         "expected the key's SHA-256 as 64 hexadecimal digits");
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
            r_.error(keys[j], ip,
                     "the same API key is already given to consumer '" + it->second + "'");
            continue;
          }
          c.api_key_sha256.push_back(*digest);
        }
      }
    }
    out->push_back(std::move(c));
  }
}

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
