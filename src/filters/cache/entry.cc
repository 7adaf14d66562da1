#include "filters/cache/entry.h"

#include <algorithm>

#include "http/date.h"

namespace gatehouse::filters::cache {
namespace {

using http::field_is;
using http::iequals;

// Fields a cache neither stores nor forwards from a stored response (RFC 9111 3.1), plus the
// framing, which a hit gets from its body, and Age, which each hit computes (5.1).
bool not_stored(std::string_view name, bool hop_by_hop) {
  if (hop_by_hop) return true;
  switch (name.size()) {  // each name compared only with the one of its length
    case 3:
      return field_is(name, "age");
    case 14:
      return field_is(name, "content-length");
    case 17:
      return field_is(name, "transfer-encoding");
    default:
      return false;
  }
}
// The same for a field as parsed, which knows its framing fields already (Transfer-Encoding is
// hop-by-hop).
bool not_stored(const http::Header& h) {
  return h.hop_by_hop || h.id == http::HeaderId::kContentLength ||
         (h.name.size() == 3 && field_is(h.name, "age"));
}

// What the stored fields say, gathered as they are read (each name compared only with those of
// its length): a miss reads a response's fields once, to copy them and derive its entry.
class FieldFacts {
 public:
  explicit FieldFacts(const EntryRules& rules) : rules_(rules) {}

  void see(std::string_view name, std::string_view value) {
    if (!rules_.tag_header.empty() && iequals(name, rules_.tag_header)) tag_lines.push_back(value);
    switch (name.size()) {
      case 4:
        if (field_is(name, "etag")) {
          if (etag.empty()) etag = value;
        } else if (field_is(name, "date")) {
          if (date.empty()) date = value;
        } else if (field_is(name, "vary")) {
          vary.push_back(value);
        }
        break;
      case 7:
        if (field_is(name, "expires")) expires.push_back(value);
        break;
      case 10:
        if (field_is(name, "set-cookie")) set_cookie = true;
        break;
      case 13:
        if (field_is(name, "cache-control")) {
          cache_control.push_back(value);
        } else if (field_is(name, "last-modified")) {
          if (last_modified.empty()) last_modified = value;
        }
        break;
    }
  }

  std::vector<std::string_view> cache_control, vary, expires, tag_lines;
  std::string_view etag, date, last_modified;  // the first of each, as Entry::get() finds
  bool set_cookie = false;

 private:
  const EntryRules& rules_;
};

// The entry's Cache-Control, validators, Expires, Vary, tags and lifetime, from what its fields
// say.
void derive(Entry& e, const FieldFacts& f, const EntryRules& rules) {
  e.set_cookie = f.set_cookie;
  e.cc =
      f.cache_control.empty() ? http::CacheControl{} : http::parse_cache_control(f.cache_control);
  const std::string_view etag = http::trim_ows(f.etag);
  e.etag.assign(etag.data(), etag.size());
  e.vary = f.vary.empty() ? VarySpec{} : parse_vary(f.vary);
  if (!f.date.empty()) e.times.date = http::parse_http_date(f.date);
  e.times.expires.reset();
  e.times.expires_invalid = false;
  if (f.expires.size() == 1) e.times.expires = http::parse_http_date(http::trim_ows(f.expires[0]));
  // Two Expires lines, or one that is not a date ("0" included): already expired (RFC 9111 4.2.1,
  // 5.3).
  if (!f.expires.empty() && !e.times.expires) e.times.expires_invalid = true;
  e.times.last_modified.reset();
  if (!f.last_modified.empty())
    e.times.last_modified = http::parse_http_date(http::trim_ows(f.last_modified));

  e.tags.clear();
  for (std::string_view line : f.tag_lines) {
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

  const bool explicit_freshness = e.cc.s_maxage != http::CacheControl::kAbsent ||
                                  e.cc.max_age != http::CacheControl::kAbsent || e.times.expires ||
                                  e.times.expires_invalid;
  if (rules.default_ttl && (rules.ttl_overrides || !explicit_freshness))
    e.lifetime = rules.default_ttl->count();
  else
    e.lifetime = http::freshness_lifetime(e.cc, e.times, e.status, rules.heuristic_fraction);
}

// The same, from the entry's stored fields.
void derive(Entry& e, const EntryRules& rules) {
  FieldFacts facts(rules);
  for (auto [name, value] : e.headers) facts.see(name, value);
  derive(e, facts, rules);
}

// `age`: the response's Age field (the first), which is not stored (each hit computes its own).
void set_times(Entry& e, std::string_view age, Entry::Time request_time,
               Entry::Time response_time) {
  e.times.request_time = request_time;
  e.times.response_time = response_time;
  e.times.date.reset();
  e.times.age = http::parse_age(age);
}

}  // namespace

std::string_view Entry::get(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) return v;
  }
  return {};
}

std::shared_ptr<Entry> new_entry() { return std::allocate_shared<Entry>(pool::Allocator<Entry>()); }
std::shared_ptr<Entry> new_entry(const Entry& from) {
  return std::allocate_shared<Entry>(pool::Allocator<Entry>(), from);
}
namespace {
// The pool's allocator, asking for `extra` bytes more with each block: std::allocate_shared puts
// the shared count and the object at the block's start, so the extra bytes follow the object.
template <class T>
struct WithRoom {
  using value_type = T;
  explicit WithRoom(size_t extra) : extra(extra) {}
  template <class U>
  WithRoom(const WithRoom<U>& other) noexcept : extra(other.extra) {}  // NOLINT: rebinding
  T* allocate(size_t n) { return static_cast<T*>(pool::allocate(n * sizeof(T) + extra)); }
  void deallocate(T* p, size_t n) noexcept { pool::deallocate(p, n * sizeof(T) + extra); }
  template <class U>
  bool operator==(const WithRoom<U>& other) const noexcept {
    return extra == other.extra;
  }
  size_t extra;
};
static_assert(sizeof(WithRoom<Body>) == sizeof(size_t), "kBodyHeader counts the allocator");
}  // namespace

std::shared_ptr<Body> new_body(std::string_view bytes, size_t reserve) {
  const size_t room = std::max(reserve, bytes.size());
  auto body = std::allocate_shared<Body>(WithRoom<Body>(room), room);
  body->append(bytes);
  return body;
}

size_t Entry::cost() const {
  // The entry's block (with its shared count) and its body's, and what they point to.
  constexpr size_t kShared = 16;
  size_t n = pool::block_size(sizeof(Entry) + kShared) + pool::cost_of(etag) +
             (body ? pool::block_size(kBodyHeader + body->capacity()) : 0) + headers.cost();
  for (const auto& t : tags) n += sizeof(std::string) + t.size();
  for (const auto& v : vary.names) n += sizeof(std::string) + v.size();
  return n;
}

std::shared_ptr<Entry> make_entry(const http::ResponseHead& head, std::shared_ptr<const Body> body,
                                  Entry::Time request_time, Entry::Time response_time,
                                  const EntryRules& rules) {
  auto e = new_entry();
  e->status = head.status;
  // One reading of the fields: what they say, and Age (which is not stored: each hit computes
  // its own), as they are copied. Their records take at most the head's bytes and five more per
  // field ("a:b\r\n" is three bytes more than its name and value, a record eight); a head the
  // parser did not measure is measured first.
  size_t most = head.head_bytes + 5 * head.headers.size();
  if (!head.head_bytes) {
    most = 0;
    for (const auto& h : head.headers) most += Fields::record_size(h.name, h.value);
  }
  FieldFacts facts(rules);
  std::string_view age;
  Fields::Writer fields(most);
  for (const auto& h : head.headers) {
    if (h.name.size() == 3 && age.data() == nullptr && field_is(h.name, "age")) age = h.value;
    if (not_stored(h)) continue;
    facts.see(h.name, h.value);
    fields.put(h.name, h.value);
  }
  e->headers = fields.done();
  e->body = std::move(body);
  set_times(*e, age, request_time, response_time);
  derive(*e, facts, rules);
  return e;
}

std::shared_ptr<Entry> freshen(const Entry& stored, const http::ResponseHead& not_modified,
                               Entry::Time request_time, Entry::Time response_time,
                               const EntryRules& rules) {
  auto e = new_entry(stored);
  // A stored variant a filter after the cache transformed (compressed) carries the weak form of
  // the origin's tag; the origin's 304 says the strong one, which names the untransformed
  // representation: the stored weak tag stays (RFC 9110 8.8.1, 8.8.3).
  auto weakened_tag = [&](std::string_view value) {
    std::string_view tag = http::trim_ows(value);
    return stored.etag.size() == tag.size() + 2 && stored.etag.starts_with("W/") &&
           std::string_view(stored.etag).substr(2) == tag;
  };
  std::vector<std::string_view> replaced;  // names the 304 carries (each replaced once)
  for (const auto& h : not_modified.headers) {
    if (not_stored(h.name, h.hop_by_hop)) continue;
    if (iequals(h.name, "etag") && weakened_tag(h.value)) continue;
    bool seen = std::any_of(replaced.begin(), replaced.end(),
                            [&](std::string_view n) { return iequals(n, h.name); });
    if (!seen) {
      replaced.push_back(h.name);
      e->headers.erase_if([&](const auto& f) { return iequals(f.first, h.name); });
    }
    e->headers.emplace_back(h.name, h.value);
  }
  // A 304 without Date stands for one with the time it arrived (RFC 9110 6.6.1): the stored Date
  // would otherwise make the freshened entry look as old as the first response.
  if (not_modified.get("date").empty()) {
    e->headers.erase_if([](const auto& f) { return iequals(f.first, "date"); });
    e->headers.emplace_back("Date", http::format_http_date(response_time));
  }
  set_times(*e, not_modified.get("age"), request_time, response_time);
  derive(*e, rules);
  return e;
}

void amend(Entry& e, std::span<const std::string> removed,
           std::span<const std::pair<std::string, std::string>> added, const EntryRules& rules) {
  if (removed.empty() && added.empty()) return;
  e.headers.erase_if([&](const auto& h) {
    return std::any_of(removed.begin(), removed.end(),
                       [&](const std::string& name) { return iequals(h.first, name); });
  });
  for (const auto& [n, v] : added) {
    if (!not_stored(n, false)) e.headers.emplace_back(n, v);
  }
  derive(e, rules);
}

namespace {

// Fixed-width little-endian integers (the shared tier may be read by another machine).
template <class T>
void put(std::string& out, T v) {
  auto u = static_cast<std::make_unsigned_t<T>>(v);
  for (size_t i = 0; i < sizeof(T); ++i) out += static_cast<char>(u >> (8 * i) & 0xff);
}
template <class T>
bool take(std::string_view& in, T* v) {
  if (in.size() < sizeof(T)) return false;
  std::make_unsigned_t<T> u = 0;
  for (size_t i = 0; i < sizeof(T); ++i)
    u |= static_cast<std::make_unsigned_t<T>>(static_cast<unsigned char>(in[i])) << (8 * i);
  in.remove_prefix(sizeof(T));
  *v = static_cast<T>(u);
  return true;
}
bool take_bytes(std::string_view& in, std::string_view* out) {
  uint32_t n;
  if (!take(in, &n) || in.size() < n) return false;
  *out = in.substr(0, n);
  in.remove_prefix(n);
  return true;
}
void put_bytes(std::string& out, std::string_view s) {
  put(out, static_cast<uint32_t>(s.size()));
  out += s;
}
int64_t ms(Entry::Time t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

constexpr std::string_view kMagic = "GHE1";

}  // namespace

std::string encode_entry(const Entry& e) {
  std::string out(kMagic);
  put(out, static_cast<int32_t>(e.status));
  put(out, ms(e.times.request_time));
  put(out, ms(e.times.response_time));
  put(out, e.times.age);
  put(out, static_cast<uint32_t>(e.headers.size()));
  for (const auto& [n, v] : e.headers) {
    put_bytes(out, n);
    put_bytes(out, v);
  }
  put<uint8_t>(out, e.body ? 1 : 0);
  if (e.body) {
    put(out, static_cast<uint64_t>(e.body->size()));
    out.append(e.body->data(), e.body->size());
  }
  return out;
}

std::shared_ptr<Entry> decode_entry(std::string_view in, const EntryRules& rules) {
  if (!in.starts_with(kMagic)) return nullptr;
  in.remove_prefix(kMagic.size());
  auto e = new_entry();
  int32_t status;
  int64_t request_ms, response_ms, age;
  uint32_t fields;
  if (!take(in, &status) || !take(in, &request_ms) || !take(in, &response_ms) || !take(in, &age) ||
      !take(in, &fields) || status < 0 || status > 999 || age < 0)
    return nullptr;
  if (fields > in.size() / 8) return nullptr;  // each field takes at least its two lengths
  e->status = status;
  std::vector<std::string_view> parts(2 * size_t{fields});
  size_t bytes = 0;
  for (auto& part : parts) {
    if (!take_bytes(in, &part)) return nullptr;
    bytes += part.size();
  }
  e->headers.reserve(fields, bytes);
  for (size_t i = 0; i < parts.size(); i += 2) e->headers.emplace_back(parts[i], parts[i + 1]);
  uint8_t has_body;
  if (!take(in, &has_body) || has_body > 1) return nullptr;
  if (has_body) {
    uint64_t size;
    if (!take(in, &size) || size != in.size()) return nullptr;
    e->body = new_body(in);
  } else if (!in.empty()) {
    return nullptr;
  }
  e->times.request_time = Entry::Time(std::chrono::milliseconds(request_ms));
  e->times.response_time = Entry::Time(std::chrono::milliseconds(response_ms));
  e->times.age = age;
  derive(*e, rules);
  return e;
}

}  // namespace gatehouse::filters::cache
