#include "filters/cache/cache.h"

#include <time.h>

#include <algorithm>
#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/parse.hpp>
#include <random>
#include <variant>

#include "config/shared_by_key.h"
#include "filters/cache/prefetch.h"
#include "filters/cache/scratch.h"
#include "filters/registry.h"
#include "http/conditional.h"
#include "http/error_response.h"
#include "http/parser.h"
#include "http/range.h"
#include "observe/metrics.h"

namespace gatehouse::filters {
namespace cache {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

namespace {

using Clock = std::chrono::system_clock;
constexpr int64_t kAbsent = http::CacheControl::kAbsent;

// The wall clock to its tick (a few milliseconds): ages and lifetimes are whole seconds (RFC 9111
// 4.2.3), and the coarse clock reads no time counter, which costs a miss three reads of a
// hundred cycles and more under a hypervisor.
Clock::time_point wall_clock() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(
      std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

// Metrics: what the cache did with each request of a route.
constexpr std::array<std::string_view, 6> kResults = {"hit",         "miss",   "stale",
                                                      "revalidated", "bypass", "collapsed"};
enum Result : size_t { kHit, kMiss, kStale, kRevalidated, kBypass, kCollapsed };
const observe::Family kLookups{"gatehouse_cache_requests_total",
                               "Requests through a route's cache, by what the cache did.",
                               observe::Family::Kind::kCounter, "result", kResults};
const observe::Family kStored{"gatehouse_cache_stores_total",
                              "Responses a route's cache stored (new or freshened).",
                              observe::Family::Kind::kCounter,
                              {},
                              {}};

config::SharedByKey<MemoryStore>& stores() {
  static config::SharedByKey<MemoryStore> all;
  return all;
}

Flights& flights() {
  static Flights all;
  return all;
}

// What the store holds for an entry beyond Entry::cost() and its key's bytes: the queue node
// (the key's string, the entry's pointer, its counters), its index slots (a flat table at most
// half full, so two to four slots and their tags), at the pool's class sizes, measured with
// bench/cache-entry-memory.mjs (docs/caching.md); and its ghost once the store evicts, which that
// measure does not reach: two to four of the ghost table's 4-byte ways.
constexpr size_t kKeyBookkeeping = 164;

std::vector<std::string_view> lines_of(const http::MessageHead& head, std::string_view name) {
  std::vector<std::string_view> out;
  for (const auto& h : head.headers) {
    if (http::iequals(h.name, name)) out.push_back(h.value);
  }
  return out;
}

// RFC 9111 4.2.4: no directive of the stored response forbids serving it stale.
bool may_serve_stale(const Entry& e) {
  return !e.cc.must_revalidate && !e.cc.proxy_revalidate && e.cc.s_maxage == kAbsent &&
         !e.cc.no_cache;
}

bool safe_method(std::string_view m) {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE";
}

}  // namespace

// What the cache knows of one request, from its request phase to the end of its response.
struct Pending {
  // kAnswered: the cache answered by itself (its response phase has nothing to add).
  enum class Mode { kMiss, kRevalidate, kBypass, kInvalidate, kAnswered };
  Mode mode = Mode::kMiss;
  pool::String key;        // the primary key: URL and extras (pool bytes, as a miss's others)
  size_t key_hash = 0;     // the memory store's hash of it
  MemoryStore::Ptr stale;  // the stored entry a revalidation may freshen or serve on error
  CacheStatus status;      // what Cache-Status will say
  http::CacheControl request_cc;
  bool authorization = false;
  bool head = false;
  bool range = false;  // it asks for a byte range (RFC 9110 14.2)
  Clock::time_point request_time;
  // The request's fields, copied when the response may be stored (the Vary values) or
  // answered by the cache after all (the client's own conditions).
  Fields request_fields;
  // The response being stored, until its body ends. A body of known length fills `body`, which
  // the entry (and a published flight's waiters) already share; one of unknown length grows in
  // `growing`, and becomes the entry's body when it ends.
  std::shared_ptr<Entry> storing;
  // The variant's key when the response varies (4.1); empty: the primary key is the variant's.
  std::string variant;
  std::shared_ptr<Body> body;
  pool::String growing;
  bool published = false;  // the flight's waiters follow the body as it fills
  // Where the response's changes by the filters after the cache begin in the context's lists
  // (what they add and remove is part of the representation the cache stores).
  size_t added_from = 0, removed_from = 0;
  // Coalescing: the flight this request leads (null: none).
  std::shared_ptr<Flight> flight;
  bool waited = false;  // it waited for another request's flight
  // The shared tier: asked once, on a memory miss; `from_shared`: what it had was found.
  bool shared_checked = false;
  bool from_shared = false;
  enum class Await { kShared, kFlight } await = Await::kShared;  // what a pause waits for
  bool background = false;  // a stale-while-revalidate refresh, after the client was answered

  // The leader's response is stored, or will not be: the requests waiting for it go on (with
  // `received`, the published body's last bytes).
  void land(uint64_t received = 0) {
    if (!flight) return;
    flights().land(*flight, received);
    flight.reset();
  }
  ~Pending() { land(); }
  // The key of the variant whose Vary values (vary_key()) are `values`.
  std::string variant_of(std::string_view values) const {
    std::string v;
    v.reserve(key.size() + 1 + values.size());
    v.append(key.data(), key.size()).append(1, kVariant).append(values);
    return v;
  }
  std::string_view variant_key() const { return variant.empty() ? std::string_view(key) : variant; }
  // The variant key's hash, for the store and the flights: the primary key's when they are one.
  size_t variant_hash() const { return variant.empty() ? key_hash : MemoryStore::hash(variant); }
};
// The request's own conditions (RFC 9110 13.1.2, 13.1.3), from its fields.
// With the byte range it asks for (RFC 9110 14.2: for GET only), and If-Range (13.1.5).
struct Conditions {
  std::vector<std::string_view> if_none_match;
  std::string_view if_modified_since;
  std::string_view range;  // empty: none, or not one Range field
  std::string_view if_range;
};

namespace {
inline const SlotKey<std::shared_ptr<Pending>> kPending{"cache.pending"};

Pending* pending(RequestContext& ctx) {
  auto* p = ctx.slots.get(kPending);
  return p ? p->get() : nullptr;
}

// RFC 9111 3.5: a response is used for a request with Authorization only when it says so.
bool shareable(const Pending& p, const Entry& e) {
  return !p.authorization || e.cc.public_ || e.cc.s_maxage != kAbsent || e.cc.must_revalidate;
}

// RFC 9111 4.2: `e` (`age` seconds old, `left` seconds of freshness left) answers the request
// without validation: fresh, as the request's directives allow, or stale within its max-stale
// when no directive forbids serving it stale (4.2.4; s-maxage implies proxy-revalidate for a
// shared cache, 5.2.2.10).
bool usable(const http::CacheControl& rcc, const Entry& e, int64_t age, int64_t left) {
  const auto& scc = e.cc;
  bool fresh = !scc.no_cache && !rcc.no_cache && left > 0;
  if (fresh && rcc.max_age != kAbsent && age > rcc.max_age) fresh = false;
  if (fresh && rcc.min_fresh != kAbsent && left < rcc.min_fresh) fresh = false;
  if (fresh) return true;
  return left <= 0 && may_serve_stale(e) && !rcc.no_cache && rcc.max_stale != kAbsent &&
         -left <= rcc.max_stale && (rcc.max_age == kAbsent || age <= rcc.max_age);
}

// A waiter's answer: the body of the response its flight's leader is receiving, as it arrives.
class FlightBody final : public ReplyBody, public std::enable_shared_from_this<FlightBody> {
 public:
  FlightBody(std::shared_ptr<Flight> flight, std::shared_ptr<const Entry> entry, uint64_t length)
      : flight_(std::move(flight)), entry_(std::move(entry)), length_(length) {}
  uint64_t length() const override { return length_; }
  void read(uint64_t offset, boost::asio::io_context& io,
            std::function<void(std::string_view)> ready) override {
    const Flight::State st = flight_->state();
    if (st.received > offset) {
      // The leader only appends, within the body's reserved length: these bytes never move.
      std::string_view bytes(entry_->body->data() + offset, st.received - offset);
      boost::asio::post(io, [ready = std::move(ready), bytes] { ready(bytes); });
    } else if (st.landed) {  // cut short: the leader's response broke off
      boost::asio::post(io, [ready = std::move(ready)] { ready({}); });
    } else {
      flight_->wait(st.version, io,
                    [self = shared_from_this(), offset, &io, ready = std::move(ready)]() mutable {
                      self->read(offset, io, std::move(ready));
                    });
    }
  }

 private:
  std::shared_ptr<Flight> flight_;
  std::shared_ptr<const Entry> entry_;
  uint64_t length_;
};

template <class Fields, class NameOf, class ValueOf>
Conditions conditions_of(const Fields& fields, NameOf name_of, ValueOf value_of, bool get) {
  Conditions c;
  int ranges = 0;
  for (const auto& f : fields) {
    auto name = name_of(f);
    if (http::field_is(name, "if-none-match")) c.if_none_match.push_back(value_of(f));
    if (http::field_is(name, "if-modified-since")) c.if_modified_since = value_of(f);
    if (http::field_is(name, "if-range")) c.if_range = value_of(f);
    if (http::field_is(name, "range") && ranges++ == 0) c.range = value_of(f);
  }
  if (!get || ranges > 1) c.range = {};
  return c;
}
Conditions conditions_of(const http::RequestHead& req) {
  return conditions_of(
      req.headers, [](const http::Header& h) { return h.name; },
      [](const http::Header& h) { return h.value; }, req.method == "GET");
}
Conditions conditions_of(const Pending& p) {
  return conditions_of(
      p.request_fields, [](const auto& f) -> std::string_view { return f.first; },
      [](const auto& f) -> std::string_view { return f.second; }, !p.head);
}

// A multipart boundary (RFC 2046 5.1.1) that does not occur in `body`.
std::string boundary_for(std::string_view body) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  while (true) {
    std::string b = "gatehouse-";
    for (uint64_t bits = rng(), i = 0; i < 16; ++i, bits >>= 4) b += kHex[bits & 15];
    if (body.find(b) == std::string_view::npos) return b;
  }
}

// The answer to a Range request from a stored 200 (RFC 9110 14.2-14.6): a 206 with one range
// (a slice of the shared body, never copied) or several (multipart/byteranges), or a 416; a
// Range the server may ignore leaves the whole response.
void answer_range(std::string_view range, const Entry& e, http::ErrorResponse* reply) {
  const std::string_view body(*e.body);
  std::vector<http::ByteRange> ranges;
  switch (http::parse_range(range, body.size(), &ranges)) {
    case http::RangeVerdict::kIgnore:
      return;
    case http::RangeVerdict::kUnsatisfiable:
      reply->status = 416;
      reply->code = "range_not_satisfiable";
      reply->message =
          "no range of the " + std::to_string(body.size()) + "-byte response asked for";
      reply->shared_body.reset();
      reply->headers.clear();
      reply->headers.emplace_back("Content-Range", http::unsatisfied_range(body.size()));
      return;
    case http::RangeVerdict::kSatisfiable:
      break;
  }
  reply->status = 206;
  if (ranges.size() == 1) {
    reply->shared_bytes = body.substr(ranges[0].first, ranges[0].size());
    reply->headers.emplace_back("Content-Range", http::content_range(ranges[0], body.size()));
    return;
  }
  std::string boundary = boundary_for(body);
  reply->body = http::byteranges_body(body, ranges, e.get("content-type"), boundary);
  reply->shared_body.reset();
  std::erase_if(reply->headers,
                [](const auto& h) { return http::iequals(h.first, "content-type"); });
  reply->headers.emplace_back("Content-Type", "multipart/byteranges; boundary=" + boundary);
}
}  // namespace

Cache::Cache(Settings s, std::shared_ptr<MemoryStore> store)
    : s_(std::move(s)), store_(std::move(store)) {}

bool Cache::keep(std::string_view key, MemoryStore::Ptr entry, std::optional<size_t> hash) const {
  const size_t cost = entry->cost() + pool::block_size(key.size() + 1) + kKeyBookkeeping;
  const size_t h = hash ? *hash : MemoryStore::hash(key);
  return store_->insert(key, h, std::move(entry), cost);
}

pool::String Cache::primary_key(const RequestContext& ctx) const {
  const auto& req = *ctx.request;
  // The URL, written on the stack (room for a usual one), then copied once into exact room.
  const std::string_view scheme = ctx.secure ? "https://" : "http://";
  Scratch<2048> url(scheme.size() + req.host.size() + req.path.size() + 1 + req.query.size());
  url.put(scheme);
  http::lower_ascii(url.put(req.host), req.host.size());
  url.put(req.path);
  if (!req.query.empty()) {
    url.put('?');
    url.put(req.query);
  }
  pool::String key(url.view().data(), url.view().size());
  for (const auto& name : s_.key_headers) {
    key.append(1, kExtra).append(name).append("=");
    bool first = true;
    for (auto v : lines_of(req, name)) {
      if (!first) key += ',';
      key += v;
      first = false;
    }
  }
  if (s_.key_consumer) {
    key.append(1, kExtra).append("consumer=");
    if (ctx.consumer) key += ctx.consumer->name;
  }
  return key;
}

FilterStatus Cache::on_request(RequestContext& ctx) const {
  // What the other instances purge and invalidate leaves this one's memory too (read by one
  // worker, from the first request that may use the tier).
  if (s_.shared && ctx.worker && ctx.io)
    s_.shared->follow_purges(*ctx.worker, *ctx.io, [](const Purge& p) { purge(p); });
  const auto& req = *ctx.request;
  auto owner = std::allocate_shared<Pending>(pool::Allocator<Pending>());
  Pending& p = *owner;
  ctx.slots.set(kPending, std::move(owner));
  p.key = primary_key(ctx);
  p.key_hash = MemoryStore::hash(p.key);
  if (req.method != "GET" && req.method != "HEAD") {
    // RFC 9111 4.4: an unsafe request's success invalidates what it names.
    p.mode = safe_method(req.method) ? Pending::Mode::kBypass : Pending::Mode::kInvalidate;
    p.status.fwd = "bypass";
    count(ctx, kBypass);
    return FilterStatus::kContinue;
  }
  p.head = req.method == "HEAD";
  // What the cache asks of the request, in one pass (each name compared only with those of its
  // length); of Authorization and Range, the first line counts, as MessageHead::get() finds it.
  std::vector<std::string_view> cache_control;
  bool authorization_seen = false, range_seen = false;
  for (const auto& h : req.headers) {
    switch (h.name.size()) {
      case 5:
        if (!range_seen && http::field_is(h.name, "range")) {
          range_seen = true;
          p.range = !h.value.empty();
        }
        break;
      case 13:
        if (http::field_is(h.name, "cache-control")) {
          cache_control.push_back(h.value);
        } else if (!authorization_seen && http::field_is(h.name, "authorization")) {
          authorization_seen = true;
          p.authorization = !h.value.empty();
        }
        break;
    }
  }
  if (!cache_control.empty()) p.request_cc = http::parse_cache_control(cache_control);
  p.request_time = wall_clock();
  auto status = lookup(ctx, p);
  if (status == FilterStatus::kContinue) keep_request_fields(ctx, p);
  return status;
}

// Going on: the Vary values, and the conditions the cache may answer after all, outlive the
// request head.
void Cache::keep_request_fields(const RequestContext& ctx, Pending& p) const {
  p.added_from = ctx.response_add.size();
  p.removed_from = ctx.response_remove.size();
  p.request_fields = Fields::copy_of(ctx.request->headers);
}

FilterStatus Cache::lookup(RequestContext& ctx, Pending& p) const {
  const auto now = wall_clock();
  auto entry = store_->find(p.key, p.key_hash);
  p.variant.clear();
  if (entry && entry->status == 0) {  // a Vary marker: the variants are stored under their keys
    p.variant = p.variant_of(vary_key(entry->vary, *ctx.request));
    entry = store_->find(p.variant);
    p.status.fwd = "vary-miss";
  } else {
    p.status.fwd = "uri-miss";
  }
  if (entry && !shareable(p, *entry)) entry = nullptr;
  if (!entry && s_.shared && !p.shared_checked && ctx.io) {
    p.await = Pending::Await::kShared;  // resume() asks Redis
    return FilterStatus::kPause;
  }
  if (!entry) {
    // What storing the answer will read (the key's slot, its ghost bucket) is asked for at once,
    // and again when the answer comes: a first ask pays for the address translation, on a large
    // store a wait of its own, while the request is still being read and forwarded.
    store_->prefetch_insert(p.key_hash);
    if (p.request_cc.only_if_cached) {  // 5.2.1.7
      ctx.reply.status = 504;
      ctx.reply.code = "not_cached";
      ctx.reply.message = "only-if-cached: no stored response for this request";
      ctx.reply.headers.emplace_back("Cache-Status", format_cache_status("gatehouse", p.status));
      p.mode = Pending::Mode::kAnswered;
      count(ctx, kMiss);
      return FilterStatus::kRespond;
    }
    return go_forward(ctx, p);
  }

  // RFC 9111 4.2: fresh when its lifetime exceeds its age, as the request's directives allow.
  const int64_t age = http::current_age(entry->times, now);
  const int64_t left = entry->lifetime - age;
  const auto& rcc = p.request_cc;
  const auto& scc = entry->cc;
  const bool answers = usable(rcc, *entry, age, left);
  p.status.ttl = left;
  // RFC 5861 3: within stale-while-revalidate, the stale response is served at once and one
  // refresh goes upstream in the background (the one that leads the key's flight).
  if (!answers && left <= 0 && may_serve_stale(*entry) && !rcc.no_cache && rcc.max_age == kAbsent &&
      rcc.min_fresh == kAbsent && scc.stale_while_revalidate != kAbsent &&
      -left <= scc.stale_while_revalidate && !p.head && ctx.io) {
    if (auto flight = flights().lead(p.variant_key(), p.variant_hash()))
      start_refresh(ctx, p, entry, std::move(flight));
    CacheStatus st;
    st.hit = true;
    st.ttl = left;
    st.detail = "stale-while-revalidate";
    count(ctx, kStale);
    return answer(ctx, conditions_of(*ctx.request), entry, st);
  }
  if (answers) {
    CacheStatus st;
    st.hit = true;
    st.ttl = left;
    st.collapsed = p.waited;
    if (p.from_shared) st.detail = "redis";
    count(ctx, p.waited ? kCollapsed : left > 0 ? kHit : kStale);
    return answer(ctx, conditions_of(*ctx.request), entry, st);
  }
  if (rcc.only_if_cached) {
    ctx.reply.status = 504;
    ctx.reply.code = "not_cached";
    ctx.reply.message = "only-if-cached: the stored response would need validation";
    p.status.fwd = "stale";
    ctx.reply.headers.emplace_back("Cache-Status", format_cache_status("gatehouse", p.status));
    p.mode = Pending::Mode::kAnswered;
    count(ctx, kMiss);
    return FilterStatus::kRespond;
  }

  // Stale (or not to be used unvalidated): the request goes on, conditional on the stored
  // validators (4.3.1), so that a 304 freshens the entry. The client's own conditions are the
  // cache's to answer: they are not sent on.
  p.stale = entry;
  p.mode = Pending::Mode::kRevalidate;
  p.status.fwd =
      rcc.no_cache || rcc.max_age != kAbsent || rcc.min_fresh != kAbsent ? "request" : "stale";
  add_validators(ctx, *entry);
  return go_forward(ctx, p);
}

// The request made conditional on the stored validators (RFC 9111 4.3.1), instead of the
// client's own conditions, which are the cache's to answer.
void Cache::add_validators(RequestContext& ctx, const Entry& entry) const {
  for (const char* name :
       {"if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range"})
    ctx.upstream_remove.emplace_back(name);
  if (!entry.etag.empty()) ctx.upstream_add.emplace_back("If-None-Match", std::string(entry.etag));
  if (auto lm = entry.get("last-modified"); !lm.empty())
    ctx.upstream_add.emplace_back("If-Modified-Since", std::string(lm));
}

// The stale `entry` is served; a conditional request refreshes it in the background, and lands
// the key's flight (which the caller leads) when its response is stored or is not.
void Cache::start_refresh(RequestContext& ctx, const Pending& p, const MemoryStore::Ptr& entry,
                          std::shared_ptr<Flight> flight) const {
  auto bg = std::allocate_shared<Pending>(pool::Allocator<Pending>());
  bg->mode = Pending::Mode::kRevalidate;
  bg->background = true;
  bg->key = p.key;
  bg->key_hash = p.key_hash;
  bg->variant = p.variant;
  bg->flight = std::move(flight);
  bg->stale = entry;
  bg->request_cc = p.request_cc;
  bg->authorization = p.authorization;
  bg->request_time = wall_clock();
  keep_request_fields(ctx, *bg);
  bg->added_from = bg->removed_from = 0;  // the refresh's own context starts with none
  ctx.background_slots.set(kPending, std::move(bg));
  add_validators(ctx, *entry);
  ctx.refresh_in_background();
}

// The request goes upstream: the first for its key leads the flight; the others wait for it
// (resume()), at most coalesce_timeout, then look the key up again.
FilterStatus Cache::go_forward(RequestContext& ctx, Pending& p) const {
  // A request for a byte range gets a 206, never stored: it neither leads nor waits.
  if (s_.coalesce && !p.waited && !p.head && !p.request_cc.no_store && ctx.io && !p.range) {
    p.flight = flights().lead(p.variant_key(), p.variant_hash());
    if (!p.flight) {
      p.await = Pending::Await::kFlight;
      return FilterStatus::kPause;
    }
  }
  // A revalidation is counted by its outcome, in the response phase.
  if (p.mode != Pending::Mode::kRevalidate) count(ctx, kMiss);
  return FilterStatus::kContinue;
}

void Cache::resume(RequestContext& ctx, std::function<void(FilterStatus)> done) const {
  if (pending(ctx)->await == Pending::Await::kShared)
    fetch_shared(ctx, std::move(done));
  else
    wait_for_flight(ctx, std::move(done));
}

// After a pause: a lookup's result, which may be another pause (a flight to wait for).
void Cache::go_on(RequestContext& ctx, FilterStatus status,
                  std::function<void(FilterStatus)> done) const {
  Pending& p = *pending(ctx);
  if (status == FilterStatus::kPause) return resume(ctx, std::move(done));
  if (status == FilterStatus::kContinue) keep_request_fields(ctx, p);
  done(status);
}

// A memory miss asks the shared tier: the entry (after the Vary marker, when there is one) is
// copied into memory, and the lookup runs again.
void Cache::fetch_shared(RequestContext& ctx, std::function<void(FilterStatus)> done) const {
  Pending& p = *pending(ctx);
  p.shared_checked = true;
  s_.shared->fetch(ctx, p.variant_key(), [this, &ctx, done = std::move(done)](auto bytes) mutable {
    Pending& p = *pending(ctx);
    std::shared_ptr<Entry> e = bytes ? decode_entry(*bytes, s_.rules) : nullptr;
    if (e && e->status == 0 && p.variant.empty()) {
      // A marker: the variant this request selects is stored under its own key.
      keep(p.key, e, p.key_hash);
      p.variant = p.variant_of(vary_key(e->vary, *ctx.request));
      p.shared_checked = false;
      return fetch_shared(ctx, std::move(done));
    }
    if (e && e->status != 0) {
      keep(p.variant_key(), e, p.variant_hash());
      p.from_shared = true;
    }
    go_on(ctx, lookup(ctx, p), std::move(done));
  });
}

// A miss that waits on another request's flight: until the leader publishes a response this
// request may be answered with (then it streams it), or the flight lands (then it looks the key
// up again), or coalesce_timeout passes (then it goes upstream itself).
struct FlightWait {
  explicit FlightWait(boost::asio::io_context& io) : timer(io) {}
  boost::asio::steady_timer timer;
  std::function<void(FilterStatus)> done;
  std::shared_ptr<Flight> flight;
  bool over = false;
};

// The wait is over (once, on this worker): the request goes on with `status`.
void Cache::settle(RequestContext& ctx, FlightWait& wait, FilterStatus status) const {
  wait.over = true;
  wait.timer.cancel();
  go_on(ctx, status, std::move(wait.done));
}

void Cache::wait_for_flight(RequestContext& ctx, std::function<void(FilterStatus)> done) const {
  Pending& p = *pending(ctx);
  auto wait = std::make_shared<FlightWait>(*ctx.io);
  wait->done = std::move(done);
  wait->flight = flights().join(p.variant_key());
  if (!wait->flight) {  // landed in the meantime
    p.waited = true;
    return go_on(ctx, lookup(ctx, p), std::move(wait->done));
  }
  wait->timer.expires_after(s_.coalesce_timeout);
  wait->timer.async_wait([this, &ctx, wait](boost::system::error_code ec) {
    if (ec || wait->over) return;
    Pending& p = *pending(ctx);
    p.waited = true;
    p.status.detail = "coalesce-timeout";
    if (p.mode != Pending::Mode::kRevalidate) count(ctx, kMiss);
    settle(ctx, *wait, FilterStatus::kContinue);
  });
  watch_flight(ctx, wait);
}

void Cache::watch_flight(RequestContext& ctx, const std::shared_ptr<FlightWait>& wait) const {
  if (wait->over) return;
  Pending& p = *pending(ctx);
  const Flight::State st = wait->flight->state();
  if (st.landed) {
    p.waited = true;
    return settle(ctx, *wait, lookup(ctx, p));
  }
  if (st.entry && follow(ctx, p, wait->flight)) return settle(ctx, *wait, FilterStatus::kRespond);
  // Nothing yet, or a response this request may not take as it is: it waits for the landing.
  wait->flight->wait(st.version, *ctx.io, [this, &ctx, wait] { watch_flight(ctx, wait); });
}

// A waiter answered with the response its flight's leader publishes, streamed as it arrives,
// when a lookup would answer the request with it once stored: the same variant (RFC 9111 4.1),
// shareable with the request (3.5), and fresh enough for it (4.2).
bool Cache::follow(RequestContext& ctx, Pending& p, const std::shared_ptr<Flight>& flight) const {
  const Flight::State st = flight->state();
  const Entry& e = *st.entry;
  const std::string_view flight_key =
      st.variant_key ? std::string_view(*st.variant_key) : std::string_view(flight->key);
  const bool same_variant = e.vary.names.empty()
                                ? flight_key == std::string_view(p.key)
                                : flight_key == p.variant_of(vary_key(e.vary, *ctx.request));
  if (!same_variant || !shareable(p, e)) return false;
  const int64_t age = http::current_age(e.times, wall_clock());
  const int64_t left = e.lifetime - age;
  if (!usable(p.request_cc, e, age, left)) return false;
  CacheStatus status;
  status.hit = true;
  status.ttl = left;
  status.collapsed = true;
  count(ctx, kCollapsed);
  answer(ctx, conditions_of(*ctx.request), st.entry, status);
  if (ctx.reply.status != 304) {  // a 304 has no body to wait for
    ctx.reply.shared_body.reset();
    ctx.reply_body = std::make_shared<FlightBody>(flight, st.entry, st.length);
  }
  return true;
}

FilterStatus Cache::answer(RequestContext& ctx, const Conditions& c, const MemoryStore::Ptr& entry,
                           CacheStatus status) const {
  const auto now = wall_clock();
  const auto& inm = c.if_none_match;
  const auto ims = c.if_modified_since;
  http::StoredValidators v;
  v.etag = entry->etag;
  v.last_modified = entry->times.last_modified;
  v.date = entry->times.date;
  v.received = entry->times.response_time;
  // RFC 9110 13.2.1: conditions apply to a response that would be 2xx; the cache evaluates them
  // as the origin would (RFC 9111 4.3.2).
  const bool not_modified = entry->status >= 200 && entry->status < 300 &&
                            (!inm.empty() || !ims.empty()) && http::not_modified(inm, ims, v);
  auto& reply = ctx.reply;
  reply.status = not_modified ? 304 : entry->status;
  reply.code.clear();  // an answer, not an error, in the access log
  if (not_modified) {
    // 15.4.5: the fields a 200 would carry that describe the representation's caching.
    for (const auto& [n, val] : entry->headers) {
      for (std::string_view keep : {"cache-control", "content-location", "date", "etag", "expires",
                                    "vary", "last-modified"}) {
        if (http::iequals(n, keep)) reply.headers.emplace_back(n, val);
      }
    }
  } else {
    reply.headers.reserve(entry->headers.size() + 3);
    for (auto [n, v] : entry->headers) reply.headers.emplace_back(n, v);
    if (entry->body) {
      reply.shared_body = entry->body;
      reply.shared_bytes = *entry->body;
    }
    if (entry->status == 200 && entry->body) {
      // A stored complete response answers byte ranges itself (RFC 9110 14).
      if (entry->get("accept-ranges").empty()) reply.headers.emplace_back("Accept-Ranges", "bytes");
      if (!c.range.empty() &&
          (c.if_range.empty() ||
           http::if_range_allows(c.if_range, entry->etag, entry->times.last_modified,
                                 entry->times.date)))
        answer_range(c.range, *entry, &reply);
    }
  }
  reply.headers.emplace_back("Age", std::to_string(http::current_age(entry->times, now)));
  reply.headers.emplace_back("Cache-Status", format_cache_status("gatehouse", status));
  pending(ctx)->mode = Pending::Mode::kAnswered;
  return FilterStatus::kRespond;
}

FilterStatus Cache::on_response(RequestContext& ctx) const {
  Pending* pp = pending(ctx);
  if (!pp) return FilterStatus::kContinue;
  Pending& p = *pp;
  const http::ResponseHead* resp = ctx.response;
  switch (p.mode) {
    case Pending::Mode::kAnswered:
      return FilterStatus::kContinue;
    case Pending::Mode::kBypass:
      break;
    case Pending::Mode::kInvalidate:
      if (resp && resp->status >= 200 && resp->status < 400) invalidate(ctx, p);
      break;
    case Pending::Mode::kRevalidate: {
      const Entry& stale = *p.stale;
      if (resp && resp->status == 304) {
        // 4.3.3, 4.3.4: the stored response, freshened by the 304's fields.
        MemoryStore::Ptr fresh = freshen(stale, *resp, p.request_time, wall_clock(), s_.rules);
        if (fresh->vary.star || fresh->vary.names != stale.vary.names) {
          // The 304's Vary replaced the stored one (4.3.4): the variant the entry was stored
          // under was selected by fields it no longer names (4.1). That one goes; the freshened
          // response is kept under the variant its own Vary selects for this request, with a
          // marker naming those fields, unless it says "*", which no later request matches.
          store_->erase(p.variant_key());
          select_variant(p, fresh->vary);
          if (!p.variant.empty()) keep_marker(ctx, p, fresh->vary);
        }
        if (!fresh->vary.star) {
          keep(p.variant_key(), fresh, p.variant_hash());
          if (s_.shared) s_.shared->put(ctx, p.variant_key(), *fresh);
        }
        p.land();
        ctx.metrics->count(kStored, ctx.route->name);
        count(ctx, kRevalidated);
        CacheStatus st;
        st.fwd = p.status.fwd;
        st.fwd_status = 304;
        st.ttl = fresh->lifetime - http::current_age(fresh->times, wall_clock());
        return answer(ctx, conditions_of(p), fresh, st);
      }
      // RFC 5861 4: a failed revalidation (the origin's 5xx, or no answer at all) may be
      // answered with the stale response within stale-if-error, the response's or the
      // request's.
      const bool failed = !resp || resp->status >= 500;
      if (failed && !p.background) {
        const auto now = wall_clock();
        const int64_t stale_for = http::current_age(stale.times, now) - stale.lifetime;
        const int64_t allowed = std::max(stale.cc.stale_if_error, p.request_cc.stale_if_error);
        if (allowed != kAbsent && stale_for <= allowed && !stale.cc.must_revalidate &&
            !stale.cc.proxy_revalidate && !stale.cc.no_cache) {
          CacheStatus st;
          st.fwd = "stale";
          st.fwd_status = resp ? resp->status : ctx.status;
          st.ttl = -stale_for;
          st.detail = "stale-if-error";
          count(ctx, kStale);
          ctx.reply.clear();
          p.land();
          return answer(ctx, conditions_of(p), p.stale, st);
        }
      }
      if (!p.background) count(ctx, kMiss);  // the stored response could not be used
      [[fallthrough]];
    }
    case Pending::Mode::kMiss:
      if (resp) {
        p.status.fwd_status = resp->status;
        store_response(ctx, *resp, std::nullopt, p, &p.status);
      } else if (ctx.reply.body) {
        store_reply(ctx, p, &p.status);
      }
      break;
  }
  if (!p.storing) p.land();  // nothing to wait for
  auto header = format_cache_status("gatehouse", p.status);
  if (resp)
    ctx.response_add.emplace_back("Cache-Status", std::move(header));
  else
    ctx.reply.headers.emplace_back("Cache-Status", std::move(header));
  return FilterStatus::kContinue;
}

// A filter's answer with a body of its own, made for this request (a composite route's document,
// exchange/composite.h): stored as the response it is would be, whole.
void Cache::store_reply(RequestContext& ctx, Pending& p, CacheStatus* status) const {
  const http::ErrorResponse& r = ctx.reply;
  status->fwd_status = r.status;
  http::ResponseHead head;
  head.status = r.status;
  head.framing = http::Framing::kContentLength;
  head.content_length = r.body->size();
  const std::string length = std::to_string(head.content_length);
  for (const auto& [name, value] : r.headers) {
    http::Header h{name, value};
    h.id = http::classify_field(h.name, &h.hop_by_hop);
    head.headers.push_back(h);
  }
  if (!r.content_type.empty()) head.headers.push_back({"Content-Type", r.content_type});
  head.headers.push_back({"Content-Length", length, http::HeaderId::kContentLength});
  store_response(ctx, head, *r.body, p, status);
}

// RFC 9111 section 3: stores the response when it may, as its body streams to the client (or at
// once, when it is all there).
void Cache::store_response(RequestContext& ctx, const http::ResponseHead& resp,
                           std::optional<std::string_view> whole, Pending& p,
                           CacheStatus* status) const {
  if (p.head || p.request_cc.no_store) {
    status->detail = p.head ? "head" : "no-store";
    return;
  }
  // The response as the client gets it, changed by the filters after the cache, is what would be
  // stored: RFC 9111 section 3 is asked of it, from what the entry derived (one reading of its
  // fields for both).
  const auto now = wall_clock();
  p.storing = make_entry(resp, nullptr, p.request_time, now, s_.rules);
  amend(*p.storing, std::span(ctx.response_remove).subspan(p.removed_from),
        std::span(ctx.response_add).subspan(p.added_from), s_.rules);
  const Entry& e = *p.storing;
  ResponseFacts facts;
  facts.status = e.status;
  facts.cc = e.cc;
  facts.expires = e.times.expires || e.times.expires_invalid;
  facts.set_cookie = e.set_cookie;
  facts.vary_star = e.vary.star;
  RequestFacts req{"GET", p.request_cc, p.authorization};
  NotStored why = storable(req, facts, s_.share_set_cookie, s_.rules.default_ttl.has_value());
  const bool too_large = why == NotStored::kNone && resp.framing == http::Framing::kContentLength &&
                         resp.content_length > s_.max_object_size;
  // Stale at once and nothing to validate it with: every later request would fetch it whole
  // anyway, so storing it would only take room.
  if (why == NotStored::kNone && !too_large && e.lifetime == 0 && e.etag.empty() &&
      e.get("last-modified").empty())
    why = NotStored::kNoFreshness;
  if (too_large || why != NotStored::kNone) {
    status->detail = too_large ? "too-large" : to_string(why);
    p.storing.reset();
    return;
  }
  status->ttl = p.storing->lifetime - http::current_age(p.storing->times, now);
  select_variant(p, p.storing->vary);
  status->stored = true;
  if (whole) {
    p.storing->body = new_body(*whole);
    std::shared_ptr<const Entry> entry = std::move(p.storing);
    if (!entry->vary.names.empty()) keep_marker(ctx, p, entry->vary);
    if (s_.shared) s_.shared->put(ctx, p.variant_key(), *entry);
    if (keep(p.variant_key(), entry, p.variant_hash()))
      ctx.metrics->count(kStored, ctx.route->name);
    return;
  }
  // The body is kept as it is copied: a known length is allocated once, exactly, and the entry
  // shares it from now on. It is stored when complete.
  const bool known_length =
      resp.framing == http::Framing::kContentLength && !ctx.response_body_watchers;
  // What storing it will read, and the body's room, are asked for now, the store's lines first
  // (the processor tracks a bounded number of misses at once): they arrive while the head is
  // written to the client, instead of stalling the insert and the copy (cold memory on a large
  // store).
  store_->prefetch_insert(p.variant_hash());
  if (known_length) {
    p.body = new_body({}, resp.content_length);
    p.storing->body = p.body;
    for (size_t at = 0; at < std::min<size_t>(p.body->capacity(), 4096); at += 64)
      prefetch<1>(p.body->data() + at);
  }
  // The requests waiting on this miss can follow the body as it arrives, since it fills a buffer
  // that never moves. One of unknown length (chunked, or rewritten by the filters after the
  // cache) may grow past max_object_size and not be stored: they wait for it to land instead.
  if (p.flight && known_length) {
    p.flight->publish(p.storing, p.variant_key(), resp.content_length);
    p.published = true;
  }
  ctx.tap_response_body();
}

void Cache::on_response_tap(RequestContext& ctx, std::string_view piece, bool end) const {
  Pending* pp = pending(ctx);
  if (!pp || !pp->storing) return;
  Pending& p = *pp;
  // A body longer than its length said (never appended past its room: waiters read it as it
  // fills), or one of unknown length that grew too large.
  const size_t had = p.body ? p.body->size() : p.growing.size();
  if (had + piece.size() > (p.body ? p.body->capacity() : s_.max_object_size)) {
    p.storing.reset();
    p.body.reset();
    p.growing = pool::String();
    p.land();
    return;
  }
  if (p.body)
    p.body->append(piece);
  else
    p.growing.append(piece);
  if (!end) {
    if (p.published) p.flight->advance(p.body->size());
    return;
  }
  if (!p.body) {  // its bytes alone, in a body of their own
    p.storing->body = new_body(p.growing);
    p.growing = pool::String();
  }
  const uint64_t received = p.storing->body->size();  // the waiters get the last bytes as it lands
  p.body.reset();
  std::shared_ptr<const Entry> entry = std::move(p.storing);
  if (!entry->vary.names.empty()) keep_marker(ctx, p, entry->vary);
  if (s_.shared) s_.shared->put(ctx, p.variant_key(), *entry);
  if (keep(p.variant_key(), entry, p.variant_hash())) ctx.metrics->count(kStored, ctx.route->name);
  p.land(p.published ? received : 0);
}

void Cache::select_variant(Pending& p, const VarySpec& vary) const {
  if (vary.names.empty()) {
    p.variant.clear();
    return;
  }
  http::MessageHead request;
  for (const auto& [n, v] : p.request_fields) request.headers.push_back({n, v});
  p.variant = p.variant_of(vary_key(vary, request));
}

void Cache::keep_marker(RequestContext& ctx, const Pending& p, const VarySpec& vary) const {
  auto marker = new_entry();
  marker->status = 0;
  marker->vary = vary;
  std::string names;
  for (const auto& n : vary.names) names += (names.empty() ? "" : ", ") + n;
  marker->headers.emplace_back("Vary", std::move(names));
  keep(p.key, marker, p.key_hash);
  if (s_.shared) s_.shared->put(ctx, p.key, *marker);
}

// RFC 9111 4.4: the target URI, and the Location and Content-Location URIs when they are of the
// same origin, lose every stored response (all variants and extras).
void Cache::invalidate(RequestContext& ctx, const Pending& p) const {
  const std::string_view url = url_of(p.key);
  const std::string_view scheme_host = url.substr(0, url.size() - path_of(url).size());
  std::vector<std::string> urls{std::string(url)};
  for (std::string_view name : {"location", "content-location"}) {
    std::string_view v = ctx.response->get(name);
    if (v.empty()) continue;
    if (v.front() == '/' && (v.size() == 1 || v[1] != '/'))
      urls.push_back(std::string(scheme_host).append(v));
    else if (v.starts_with(scheme_host) &&
             (v.size() == scheme_host.size() || v[scheme_host.size()] == '/'))
      urls.emplace_back(v);
  }
  store_->erase_if([&](std::string_view key, const Entry&) {
    auto url = url_of(key);
    return std::find(urls.begin(), urls.end(), url) != urls.end();
  });
  if (s_.shared) s_.shared->drop(ctx, urls);
}

void Cache::count(RequestContext& ctx, size_t event) const {
  ctx.cache_result = kResults[event];
  if (ctx.metrics) ctx.metrics->count(kLookups, ctx.route->name, event);
}

std::shared_ptr<MemoryStore> shared_store(uint64_t max_size) {
  return stores().get(std::to_string(max_size),
                      [&] { return std::make_shared<MemoryStore>(max_size); });
}

size_t purge(const Purge& p) {
  size_t n = 0;
  for (const auto& store : stores().live()) {
    n += store->erase_if([&](std::string_view key, const Entry& e) {
      if (p.kind == Purge::Kind::kTag)
        return std::find(e.tags.begin(), e.tags.end(), p.value) != e.tags.end();
      return p.names_url(url_of(key));
    });
  }
  return n;
}

namespace {
// The purge itself (a 400 when the body does not name one).
std::variant<Purge, std::pair<int, std::string>> parse_purge(std::string_view body) {
  auto bad = [](std::string_view why) {
    std::string out = "{\"error\":\"bad_request\",\"message\":\"";
    http::append_json_escaped(&out, why);
    out += "\"}\n";
    return std::pair<int, std::string>{400, std::move(out)};
  };
  boost::system::error_code ec;
  auto doc = boost::json::parse(body, ec);
  const auto* obj = ec ? nullptr : doc.if_object();
  if (!obj || obj->size() != 1)
    return bad(R"(expected a JSON object with one of "url", "prefix" or "tag")");
  const auto& [name, value] = *obj->begin();
  Purge p;
  if (name == "url")
    p.kind = Purge::Kind::kUrl;
  else if (name == "prefix")
    p.kind = Purge::Kind::kPrefix;
  else if (name == "tag")
    p.kind = Purge::Kind::kTag;
  else
    return bad("unknown key '" + std::string(name) + R"(' (expected "url", "prefix" or "tag"))");
  if (!value.is_string() || value.as_string().empty())
    return bad("'" + std::string(name) + "' must be a non-empty string");
  p.value = std::string(value.as_string());
  if (p.kind == Purge::Kind::kUrl && !p.value.starts_with("http://") &&
      !p.value.starts_with("https://"))
    return bad("'url' must be an absolute http:// or https:// URL");
  // Keys hold the host in lower case; a purge names it as a user writes it.
  if (p.kind != Purge::Kind::kTag && !p.value.starts_with('/')) {
    auto authority = p.value.find("://") + 3;
    auto end = std::min(p.value.find('/', authority), p.value.size());
    for (size_t i = authority; i < end; ++i)
      p.value[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(p.value[i])));
  }
  return p;
}
}  // namespace

void purge_from_json(std::string_view body, boost::asio::io_context& io,
                     std::function<void(int, std::string)> done) {
  auto parsed = parse_purge(body);
  if (auto* error = std::get_if<std::pair<int, std::string>>(&parsed))
    return done(error->first, std::move(error->second));
  const Purge& p = std::get<Purge>(parsed);
  const size_t in_memory = purge(p);
  auto tiers = live_shared_tiers();
  if (tiers.empty()) return done(200, "{\"purged\":" + std::to_string(in_memory) + "}\n");
  // Every shared tier, one after the other (there is one per Redis configuration: usually one).
  struct Job : std::enable_shared_from_this<Job> {
    Purge what;
    std::vector<std::shared_ptr<SharedTier>> tiers;
    boost::asio::io_context* io;
    size_t in_memory = 0, shared = 0;
    std::function<void(int, std::string)> done;

    void next(size_t dropped) {
      shared += dropped;
      if (tiers.empty()) {
        return done(200, "{\"purged\":" + std::to_string(in_memory) +
                             ",\"shared\":" + std::to_string(shared) + "}\n");
      }
      auto tier = std::move(tiers.back());
      tiers.pop_back();
      purge_shared(tier, *io, what, [self = shared_from_this()](size_t n) { self->next(n); });
    }
  };
  auto job = std::make_shared<Job>();
  job->what = p;
  job->tiers = std::move(tiers);
  job->io = &io;
  job->in_memory = in_memory;
  job->done = std::move(done);
  job->next(0);
}

std::vector<observe::ProcessMetrics::Value> process_values() {
  MemoryStore::Stats all;
  for (const auto& store : stores().live()) {
    auto s = store->stats();
    all.bytes += s.bytes;
    all.entries += s.entries;
    all.evictions += s.evictions;
  }
  return {
      {"gatehouse_cache_stored_bytes",
       "Bytes the response cache holds (fields, bodies, bookkeeping).", "gauge",
       static_cast<double>(all.bytes)},
      {"gatehouse_cache_stored_entries", "Entries in the response cache (variants included).",
       "gauge", static_cast<double>(all.entries)},
      {"gatehouse_cache_evictions_total", "Entries the response cache evicted to make room.",
       "counter", static_cast<double>(all.evictions)},
  };
}

}  // namespace cache

std::vector<const observe::Family*> cache_metrics() { return {&cache::kLookups, &cache::kStored}; }

std::shared_ptr<const Filter> build_cache(const BuildContext& ctx) {
  const auto& r = ctx.reader;
  const auto& n = ctx.settings;
  if (n.IsNull()) {  // `cache: {}` or a bare `cache:`
  } else if (!r.check_map(
                 n, ctx.path,
                 {"ttl", "override", "key", "share_set_cookie", "tag_header", "heuristic_fraction",
                  "max_object_size", "coalesce", "coalesce_timeout", "tier"})) {
    return nullptr;
  }
  cache::Cache::Settings s;
  s.max_object_size = ctx.config.cache.max_object_size;
  bool ok = true;
  auto get = [&](const char* key) { return n.IsMap() ? n[key] : YAML::Node(); };
  if (auto v = get("ttl")) {
    if (auto d = r.duration(v, config::child(ctx.path, "ttl"))) {
      if (d->count() < 1000) {
        r.error(v, config::child(ctx.path, "ttl"), "must be at least 1s");
        ok = false;
      } else {
        s.rules.default_ttl = std::chrono::duration_cast<std::chrono::seconds>(*d);
      }
    } else {
      ok = false;
    }
  }
  if (auto v = get("override")) {
    auto b = r.boolean(v, config::child(ctx.path, "override"));
    if (!b) ok = false;
    s.rules.ttl_overrides = b.value_or(false);
    if (s.rules.ttl_overrides && !s.rules.default_ttl) {
      r.error(v, config::child(ctx.path, "override"), "override needs a ttl");
      ok = false;
    }
  }
  if (auto v = get("share_set_cookie")) {
    auto b = r.boolean(v, config::child(ctx.path, "share_set_cookie"));
    if (!b) ok = false;
    s.share_set_cookie = b.value_or(false);
  }
  if (auto v = get("tag_header")) {
    auto t = r.str(v, config::child(ctx.path, "tag_header"));
    if (!t || !http::is_token(*t)) {
      r.error(v, config::child(ctx.path, "tag_header"), "expected a header name");
      ok = false;
    } else {
      s.rules.tag_header = cache::lower(*t);
    }
  }
  if (auto v = get("heuristic_fraction")) {
    std::string path = config::child(ctx.path, "heuristic_fraction");
    double f = -1;
    try {
      f = v.as<double>();
    } catch (const YAML::Exception&) {
    }
    if (!(f >= 0 && f <= 1)) {
      r.error(v, path, "expected a number from 0 to 1");
      ok = false;
    } else {
      s.rules.heuristic_fraction = f;
    }
  }
  if (auto v = get("max_object_size")) {
    std::string path = config::child(ctx.path, "max_object_size");
    if (auto size = r.size(v, path)) {
      if (*size == 0 || *size > ctx.config.cache.max_object_size) {
        r.error(v, path,
                "must be more than 0 and at most cache.max_object_size (" +
                    std::to_string(ctx.config.cache.max_object_size) + " bytes)");
        ok = false;
      } else {
        s.max_object_size = *size;
      }
    } else {
      ok = false;
    }
  }
  if (auto v = get("coalesce")) {
    auto b = r.boolean(v, config::child(ctx.path, "coalesce"));
    if (!b) ok = false;
    s.coalesce = b.value_or(true);
  }
  if (auto v = get("coalesce_timeout")) {
    std::string path = config::child(ctx.path, "coalesce_timeout");
    if (auto d = r.duration(v, path); d && d->count() >= 1) {
      s.coalesce_timeout = *d;
    } else {
      if (d) r.error(v, path, "must be at least 1ms");
      ok = false;
    }
  }
  if (auto v = get("tier")) {
    std::string path = config::child(ctx.path, "tier");
    auto t = r.str(v, path);
    if (t == "redis") {
      if (!ctx.config.redis.enabled) {
        r.error(v, path, "tier: redis needs the top-level redis block");
        ok = false;
      } else {
        s.shared = cache::shared_tier(ctx.config.redis, ctx.config.cache.shared_max_object_size);
      }
    } else if (t != "memory") {
      if (t) r.error(v, path, "expected memory or redis");
      ok = false;
    }
  }
  if (auto v = get("key")) {
    std::string path = config::child(ctx.path, "key");
    for (const auto& item : r.str_list(v, path)) {
      if (item == "consumer") {
        s.key_consumer = true;
      } else if (item.starts_with("header:") && http::is_token(item.substr(7))) {
        s.key_headers.push_back(cache::lower(item.substr(7)));
      } else {
        r.error(v, path, "unknown key part '" + item + "' (expected consumer or header:NAME)");
        ok = false;
      }
    }
  }
  if (!ok) return nullptr;
  return std::make_shared<cache::Cache>(std::move(s),
                                        cache::shared_store(ctx.config.cache.max_size));
}

}  // namespace gatehouse::filters
