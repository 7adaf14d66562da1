#include "router/router.h"

#include <re2/re2.h>

#include <algorithm>
#include <tuple>

namespace gatehouse::router {
namespace {

using config::PathMatch;
using config::ValueMatch;

std::string_view host_without_port(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    auto close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  auto colon = host.rfind(':');
  return colon == std::string_view::npos ? host : host.substr(0, colon);
}

bool host_matches(const config::Route& r, std::string_view host) {
  if (r.hosts.empty()) return true;
  host = host_without_port(host);
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);  // FQDN form
  for (const auto& h : r.hosts) {
    if (!h.wildcard) {
      if (http::iequals(host, h.host)) return true;
    } else if (host.size() > h.host.size() &&
               http::iequals(host.substr(host.size() - h.host.size()), h.host)) {
      return true;
    }
  }
  return false;
}

bool path_matches(const PathMatch& m, std::string_view path, Captures* caps) {
  switch (m.kind) {
    case PathMatch::Kind::kAny:
      return true;
    case PathMatch::Kind::kExact:
      return path == m.text;
    case PathMatch::Kind::kPrefix:
      // "/api/products/*" takes /api/products/... and /api/products itself.
      return path.substr(0, m.text.size()) == m.text ||
             path == std::string_view(m.text).substr(0, m.text.size() - 1);
    case PathMatch::Kind::kTemplate: {
      if (path.empty() || path[0] != '/') return false;
      std::string_view rest = path.substr(1);
      size_t before = caps->size();
      for (size_t i = 0; i < m.segments.size(); ++i) {
        auto slash = rest.find('/');
        bool last = i + 1 == m.segments.size();
        if (last != (slash == std::string_view::npos)) return caps->resize(before), false;
        std::string_view seg = rest.substr(0, slash);
        const std::string& want = m.segments[i];
        if (!want.empty() && want.front() == '{') {
          if (seg.empty()) return caps->resize(before), false;
          caps->emplace_back(std::string_view(want).substr(1, want.size() - 2), seg);
        } else if (seg != want) {
          return caps->resize(before), false;
        }
        if (!last) rest.remove_prefix(slash + 1);
      }
      return true;
    }
    case PathMatch::Kind::kRegex: {
      const auto& groups = m.regex->NamedCapturingGroups();
      if (groups.empty()) return RE2::FullMatch(path, *m.regex);
      int n = m.regex->NumberOfCapturingGroups();
      std::vector<re2::StringPiece> pieces(static_cast<size_t>(n));
      std::vector<RE2::Arg> args(static_cast<size_t>(n));
      std::vector<const RE2::Arg*> argp(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) {
        args[i] = RE2::Arg(&pieces[i]);
        argp[i] = &args[i];
      }
      if (!RE2::FullMatchN(path, *m.regex, argp.data(), n)) return false;
      for (const auto& [name, idx] : groups) {
        const auto& p = pieces[static_cast<size_t>(idx - 1)];
        caps->emplace_back(name, std::string_view(p.data(), p.size()));
      }
      return true;
    }
  }
  return false;
}

bool value_matches(const ValueMatch& m, bool found, std::string_view value) {
  switch (m.kind) {
    case ValueMatch::Kind::kPresent:
      return found;
    case ValueMatch::Kind::kAbsent:
      return !found;
    case ValueMatch::Kind::kExact:
      return found && value == m.value;
    case ValueMatch::Kind::kRegex:
      return found && RE2::FullMatch(value, *m.regex);
  }
  return false;
}

// Sort key: larger is more specific.
auto specificity(const config::Route& r) {
  int host_rank = 0;
  size_t host_len = 0;
  for (const auto& h : r.hosts) {
    host_rank = std::max(host_rank, h.wildcard ? 1 : 2);
  }
  // Among wildcards the longer suffix is more specific; exact hosts all rank alike.
  if (host_rank == 1) {
    for (const auto& h : r.hosts) host_len = std::max(host_len, h.host.size());
  }
  int path_rank = 0;
  size_t path_len = 0;
  switch (r.path.kind) {
    case PathMatch::Kind::kExact:
      path_rank = 4;
      path_len = r.path.text.size();
      break;
    case PathMatch::Kind::kTemplate:
      path_rank = 3;
      path_len = static_cast<size_t>(
                     std::count_if(r.path.segments.begin(), r.path.segments.end(),
                                   [](const std::string& s) { return s.empty() || s[0] != '{'; })) *
                     1000 +
                 r.path.segments.size();
      break;
    case PathMatch::Kind::kRegex:
      path_rank = 2;
      break;
    case PathMatch::Kind::kPrefix:
      path_rank = 1;
      path_len = r.path.text.size();
      break;
    case PathMatch::Kind::kAny:
      break;
  }
  return std::make_tuple(host_rank, host_len, path_rank, path_len,
                         r.headers.size() + r.query.size(), !r.methods.empty());
}

}  // namespace

std::string_view query_param(std::string_view query, std::string_view name, bool* found) {
  *found = false;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      *found = true;
      return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

bool method_allowed(const config::Route& r, std::string_view method) {
  if (r.methods.empty()) return true;
  return std::find(r.methods.begin(), r.methods.end(), method) != r.methods.end();
}

bool matches_ignoring_method(const config::Route& r, const http::RequestHead& req, Captures* caps) {
  if (!host_matches(r, req.host)) return false;
  size_t before = caps->size();
  if (!path_matches(r.path, req.path, caps)) return false;
  for (const auto& hm : r.headers) {
    bool found = false;
    std::string_view value;
    for (const auto& h : req.headers) {
      if (h.name.size() == hm.name.size() && http::iequals(h.name, hm.name)) {
        found = true;
        value = h.value;
        break;
      }
    }
    if (!value_matches(hm, found, value)) return caps->resize(before), false;
  }
  for (const auto& qm : r.query) {
    bool found = false;
    auto value = query_param(req.query, qm.name, &found);
    if (!value_matches(qm, found, value)) return caps->resize(before), false;
  }
  return true;
}

RouteTable::RouteTable(const std::vector<config::Route>& routes) {
  for (const auto& r : routes) ordered_.push_back(&r);
  std::stable_sort(ordered_.begin(), ordered_.end(),
                   [](const config::Route* a, const config::Route* b) {
                     return specificity(*a) > specificity(*b);
                   });
}

void RouteTable::match(const http::RequestHead& req, Match* out) const {
  out->reset();
  for (const config::Route* r : ordered_) {
    size_t before = out->captures.size();
    if (!matches_ignoring_method(*r, req, &out->captures)) continue;
    if (method_allowed(*r, req.method)) {
      // Keep only this route's captures.
      out->captures.erase(out->captures.begin(), out->captures.begin() + static_cast<long>(before));
      out->route = r;
      out->allow.clear();
      return;
    }
    out->captures.resize(before);
    for (const auto& m : r->methods) {
      bool listed = false;
      for (std::string_view rest = out->allow; !rest.empty();) {
        auto comma = rest.find(", ");
        if (rest.substr(0, comma) == m) listed = true;
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 2);
      }
      if (!listed) out->allow.append(out->allow.empty() ? "" : ", ").append(m);
    }
  }
}

void rewrite_target(const config::Route& r, const Captures& caps, std::string_view path,
                    std::string_view query, std::string* out) {
  const auto& rw = r.rewrite;
  size_t start = out->size();
  auto at_boundary = [&](std::string_view prefix) {
    return path.substr(0, prefix.size()) == prefix &&
           (path.size() == prefix.size() || prefix.back() == '/' || path[prefix.size()] == '/');
  };
  if (rw.strip_prefix && at_boundary(*rw.strip_prefix)) {
    out->append(path.substr(rw.strip_prefix->size()));
  } else if (rw.replace_prefix && at_boundary(rw.replace_prefix->first)) {
    out->append(rw.replace_prefix->second).append(path.substr(rw.replace_prefix->first.size()));
  } else if (rw.path_template) {
    std::string_view t = *rw.path_template;
    while (!t.empty()) {
      auto open = t.find('{');
      out->append(t.substr(0, open));
      if (open == std::string_view::npos) break;
      auto close = t.find('}', open);
      auto name = t.substr(open + 1, close - open - 1);
      for (const auto& [n, v] : caps) {
        if (n == name) {
          out->append(v);
          break;
        }
      }
      t.remove_prefix(close + 1);
    }
  } else {
    out->append(path);
  }
  if (out->size() == start || (*out)[start] != '/') out->insert(start, "/");
  if (!query.empty()) out->append("?").append(query);
}

}  // namespace gatehouse::router
