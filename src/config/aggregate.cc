// The routes section's `aggregate` (docs/aggregation.md): a composite route's legs, their path
// templates, and the graph their dependencies make, checked at load: every name a template uses
// exists, and no leg waits, however indirectly, for itself. Part of the Loader
// (config/loader.h).
#include <algorithm>
#include <cctype>

#include "config/loader.h"
#include "filters/registry.h"

namespace gatehouse::config {
namespace {

constexpr size_t kMaxLegs = 16;

bool is_name(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

// The legs of a dependency cycle through `from`, if there is one ("a -> b -> a").
bool find_cycle(const std::vector<AggregateLeg>& legs, size_t at, std::vector<int>* state,
                std::vector<size_t>* stack, std::string* cycle) {
  (*state)[at] = 1;  // on the current path
  stack->push_back(at);
  for (size_t next : legs[at].needs) {
    if ((*state)[next] == 1) {
      auto first = std::find(stack->begin(), stack->end(), next);
      for (auto it = first; it != stack->end(); ++it) *cycle += legs[*it].name + " -> ";
      *cycle += legs[next].name;
      return true;
    }
    if ((*state)[next] == 0 && find_cycle(legs, next, state, stack, cycle)) return true;
  }
  stack->pop_back();
  (*state)[at] = 2;  // done: no cycle through it
  return false;
}

}  // namespace

void Loader::aggregate(const YAML::Node& n, const std::string& path, const Config& config,
                       const std::set<std::string>& captures, Route* r) {
  if (!r_.check_map(n, path, {"timeout", "partial_status", "max_leg_bytes", "max_bytes", "calls"}))
    return;
  auto a = std::make_shared<Aggregate>();
  if (auto t = n["timeout"]) {
    if (auto d = r_.duration(t, child(path, "timeout"))) {
      if (d->count() < 1)
        r_.error(t, child(path, "timeout"), "must be at least 1ms");
      else
        a->timeout = *d;
    }
  }
  if (auto s = n["partial_status"]) {
    if (auto v = r_.integer(s, child(path, "partial_status"), 200, 299))
      a->partial_status = static_cast<int>(*v);
  }
  for (auto [key, out] :
       {std::pair{"max_leg_bytes", &a->max_leg_bytes}, std::pair{"max_bytes", &a->max_bytes}}) {
    if (auto v = n[key]) {
      if (auto b = r_.size(v, child(path, key))) {
        if (*b < 1)
          r_.error(v, child(path, key), "must be at least 1 byte");
        else
          *out = *b;
      }
    }
  }
  const std::string cp = child(path, "calls");
  const YAML::Node& calls = n["calls"];
  if (!calls) {
    r_.error(n, cp, "'calls' is required: the legs, by name");
    return;
  }
  if (!calls.IsMap() || calls.size() == 0) {
    r_.error(calls, cp, "expected a mapping of leg names to their calls");
    return;
  }
  if (calls.size() > kMaxLegs) {
    r_.error(calls, cp,
             std::to_string(calls.size()) + " legs: a composite route has at most " +
                 std::to_string(kMaxLegs));
    return;
  }
  // The names first: a template may use a leg declared after it.
  std::vector<std::string> names;
  for (auto it = calls.begin(); it != calls.end(); ++it) names.push_back(it->first.Scalar());
  auto leg_index = [&](std::string_view name) {
    return static_cast<size_t>(std::find(names.begin(), names.end(), name) - names.begin());
  };
  std::vector<YAML::Node> path_nodes;
  bool ok = true;
  size_t i = 0;
  for (auto it = calls.begin(); it != calls.end(); ++it, ++i) {
    const std::string& name = names[i];
    const std::string lp = child(cp, name);
    const YAML::Node ln = it->second;  // a copy: the iterator gives a temporary
    AggregateLeg leg;
    leg.name = name;
    if (!is_name(name) || name == "errors") {
      r_.error(it->first, lp,
               "a leg's name is letters, digits, '_' and '-' (and not 'errors', the answer's key "
               "for failed legs)");
      ok = false;
    } else if (captures.contains(name)) {
      r_.error(it->first, lp, "'" + name + "' is also a capture of the route's path: rename one");
      ok = false;
    }
    if (!r_.check_map(ln, lp,
                      {"upstream", "path", "method", "timeout", "optional", "raw", "pass_status",
                       "headers", "add_headers", "credentials", "merge", "at", "fields", "rename",
                       "plugins", "body", "grpc_transcode"})) {
      ok = false;
      path_nodes.emplace_back();
      a->legs.push_back(std::move(leg));
      continue;
    }
    auto route = std::make_shared<Route>();
    route->name = r->name + "." + name;
    route->order = r->order;
    if (auto u = ln["upstream"]) {
      to(u, child(lp, "upstream"), config.upstreams, route.get());
      // A gRPC service answers a leg through transcoding, as it answers a JSON client.
      const bool grpc =
          !route->to.empty() &&
          config.upstreams[route->to[0].upstream_index].protocol == Upstream::Protocol::kGrpc;
      if (grpc && !ln["grpc_transcode"])
        r_.error(u, child(lp, "upstream"),
                 "upstream '" + route->to[0].upstream +
                     "' speaks gRPC: a leg's answer is JSON, so the leg needs grpc_transcode");
      if (!grpc && ln["grpc_transcode"])
        r_.error(ln["grpc_transcode"], child(lp, "grpc_transcode"),
                 "upstream '" + route->to[0].upstream + "' is not protocol: grpc");
      if (grpc && ln["grpc_transcode"]) {
        if (auto f = filters::build_route_filter(
                "grpc_transcode",
                {ln["grpc_transcode"], child(lp, "grpc_transcode"), r_, config, route->name}))
          route->filters.push_back(std::move(f));
      }
      if (route->to.size() != 1) ok = false;
    } else {
      r_.error(ln, child(lp, "upstream"), "'upstream' is required");
      ok = false;
    }
    // A leg's plugins run on its sub-request: a cache in front of its upstream.
    if (auto p = ln["plugins"]) plugins(p, child(lp, "plugins"), config, route.get(), {"cache"});
    if (auto t = ln["timeout"]) {
      if (auto d = r_.duration(t, child(lp, "timeout"))) {
        if (d->count() < 1)
          r_.error(t, child(lp, "timeout"), "must be at least 1ms");
        else
          route->timeout = *d;
      }
    }
    if (auto m = ln["method"]) {
      if (auto s = r_.str(m, child(lp, "method"))) {
        if (!is_token(*s))
          r_.error(m, child(lp, "method"), "'" + *s + "' is not an HTTP method");
        else
          leg.method = *s;
      }
    }
    for (auto [key, out] : {std::pair{"optional", &leg.optional}, std::pair{"raw", &leg.raw},
                            std::pair{"credentials", &leg.credentials},
                            std::pair{"merge", &leg.merge}, std::pair{"body", &leg.body}}) {
      if (auto v = ln[key]) {
        if (auto b = r_.boolean(v, child(lp, key))) *out = *b;
      }
    }
    if (auto ps = ln["pass_status"]) {
      for (const auto& code : r_.str_list(ps, child(lp, "pass_status"))) {
        const int c = std::atoi(code.c_str());
        if (c < 400 || c > 499 || std::to_string(c) != code)
          r_.error(ps, child(lp, "pass_status"),
                   "'" + code + "' is not a 4xx status (the codes a leg's answer may pass on)");
        else
          leg.pass_status.push_back(c);
      }
    }
    if (auto h = ln["headers"]) {
      for (const auto& name_ : r_.str_list(h, child(lp, "headers"))) {
        if (!is_token(name_))
          r_.error(h, child(lp, "headers"), "'" + name_ + "' is not a header name");
        else
          leg.headers.push_back(lower(name_));
      }
    }
    if (auto h = ln["add_headers"]) {
      if (!h.IsMap()) {
        r_.error(h, child(lp, "add_headers"), "expected a mapping of header names to values");
      } else {
        for (auto hit = h.begin(); hit != h.end(); ++hit) {
          const std::string hn = hit->first.Scalar();
          if (auto v = r_.str(hit->second, child(child(lp, "add_headers"), hn))) {
            if (!is_token(hn))
              r_.error(hit->first, child(lp, "add_headers"), "'" + hn + "' is not a header name");
            else
              leg.add_headers.emplace_back(hn, *v);
          }
        }
      }
    }
    // Shaping.
    auto dotted = [](const std::string& s) {
      std::vector<std::string> keys;
      size_t from = 0;
      while (true) {
        const auto dot = s.find('.', from);
        keys.push_back(s.substr(from, dot - from));
        if (dot == std::string::npos) break;
        from = dot + 1;
      }
      return keys;
    };
    auto no_empty_key = [](const std::vector<std::string>& keys) {
      return std::none_of(keys.begin(), keys.end(), [](const auto& k) { return k.empty(); });
    };
    if (auto at = ln["at"]) {
      if (auto s = r_.str(at, child(lp, "at"))) {
        leg.at = dotted(*s);
        if (!no_empty_key(leg.at)) r_.error(at, child(lp, "at"), "expected a dotted path: a.b.c");
        if (leg.merge)
          r_.error(at, child(lp, "at"), "a leg is either merged or placed 'at' a path");
      }
    }
    if (auto f = ln["fields"]) {
      for (const auto& field : r_.str_list(f, child(lp, "fields"))) {
        auto keys = dotted(field);  // split once, here, not per answer
        if (!no_empty_key(keys))
          r_.error(f, child(lp, "fields"), "'" + field + "' is not a dotted field path");
        else
          leg.fields.push_back(std::move(keys));
      }
    }
    if (auto rn = ln["rename"]) {
      if (!rn.IsMap()) {
        r_.error(rn, child(lp, "rename"), "expected a mapping of keys to their new names");
      } else {
        for (auto rit = rn.begin(); rit != rn.end(); ++rit) {
          if (auto to_name = r_.str(rit->second, child(child(lp, "rename"), rit->first.Scalar())))
            leg.rename.emplace_back(rit->first.Scalar(), *to_name);
        }
      }
    }
    if (leg.raw && (leg.shaped() || !leg.at.empty()))
      r_.error(ln["raw"], child(lp, "raw"),
               "a raw leg's answer is a string: it has no fields to shape");
    // The path template.
    const std::string pp = child(lp, "path");
    const YAML::Node& pn = ln["path"];
    path_nodes.push_back(pn);
    std::optional<std::string> text;
    if (!pn) {
      r_.error(ln, pp, "'path' is required");
    } else {
      text = r_.str(pn, pp);
    }
    if (text && !text->starts_with('/')) {
      r_.error(pn, pp, "a leg's path starts with '/'");
      text.reset();
    }
    std::string_view rest = text ? std::string_view(*text) : std::string_view();
    while (!rest.empty()) {
      const auto open = rest.find('{');
      const auto stray = rest.substr(0, open).find('}');
      if (stray != std::string_view::npos) {
        r_.error(pn, pp, "a '}' without its '{'");
        ok = false;
        break;
      }
      if (open) leg.path.push_back({TemplatePart::Kind::kText, std::string(rest.substr(0, open))});
      if (open == std::string_view::npos) break;
      const auto close = rest.find('}', open);
      if (close == std::string_view::npos) {
        r_.error(pn, pp, "a '{' without its '}'");
        ok = false;
        break;
      }
      const std::string ref(rest.substr(open + 1, close - open - 1));
      rest.remove_prefix(close + 1);
      const auto dot = ref.find('.');
      const std::string head = ref.substr(0, dot);
      const std::string field = dot == std::string::npos ? "" : ref.substr(dot + 1);
      TemplatePart part;
      if (dot == std::string::npos && captures.contains(ref)) {
        part = {TemplatePart::Kind::kCapture, ref};
      } else if (head == "query" && !field.empty()) {
        part = {TemplatePart::Kind::kQuery, field};
      } else if (head == "header" && is_token(field)) {
        part = {TemplatePart::Kind::kHeader, lower(field)};
      } else if (const size_t other = leg_index(head); other < names.size()) {
        if (other == i) {
          r_.error(pn, pp, "{" + ref + "}: a leg cannot use its own answer");
          ok = false;
          continue;
        }
        if (field.empty()) {
          r_.error(pn, pp,
                   "{" + ref + "} is a whole answer: name a value in it, {" + ref + ".FIELD}");
          ok = false;
          continue;
        }
        part = {TemplatePart::Kind::kLeg, field, other};
        if (std::find(leg.needs.begin(), leg.needs.end(), other) == leg.needs.end())
          leg.needs.push_back(other);
      } else {
        r_.error(pn, pp,
                 "{" + ref +
                     "} is not a capture of the route's path, {query.NAME}, {header.NAME} or "
                     "{LEG.FIELD} of another leg");
        ok = false;
        continue;
      }
      leg.path.push_back(std::move(part));
    }
    if (!text) ok = false;
    leg.route = std::move(route);
    a->legs.push_back(std::move(leg));
  }
  // The client's body is read once, whole: one leg at most gets it.
  if (std::count_if(a->legs.begin(), a->legs.end(), [](const auto& l) { return l.body; }) > 1) {
    r_.error(calls, cp, "one leg at most takes the client's body ('body: true')");
    ok = false;
  }
  // No leg may wait for itself: the dependencies make a graph without cycles.
  std::vector<int> state(a->legs.size(), 0);
  for (size_t l = 0; l < a->legs.size(); ++l) {
    std::vector<size_t> stack;
    std::string cycle;
    if (state[l] == 0 && find_cycle(a->legs, l, &state, &stack, &cycle)) {
      const size_t at = stack.back();
      r_.error(path_nodes[at] ? path_nodes[at] : calls, child(child(cp, a->legs[at].name), "path"),
               "the legs wait for each other's answers: " + cycle);
      ok = false;
      break;
    }
  }
  if (ok) r->aggregate = std::move(a);
}

}  // namespace gatehouse::config
