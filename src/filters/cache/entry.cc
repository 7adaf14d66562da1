#include "filters/cache/entry.h"

#include <algorithm>

#include "http/date.h"

namespace gatehouse::filters::cache {
namespace {

using http::iequals;

// Fields a cache neither stores nor forwards from a stored response (RFC 9111 3.1), plus the
// framing, which a hit gets from its body, and Age, which each hit computes (5.1).
bool not_stored(std::string_view name, bool hop_by_hop) {
  return hop_by_hop || iequals(name, "content-length") || iequals(name, "transfer-encoding") ||
         iequals(name, "age");
}

std::vector<std::string_view> lines_of(const http::HeaderList& fields, std::string_view name) {
  std::vector<std::string_view> out;
  for (const auto& [n, v] : fields) {
    if (iequals(n, name)) out.push_back(v);
  }
  return out;
}

// What the stored fields say: Cache-Control, validators, Expires, Vary, tags, and the lifetime.
void derive(Entry& e, const EntryRules& rules) {
  e.cc = http::parse_cache_control(lines_of(e.headers, "cache-control"));
  e.etag = std::string(http::trim_ows(e.get("etag")));
  e.vary = parse_vary(lines_of(e.headers, "vary"));
  if (auto d = e.get("date"); !d.empty()) e.times.date = http::parse_http_date(d);
  auto expires = lines_of(e.headers, "expires");
  e.times.expires.reset();
  e.times.expires_invalid = false;
  if (expires.size() == 1) e.times.expires = http::parse_http_date(http::trim_ows(expires[0]));
  // Two Expires lines, or one that is not a date ("0" included): already expired (RFC 9111 4.2.1,
  // 5.3).
  if (!expires.empty() && !e.times.expires) e.times.expires_invalid = true;
  e.times.last_modified.reset();
  if (auto lm = e.get("last-modified"); !lm.empty())
    e.times.last_modified = http::parse_http_date(http::trim_ows(lm));

  e.tags.clear();
  if (!rules.tag_header.empty()) {
    for (std::string_view line : lines_of(e.headers, rules.tag_header)) {
      // Surrogate-Key separates tags with spaces, Cache-Tag with commas: either works.
      size_t i = 0;
      while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == ',' || line[i] == '\t')) ++i;
        size_t j = i;
        while (j < line.size() && line[j] != ' ' && line[j] != ',' && line[j] != '\t') ++j;
        if (j > i) e.tags.emplace_back(line.substr(i, j - i));
        i = j;
      }
    }
  }

  const bool explicit_freshness = e.cc.s_maxage != http::CacheControl::kAbsent ||
                                  e.cc.max_age != http::CacheControl::kAbsent || e.times.expires ||
                                  e.times.expires_invalid;
  if (rules.default_ttl && (rules.ttl_overrides || !explicit_freshness))
    e.lifetime = rules.default_ttl->count();
  else
    e.lifetime = http::freshness_lifetime(e.cc, e.times, e.status, rules.heuristic_fraction);
}

void set_times(Entry& e, const http::ResponseHead& head, Entry::Time request_time,
               Entry::Time response_time) {
  e.times.request_time = request_time;
  e.times.response_time = response_time;
  e.times.date.reset();
  e.times.age = http::parse_age(head.get("age"));
}

}  // namespace

std::string_view Entry::get(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) return v;
  }
  return {};
}

size_t Entry::cost() const {
  size_t n = sizeof(Entry) + etag.size() + (body ? body->size() + sizeof(std::string) : 0);
  for (const auto& [k, v] : headers) n += sizeof(std::string) * 2 + k.size() + v.size();
  for (const auto& t : tags) n += sizeof(std::string) + t.size();
  for (const auto& v : vary.names) n += sizeof(std::string) + v.size();
  return n;
}

std::shared_ptr<Entry> make_entry(const http::ResponseHead& head,
                                  std::shared_ptr<const std::string> body, Entry::Time request_time,
                                  Entry::Time response_time, const EntryRules& rules) {
  auto e = std::make_shared<Entry>();
  e->status = head.status;
  for (const auto& h : head.headers) {
    if (!not_stored(h.name, h.hop_by_hop)) e->headers.emplace_back(h.name, h.value);
  }
  e->body = std::move(body);
  set_times(*e, head, request_time, response_time);
  derive(*e, rules);
  return e;
}

std::shared_ptr<Entry> freshen(const Entry& stored, const http::ResponseHead& not_modified,
                               Entry::Time request_time, Entry::Time response_time,
                               const EntryRules& rules) {
  auto e = std::make_shared<Entry>(stored);
  std::vector<std::string_view> replaced;  // names the 304 carries (each replaced once)
  for (const auto& h : not_modified.headers) {
    if (not_stored(h.name, h.hop_by_hop)) continue;
    bool seen = std::any_of(replaced.begin(), replaced.end(),
                            [&](std::string_view n) { return iequals(n, h.name); });
    if (!seen) {
      replaced.push_back(h.name);
      std::erase_if(e->headers, [&](const auto& f) { return iequals(f.first, h.name); });
    }
    e->headers.emplace_back(h.name, h.value);
  }
  // A 304 without Date stands for one with the time it arrived (RFC 9110 6.6.1): the stored Date
  // would otherwise make the freshened entry look as old as the first response.
  if (not_modified.get("date").empty()) {
    std::erase_if(e->headers, [](const auto& f) { return iequals(f.first, "date"); });
    e->headers.emplace_back("Date", http::format_http_date(response_time));
  }
  set_times(*e, not_modified, request_time, response_time);
  derive(*e, rules);
  return e;
}

}  // namespace gatehouse::filters::cache
