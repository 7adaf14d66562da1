#include "filters/cors/cors.h"

#include <algorithm>

#include "filters/registry.h"

namespace gatehouse::filters {
namespace {

// What the request phase decided for an actual (not preflight) request, for the response phase:
// the Access-Control-Allow-Origin value, empty when the origin is not allowed.
struct Verdict {
  std::string allow_origin;
};
const SlotKey<Verdict> kVerdict{"cors.verdict"};

std::string join(const std::vector<std::string>& list) {
  std::string out;
  for (const auto& s : list) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

Cors::Cors(Settings s) : s_(std::move(s)) {
  any_origin_ = std::find(s_.origins.begin(), s_.origins.end(), "*") != s_.origins.end();
  methods_joined_ = join(s_.methods);
  headers_joined_ = join(s_.headers);
  expose_joined_ = join(s_.expose_headers);
  if (s_.max_age_seconds >= 0) max_age_ = std::to_string(s_.max_age_seconds);
}

bool Cors::origin_allowed(std::string_view origin) const {
  if (origin.empty()) return false;
  if (any_origin_) return true;
  // Origins are compared exactly (the Fetch standard serialises them in lower case).
  return std::find(s_.origins.begin(), s_.origins.end(), origin) != s_.origins.end();
}

std::string_view Cors::allow_origin_value(std::string_view origin) const {
  return any_origin_ ? std::string_view("*") : origin;
}

FilterStatus Cors::on_request(RequestContext& ctx) const {
  const auto& req = *ctx.request;
  std::string_view origin = req.get("origin");
  if (http::is_cors_preflight(req)) {
    answer_preflight(ctx, origin);
    return FilterStatus::kRespond;
  }
  Verdict v;
  if (origin_allowed(origin)) v.allow_origin = allow_origin_value(origin);
  ctx.slots.set(kVerdict, std::move(v));
  return FilterStatus::kContinue;
}

// The CORS headers of an actual request's response, whoever answers it (the upstream, or another
// filter: a browser may then read a 401 or 429 too).
FilterStatus Cors::on_response(RequestContext& ctx) const {
  const Verdict* v = ctx.slots.get(kVerdict);
  if (!v) return FilterStatus::kContinue;  // a preflight, answered with its own headers
  // The answer depends on Origin whenever it is echoed: caches must key on it.
  if (!any_origin_) ctx.response_add.emplace_back("Vary", "Origin");
  if (v->allow_origin.empty()) return FilterStatus::kContinue;
  ctx.response_add.emplace_back("Access-Control-Allow-Origin", v->allow_origin);
  if (s_.credentials) ctx.response_add.emplace_back("Access-Control-Allow-Credentials", "true");
  if (!expose_joined_.empty())
    ctx.response_add.emplace_back("Access-Control-Expose-Headers", expose_joined_);
  return FilterStatus::kContinue;
}

void Cors::answer_preflight(RequestContext& ctx, std::string_view origin) const {
  const auto& req = *ctx.request;
  auto& h = ctx.reply.headers;
  ctx.reply.status = 204;
  h.emplace_back("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
  std::string_view method = req.get("access-control-request-method");
  std::string_view asked = req.get("access-control-request-headers");
  bool ok = origin_allowed(origin) &&
            std::find(s_.methods.begin(), s_.methods.end(), method) != s_.methods.end();
  if (ok && !s_.headers.empty()) {
    // Every header the preflight asks for must be on the list.
    std::string_view rest = asked;
    while (ok && !rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view one = http::trim_ows(rest.substr(0, comma));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (one.empty()) continue;
      ok = std::any_of(s_.headers.begin(), s_.headers.end(),
                       [&](const std::string& allowed) { return http::iequals(allowed, one); });
    }
  }
  if (!ok) return;  // no CORS headers: the browser refuses the actual request
  h.emplace_back("Access-Control-Allow-Origin", allow_origin_value(origin));
  h.emplace_back("Access-Control-Allow-Methods", methods_joined_);
  if (!s_.headers.empty()) {
    h.emplace_back("Access-Control-Allow-Headers", headers_joined_);
  } else if (!asked.empty()) {
    h.emplace_back("Access-Control-Allow-Headers", asked);
  }
  if (s_.credentials) h.emplace_back("Access-Control-Allow-Credentials", "true");
  if (!max_age_.empty()) h.emplace_back("Access-Control-Max-Age", max_age_);
}

std::shared_ptr<const Filter> build_cors(const BuildContext& ctx) {
  const auto& n = ctx.settings;
  const auto& r = ctx.reader;
  if (!r.check_map(n, ctx.path,
                   {"origins", "methods", "headers", "expose_headers", "credentials", "max_age"}))
    return nullptr;
  Cors::Settings s;
  bool ok = true;
  if (auto o = n["origins"]) {
    s.origins = r.str_list(o, config::child(ctx.path, "origins"));
    for (size_t i = 0; i < s.origins.size(); ++i) {
      const std::string& origin = s.origins[i];
      bool shaped =
          origin == "*" || ((origin.starts_with("https://") || origin.starts_with("http://")) &&
                            origin.find('/', origin.find("//") + 2) == std::string::npos);
      if (!shaped) {
        r.error(o.IsSequence() ? o[i] : o, config::index(config::child(ctx.path, "origins"), i),
                "an origin is \"*\" or scheme://host[:port] with no path, e.g. "
                "https://app.example.com");
        ok = false;
      }
    }
  }
  if (s.origins.empty()) {
    r.error(n, config::child(ctx.path, "origins"),
            "'origins' is required (a list of origins, or \"*\")");
    return nullptr;
  }
  if (auto m = n["methods"]) {
    s.methods = r.str_list(m, config::child(ctx.path, "methods"));
    for (auto& x : s.methods) std::transform(x.begin(), x.end(), x.begin(), ::toupper);
  }
  if (auto h = n["headers"]) {
    s.headers = r.str_list(h, config::child(ctx.path, "headers"));
    for (auto& x : s.headers) std::transform(x.begin(), x.end(), x.begin(), ::tolower);
  }
  if (auto e = n["expose_headers"])
    s.expose_headers = r.str_list(e, config::child(ctx.path, "expose_headers"));
  if (auto c = n["credentials"]) {
    auto b = r.boolean(c, config::child(ctx.path, "credentials"));
    if (!b) return nullptr;
    s.credentials = *b;
    if (s.credentials && std::find(s.origins.begin(), s.origins.end(), "*") != s.origins.end()) {
      r.error(c, config::child(ctx.path, "credentials"),
              "credentials cannot be combined with the origin \"*\": list the origins");
      return nullptr;
    }
  }
  if (auto a = n["max_age"]) {
    auto d = r.duration(a, config::child(ctx.path, "max_age"));
    if (!d) return nullptr;
    s.max_age_seconds = d->count() / 1000;
  }
  if (!ok) return nullptr;
  return std::make_shared<Cors>(std::move(s));
}

}  // namespace gatehouse::filters
