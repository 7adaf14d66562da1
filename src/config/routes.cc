// The routes section: matchers (host, path, templates, regexes, methods, headers, query), rewrites,
// the upstreams a route sends to, its timeout and retry, and its plugins, built through the filter
// registry. Part of the Loader (config/loader.h).
#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "config/loader.h"
#include "filters/registry.h"

namespace gatehouse::config {

void Loader::routes(const YAML::Node& n, const Config& config, std::vector<Route>* out) {
  const std::vector<Upstream>& ups = config.upstreams;
  if (!n.IsSequence()) {
    r_.error(n, "routes", "expected a list of routes");
    return;
  }
  std::set<std::string> names;
  for (size_t i = 0; i < n.size(); ++i) {
    std::string path = index("routes", i);
    const YAML::Node& rn = n[i];
    if (!r_.check_map(rn, path,
                      {"name", "match", "rewrite", "to", "plugins", "timeout", "retry", "websocket",
                       "grpc", "grpc_transcode", "aggregate"}))
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
        if (d->count() < 1)
          r_.error(t, child(path, "timeout"), "must be at least 1ms");
        else
          r.timeout = *d;
      }
    }
    if (auto w = rn["websocket"]) r.websocket = websocket(w, child(path, "websocket"));
    if (auto g = rn["grpc"]) {
      const std::string gp = child(path, "grpc");
      if (r_.check_map(g, gp, {"max_message_bytes"})) {
        if (auto v = g["max_message_bytes"]) {
          if (auto b = r_.size(v, child(gp, "max_message_bytes"))) {
            if (*b < 1 || *b > 0xffffffffu)
              r_.error(v, child(gp, "max_message_bytes"), "must be between 1 byte and 4GiB - 1");
            else
              r.grpc_max_message_bytes = *b;
          }
        }
      }
    }
    if (auto t = rn["to"]) {
      to(t, child(path, "to"), ups, &r);
      // A WebSocket tunnel is an HTTP/1.1 upgrade on the upstream side too (RFC 8441's
      // extended CONNECT to upstreams is not built).
      for (const auto& w : r.to) {
        if (r.websocket && ups[w.upstream_index].http2())
          r_.error(rn["websocket"], child(path, "websocket"),
                   "upstream '" + w.upstream +
                       "' speaks HTTP/2: WebSocket tunnels need an http1 upstream");
      }
    } else if (!rn["aggregate"]) {
      r_.error(rn, child(path, "to"), "'to' is required");
    }
    if (auto a = rn["aggregate"]) {
      if (rn["to"])
        r_.error(rn["to"], child(path, "to"),
                 "a route with 'aggregate' calls its legs' upstreams: it has no 'to'");
      else
        aggregate(a, child(path, "aggregate"), config, captures, &r);
    }
    if (auto p = rn["plugins"]) plugins(p, child(path, "plugins"), config, &r);
    if (auto g = rn["grpc_transcode"]) {
      // HTTP/JSON in, gRPC out: the upstream must speak gRPC.
      const std::string gp = child(path, "grpc_transcode");
      for (const auto& w : r.to) {
        if (ups[w.upstream_index].protocol != Upstream::Protocol::kGrpc)
          r_.error(g, gp,
                   "upstream '" + w.upstream + "' is not protocol: grpc, which transcoding calls");
      }
      if (auto f = filters::build_route_filter("grpc_transcode", {g, gp, r_, config, r.name}))
        r.filters.push_back(std::move(f));
    }
    std::stable_sort(r.filters.begin(), r.filters.end(), [](auto& a, auto& b) {
      return filters::filter_phase(a->name()) < filters::filter_phase(b->name());
    });
    out->push_back(std::move(r));
  }
}

void Loader::plugins(const YAML::Node& p, const std::string& pp, const Config& config, Route* r,
                     std::initializer_list<std::string_view> only) {
  if (!p.IsMap()) {
    r_.error(p, pp, "expected a mapping of plugin names to their settings");
    return;
  }
  std::set<std::string> seen;
  for (auto it = p.begin(); it != p.end(); ++it) {
    std::string name = it->first.Scalar();
    std::string fp = child(pp, name);
    if (!seen.insert(name).second) {
      r_.error(it->first, fp, "duplicate plugin '" + name + "'");
      continue;
    }
    if (only.size() && std::find(only.begin(), only.end(), name) == only.end()) {
      std::string list;
      for (auto o : only) list += (list.empty() ? "" : ", ") + std::string(o);
      r_.error(it->first, fp, "'" + name + "' is not a plugin here (these are: " + list + ")");
      continue;
    }
    const YAML::Node& plugins = p;  // const: a lookup must not insert while iterating
    if (name == "acl" && !plugins["key_auth"] && !plugins["jwt_auth"])
      r_.error(it->first, fp,
               "acl needs key_auth or jwt_auth on the same route to know the consumer");
    if (auto f = filters::build_filter(name, it->first, {it->second, fp, r_, config, r->name}))
      r->filters.push_back(std::move(f));
  }
  std::stable_sort(r->filters.begin(), r->filters.end(), [](auto& a, auto& b) {
    return filters::filter_phase(a->name()) < filters::filter_phase(b->name());
  });
}

void Loader::match(const YAML::Node& n, const std::string& path, Route* r,
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

void Loader::path_match(const YAML::Node& n, const std::string& path, PathMatch* m,
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

ValueMatch Loader::value_match(const std::string& name, const YAML::Node& v,
                               const std::string& path, bool* ok) {
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

std::shared_ptr<const re2::RE2> Loader::compile(const std::string& pattern, const YAML::Node& at,
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

void Loader::rewrite(const YAML::Node& n, const std::string& path, Route* r,
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
      if (!from || !to || from->empty() || from->front() != '/' || to->empty() ||
          to->front() != '/')
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
          r_.error(
              s, child(path, "path"),
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
  if (path_rules > 1) r_.error(n, path, "use only one of strip_prefix, replace_prefix and path");
  if (auto s = n["host"]) {
    if (auto v = r_.str(s, child(path, "host"))) {
      if (v->empty() || v->find_first_of(" /\t\r\n") != std::string::npos)
        r_.error(s, child(path, "host"), "invalid host '" + *v + "'");
      else
        r->rewrite.host = *v;
    }
  }
}

void Loader::to(const YAML::Node& n, const std::string& path, const std::vector<Upstream>& ups,
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
      if (auto v = r_.integer(w, child(p, "weight"), 0, 1'000'000))
        weight = static_cast<uint32_t>(*v);
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

// routes[].websocket: the route takes WebSocket upgrades (RFC 6455) and tunnels them.
std::optional<WebSocket> Loader::websocket(const YAML::Node& n, const std::string& path) const {
  if (!r_.check_map(n, path, {"idle_timeout", "max_frame_bytes", "max_message_bytes"}))
    return std::nullopt;
  WebSocket w;
  if (auto v = n["idle_timeout"]) {
    if (auto d = r_.duration(v, child(path, "idle_timeout"))) {
      if (d->count() < 1)
        r_.error(v, child(path, "idle_timeout"), "must be at least 1ms");
      else
        w.idle_timeout = *d;
    }
  }
  auto sz = [&](const char* key, uint64_t* out) {
    if (auto v = n[key]) {
      if (auto b = r_.size(v, child(path, key))) {
        if (*b < 125)  // a control frame's payload (RFC 6455 5.5) always passes
          r_.error(v, child(path, key), "must be at least 125 bytes");
        else
          *out = *b;
      }
    }
  };
  sz("max_frame_bytes", &w.max_frame_bytes);
  sz("max_message_bytes", &w.max_message_bytes);
  if (w.max_frame_bytes > w.max_message_bytes) w.max_frame_bytes = w.max_message_bytes;
  return w;
}

}  // namespace gatehouse::config
