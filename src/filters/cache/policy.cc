#include "filters/cache/policy.h"

#include <algorithm>
#include <cctype>

namespace gatehouse::filters::cache {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Calls f(element) for every non-empty, trimmed element of a comma-separated list, commas inside
// quoted strings included in their element.
template <class F>
void for_each_element(std::string_view line, F f) {
  size_t start = 0;
  bool quoted = false;
  for (size_t i = 0; i <= line.size(); ++i) {
    if (i < line.size()) {
      char c = line[i];
      if (quoted && c == '\\') {
        ++i;
        continue;
      }
      if (c == '"') quoted = !quoted;
      if (quoted || c != ',') continue;
    }
    std::string_view element = http::trim_ows(line.substr(start, i - start));
    if (!element.empty()) f(element);
    start = i + 1;
  }
}

}  // namespace

NotStored storable(const RequestFacts& req, const ResponseFacts& resp, bool share_set_cookie,
                   bool default_ttl) {
  if (req.method != "GET") return NotStored::kMethod;
  // Final statuses only; 206 and 304 would need partial storage and merging, which this cache
  // does not do (RFC 9111 3.3, 3.4), so it understands neither (3, "must-understand").
  if (resp.status < 200 || resp.status == 206 || resp.status == 304) return NotStored::kStatus;
  // must-understand with a status the cache understands overrides no-store (5.2.2.3).
  if (req.cc.no_store || (resp.cc.no_store && !resp.cc.must_understand)) return NotStored::kNoStore;
  if (resp.cc.private_) return NotStored::kPrivate;
  if (req.authorization && !resp.cc.public_ && resp.cc.s_maxage == http::CacheControl::kAbsent &&
      !resp.cc.must_revalidate)
    return NotStored::kAuthorization;
  if (resp.set_cookie && !share_set_cookie) return NotStored::kSetCookie;
  if (resp.vary_star) return NotStored::kVaryStar;
  const bool explicit_freshness = resp.cc.max_age != http::CacheControl::kAbsent ||
                                  resp.cc.s_maxage != http::CacheControl::kAbsent || resp.expires;
  if (!explicit_freshness && !resp.cc.public_ && !http::heuristically_cacheable(resp.status) &&
      !default_ttl)
    return NotStored::kNoFreshness;
  return NotStored::kNone;
}

std::string_view to_string(NotStored why) {
  switch (why) {
    case NotStored::kNone:
      return "stored";
    case NotStored::kMethod:
      return "method";
    case NotStored::kStatus:
      return "status";
    case NotStored::kNoStore:
      return "no-store";
    case NotStored::kPrivate:
      return "private";
    case NotStored::kAuthorization:
      return "authorization";
    case NotStored::kSetCookie:
      return "set-cookie";
    case NotStored::kVaryStar:
      return "vary-star";
    case NotStored::kNoFreshness:
      return "no-freshness";
  }
  return "";
}

VarySpec parse_vary(const std::vector<std::string_view>& lines) {
  VarySpec spec;
  for (std::string_view line : lines) {
    for_each_element(line, [&](std::string_view name) {
      if (name == "*")
        spec.star = true;
      else
        spec.names.push_back(lower(name));
    });
  }
  std::sort(spec.names.begin(), spec.names.end());
  spec.names.erase(std::unique(spec.names.begin(), spec.names.end()), spec.names.end());
  return spec;
}

std::string vary_key(const VarySpec& spec, const http::MessageHead& request) {
  std::string key;
  for (const std::string& name : spec.names) {
    const bool fold_case = name == "accept-encoding";
    key += name;
    bool present = false;
    std::string value;
    for (const auto& h : request.headers) {
      if (!http::iequals(h.name, name)) continue;
      present = true;
      for_each_element(h.value, [&](std::string_view element) {
        if (!value.empty()) value += ',';
        value += fold_case ? lower(element) : std::string(element);
      });
    }
    key += present ? "=" : "!";  // absent, as opposed to present and empty
    key += value;
    key += '\n';
  }
  return key;
}

}  // namespace gatehouse::filters::cache
