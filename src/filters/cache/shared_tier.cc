#include "filters/cache/shared_tier.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdio>
#include <random>

#include "config/shared_by_key.h"
#include "filters/cache/key.h"
#include "filters/redis_clients.h"
#include "redis/client.h"

namespace gatehouse::filters::cache {
namespace {

constexpr std::string_view kEntries = "gh:c:";
constexpr std::string_view kTags = "gh:ct:";
// The purge stream, and about how many events it keeps (XADD MAXLEN ~): a reader away for
// longer than that many purges takes so long may miss some.
constexpr std::string_view kPurges = "gh:cp";
constexpr std::string_view kPurgesKept = "10000";
// A reader's XREAD waits this long for events, then asks again; after a failure it waits
// kFollowRetry before it tries again.
constexpr std::chrono::milliseconds kFollowBlock{1000};
constexpr std::chrono::seconds kFollowRetry{1};

// This process, as the stream's events name where they come from: a reader skips its own.
const std::string& instance() {
  static const std::string id = [] {
    std::random_device rd;
    char hex[17];
    std::snprintf(hex, sizeof hex, "%08x%08x", rd(), rd());
    return std::string(hex);
  }();
  return id;
}

constexpr std::string_view kind_name(Purge::Kind k) {
  switch (k) {
    case Purge::Kind::kUrl:
      return "url";
    case Purge::Kind::kPrefix:
      return "prefix";
    case Purge::Kind::kTag:
      return "tag";
  }
  return "url";
}

std::string hash_of(std::string_view url) { return std::string(kEntries) + std::string(url); }
// The hash field: the key's extras and variant ("k" so that it is never empty).
std::string field_of(std::string_view key) {
  return "k" + std::string(key.substr(url_of(key).size()));
}

// HSET (or SADD) and make the key live at least `ttl` seconds: a key holds several entries (or
// URLs), and lives as long as the longest-lived of them.
const redis::Script& put_script() {
  static const redis::Script script(R"lua(
if ARGV[3] == 'hash' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
else
  redis.call('SADD', KEYS[1], ARGV[1])
end
local ttl = tonumber(ARGV[4])
if redis.call('TTL', KEYS[1]) < ttl then redis.call('EXPIRE', KEYS[1], ttl) end
return 1
)lua");
  return script;
}

// How long Redis keeps an entry, in seconds (see the header).
int64_t keep_for(const Entry& e) {
  const auto now = std::chrono::system_clock::now();
  int64_t ttl = std::max<int64_t>(0, e.lifetime - http::current_age(e.times, now));
  ttl += std::max<int64_t>({0, e.cc.stale_while_revalidate, e.cc.stale_if_error});
  if (!e.etag.empty() || !e.get("last-modified").empty()) ttl += 3600;
  return std::max<int64_t>(ttl, 1);
}

config::SharedByKey<SharedTier>& tiers() {
  static config::SharedByKey<SharedTier> all;
  return all;
}

void ignore(redis::Result) {}

// Adds `p` to the purge stream, for the other instances.
void announce(redis::Client& client, const Purge& p, std::chrono::milliseconds timeout) {
  client.command({"XADD", kPurges, "MAXLEN", "~", kPurgesKept, "*", "from", instance(), "kind",
                  kind_name(p.kind), "value", p.value},
                 timeout, ignore);
}

}  // namespace

// Reads the purge stream for one tier on one worker: XREAD from the last event seen (from the
// stream's end at first), on a client of its own, since a blocked XREAD holds its connection.
struct PurgeFollower : std::enable_shared_from_this<PurgeFollower> {
  PurgeFollower(std::shared_ptr<SharedTier> t, boost::asio::io_context& io,
                std::function<void(const Purge&)> apply)
      : tier(t),
        conn(std::make_shared<Conn>(t->redis_)),
        io(io),
        apply(std::move(apply)),
        retry(io) {}
  ~PurgeFollower() {
    if (auto t = tier.lock()) t->followed_ = false;  // another worker may take it over
  }

  // Its client and the settings it was made with, which with_redis() holds by reference while
  // the first connection comes up: shared with that wait, so that a follower stopped meanwhile
  // leaves them whole until it ends.
  struct Conn {
    explicit Conn(config::Redis redis) : redis(std::move(redis)) {}
    const config::Redis redis;
    WorkerState clients;
  };

  std::weak_ptr<SharedTier> tier;
  std::shared_ptr<Conn> conn;
  boost::asio::io_context& io;
  const std::function<void(const Purge&)> apply;
  boost::asio::steady_timer retry;
  std::string last;  // the last event's id; empty until the stream's end is known

  void step() {
    if (tier.expired()) return;  // no config uses the tier any more
    with_redis(conn->clients, io, conn->redis,
               [weak = weak_from_this(), conn = conn](redis::Client* client) {
                 auto self = weak.lock();
                 if (!self) return;
                 if (!client) return self->later();
                 if (self->last.empty()) return self->find_end(*client);
                 self->read(*client);
               });
  }
  void later() {
    retry.expires_after(kFollowRetry);
    retry.async_wait([weak = weak_from_this()](boost::system::error_code) {
      if (auto self = weak.lock()) self->step();
    });
  }
  // What was added before this reader started is not its business: its memory tier holds
  // nothing older.
  void find_end(redis::Client& client) {
    client.command({"XREVRANGE", kPurges, "+", "-", "COUNT", "1"}, conn->redis.timeout,
                   [weak = weak_from_this()](redis::Result r) {
                     auto self = weak.lock();
                     if (!self) return;
                     const auto* reply = std::get_if<redis::Reply>(&r);
                     if (!reply || reply->type != redis::Reply::Type::kArray) return self->later();
                     self->last = reply->elements.empty() || reply->elements[0].elements.empty()
                                      ? "0-0"
                                      : reply->elements[0].elements[0].str;
                     self->step();
                   });
  }
  void read(redis::Client& client) {
    const std::string block = std::to_string(kFollowBlock.count());
    client.command({"XREAD", "BLOCK", block, "STREAMS", kPurges, last},
                   kFollowBlock + conn->redis.timeout, [weak = weak_from_this()](redis::Result r) {
                     auto self = weak.lock();
                     if (!self) return;
                     const auto* reply = std::get_if<redis::Reply>(&r);
                     if (!reply || reply->is_error()) return self->later();
                     if (reply->type == redis::Reply::Type::kArray) self->take(*reply);
                     self->step();  // a nil reply: nothing came while it waited
                   });
  }
  // XREAD's answer: [[stream, [[id, [field, value, ...]], ...]]].
  void take(const redis::Reply& reply) {
    for (const auto& stream : reply.elements) {
      if (stream.elements.size() != 2) continue;
      for (const auto& event : stream.elements[1].elements) {
        if (event.elements.size() != 2) continue;
        last = event.elements[0].str;
        std::string_view from, kind;
        Purge p;
        const auto& fields = event.elements[1].elements;
        for (size_t i = 0; i + 1 < fields.size(); i += 2) {
          const std::string& name = fields[i].str;
          if (name == "from") from = fields[i + 1].str;
          if (name == "kind") kind = fields[i + 1].str;
          if (name == "value") p.value = fields[i + 1].str;
        }
        if (from == instance() || p.value.empty()) continue;  // its own, or not one of ours
        if (kind == kind_name(Purge::Kind::kPrefix))
          p.kind = Purge::Kind::kPrefix;
        else if (kind == kind_name(Purge::Kind::kTag))
          p.kind = Purge::Kind::kTag;
        else if (kind != kind_name(Purge::Kind::kUrl))
          continue;
        apply(p);
      }
    }
  }
};

namespace {
// The followers a worker runs, stopped (their clients with them) when its state is cleared.
struct PurgeFollowers {
  std::vector<std::shared_ptr<PurgeFollower>> running;
};
const SlotKey<PurgeFollowers> kPurgeFollowers{"cache.purge_followers"};
}  // namespace

void SharedTier::follow_purges(WorkerState& state, boost::asio::io_context& io,
                               std::function<void(const Purge&)> apply) {
  if (followed_.load(std::memory_order_relaxed) || followed_.exchange(true)) return;
  auto follower = std::make_shared<PurgeFollower>(shared_from_this(), io, std::move(apply));
  state.get(kPurgeFollowers).running.push_back(follower);
  follower->step();
}

void SharedTier::fetch(RequestContext& ctx, std::string_view key,
                       std::function<void(std::optional<std::string>)> done) const {
  if (!ctx.io || !ctx.worker) return done(std::nullopt);
  with_redis(*ctx.worker, *ctx.io, redis_,
             [self = shared_from_this(), hash = hash_of(url_of(key)), field = field_of(key),
              done = std::move(done)](redis::Client* client) mutable {
               if (!client) return done(std::nullopt);
               client->command({"HGET", hash, field}, self->redis_.timeout,
                               [done = std::move(done)](redis::Result r) {
                                 const auto* reply = std::get_if<redis::Reply>(&r);
                                 if (!reply || reply->type != redis::Reply::Type::kString)
                                   return done(std::nullopt);
                                 done(std::move(reply->str));
                               });
             });
}

void SharedTier::put(RequestContext& ctx, std::string_view key, const Entry& e) const {
  if (!ctx.io || !ctx.worker || e.cost() > max_object_size_) return;
  std::string ttl = std::to_string(keep_for(e));
  with_redis(*ctx.worker, *ctx.io, redis_,
             [self = shared_from_this(), hash = hash_of(url_of(key)), field = field_of(key),
              bytes = encode_entry(e), tags = e.tags, ttl](redis::Client* client) {
               if (!client) return;
               const auto timeout = self->redis_.timeout;
               client->eval(put_script(), {hash}, {field, bytes, "hash", ttl}, timeout, ignore);
               for (const auto& tag : tags) {
                 client->eval(put_script(), {std::string(kTags) + tag}, {hash, "", "set", ttl},
                              timeout, ignore);
               }
             });
}

void SharedTier::drop(RequestContext& ctx, const std::vector<std::string>& urls) const {
  if (!ctx.io || !ctx.worker) return;
  with_redis(*ctx.worker, *ctx.io, redis_,
             [self = shared_from_this(), urls](redis::Client* client) {
               if (!client) return;
               for (const auto& url : urls) {
                 client->command({"DEL", hash_of(url)}, self->redis_.timeout, ignore);
                 announce(*client, Purge{Purge::Kind::kUrl, url}, self->redis_.timeout);
               }
             });
}

namespace {

// A purge in progress on the main thread: what it found to drop, and who waits for the count.
struct Purging : std::enable_shared_from_this<Purging> {
  Purge what;
  std::shared_ptr<const SharedTier> tier;  // keeps the Redis settings alive
  redis::Client* client = nullptr;
  std::function<void(size_t)> done;
  size_t dropped = 0;
  size_t pending = 0;   // DELs not answered yet
  bool listed = false;  // every key to drop was found

  void del(std::string key) {
    ++pending;
    client->command({"DEL", key}, tier->redis().timeout,
                    [self = shared_from_this()](redis::Result r) {
                      const auto* reply = std::get_if<redis::Reply>(&r);
                      if (reply && reply->type == redis::Reply::Type::kInteger)
                        self->dropped += reply->integer;
                      --self->pending;
                      self->maybe_done();
                    });
  }
  void maybe_done() {
    if (listed && pending == 0 && done) std::exchange(done, nullptr)(dropped);
  }
  void listed_all() {
    listed = true;
    maybe_done();
  }

  // Prefix: every URL hash, a page at a time (SCAN), on every server that holds data: each
  // master of a Cluster lists its own keys. The DELs go wherever each key lives.
  size_t scanning = 0;  // masters whose SCAN has not reached its end
  void scan_all() {
    const auto masters = client->masters();
    scanning = masters.size();
    for (size_t m : masters) scan(m, "0");
  }
  void scan(size_t master, std::string cursor) {
    client->command_on(
        master, {"SCAN", cursor, "MATCH", std::string(kEntries) + "*", "COUNT", "1000"},
        tier->redis().timeout, [self = shared_from_this(), master](redis::Result r) {
          const auto* reply = std::get_if<redis::Reply>(&r);
          if (!reply || reply->type != redis::Reply::Type::kArray || reply->elements.size() != 2)
            return self->scanned();
          for (const auto& k : reply->elements[1].elements) {
            std::string_view url = k.str;
            url.remove_prefix(std::min(url.size(), kEntries.size()));
            if (self->what.names_url(url)) self->del(k.str);
          }
          const std::string& next = reply->elements[0].str;
          if (next == "0") return self->scanned();
          self->scan(master, next);
        });
  }
  void scanned() {
    if (--scanning == 0) listed_all();
  }

  void run() {
    const auto timeout = tier->redis().timeout;
    announce(*client, what, timeout);
    switch (what.kind) {
      case Purge::Kind::kUrl:
        del(hash_of(what.value));
        return listed_all();
      case Purge::Kind::kPrefix:
        return scan_all();
      case Purge::Kind::kTag: {
        std::string set = std::string(kTags) + what.value;
        client->command({"SMEMBERS", set}, timeout,
                        [self = shared_from_this(), set](redis::Result r) {
                          if (const auto* reply = std::get_if<redis::Reply>(&r);
                              reply && reply->type == redis::Reply::Type::kArray) {
                            for (const auto& k : reply->elements) self->del(k.str);
                          }
                          self->client->command({"DEL", set}, self->tier->redis().timeout, ignore);
                          self->listed_all();
                        });
        return;
      }
    }
  }
};

// How long a purge waits for its own client to reach every server that holds data (a Cluster's
// masters): an operator's request, not a client's, so it may wait longer than redis.timeout.
constexpr std::chrono::seconds kPurgeConnect{3};

// Runs `job` once `client` reaches every master, or at `deadline` with those it reaches.
void when_masters_up(redis::Client* client, boost::asio::io_context& io,
                     std::chrono::steady_clock::time_point deadline, std::function<void()> job) {
  if (client->masters_up() || std::chrono::steady_clock::now() >= deadline) return job();
  auto timer = std::make_shared<boost::asio::steady_timer>(io, std::chrono::milliseconds(5));
  timer->async_wait([client, &io, deadline, timer, job = std::move(job)](auto) mutable {
    when_masters_up(client, io, deadline, std::move(job));
  });
}

}  // namespace

void purge_shared(std::shared_ptr<const SharedTier> tier, boost::asio::io_context& io,
                  const Purge& p, std::function<void(size_t)> done) {
  // A client of its own, stopped when the purge is done: the main thread keeps no connection
  // (which would keep its io_context, and so the process, running).
  auto clients = std::make_shared<WorkerState>();
  auto connect = std::make_shared<config::Redis>(tier->redis());
  connect->timeout = std::max<config::Duration>(connect->timeout, kPurgeConnect);
  const auto deadline = std::chrono::steady_clock::now() + kPurgeConnect;
  with_redis(*clients, io, *connect,
             [tier = std::move(tier), clients, connect, p, &io, deadline,
              done = std::move(done)](redis::Client* client) mutable {
               auto finish = [clients, done = std::move(done)](size_t n) {
                 done(n);
                 clients->clear();
               };
               if (!client) return finish(0);
               auto job = std::make_shared<Purging>();
               job->what = p;
               job->tier = std::move(tier);
               job->client = client;
               job->done = std::move(finish);
               when_masters_up(client, io, deadline, [job] { job->run(); });
             });
}

std::shared_ptr<SharedTier> shared_tier(const config::Redis& redis, uint64_t max_object_size) {
  std::string key = redis.url + " " + std::to_string(max_object_size);
  for (const auto& [host, port] : redis.sentinels) key += " " + host + ":" + std::to_string(port);
  return tiers().get(key, [&] { return std::make_shared<SharedTier>(redis, max_object_size); });
}

std::vector<std::shared_ptr<SharedTier>> live_shared_tiers() { return tiers().live(); }

}  // namespace gatehouse::filters::cache
