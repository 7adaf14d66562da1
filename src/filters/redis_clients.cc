#include "filters/redis_clients.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "redis/client.h"
#include "tls/client_context.h"

namespace gatehouse::filters {
namespace {

struct ThreadClient {
  std::unique_ptr<redis::Client> client;
  std::chrono::steady_clock::time_point since;  // when it was made
};
struct RedisClients {
  std::map<std::string, ThreadClient> by_key;
  ~RedisClients() {
    for (auto& [key, c] : by_key) c.client->stop();
  }
};
const SlotKey<RedisClients> kRedisClients{"redis_clients"};

ThreadClient* client_for(WorkerState& state, boost::asio::io_context& io,
                         const config::Redis& cfg) {
  // A reload that changes the TLS settings (or the CA file's contents) gets a new client.
  std::string key =
      (cfg.cluster ? "cluster " : "") + (cfg.tls ? cfg.url + " " + cfg.tls->identity() : cfg.url);
  for (const auto& [host, port] : cfg.sentinels)
    key += " sentinel " + host + ":" + std::to_string(port);
  auto& c = state.get(kRedisClients).by_key[key];
  if (!c.client) {
    auto endpoint = redis::parse_url(cfg.url, nullptr);
    if (!endpoint || (endpoint->tls && !cfg.tls)) return nullptr;  // checked at config load
    endpoint->tls_context = cfg.tls;
    endpoint->cluster = cfg.cluster;
    endpoint->sentinels = cfg.sentinels;
    c.client = std::make_unique<redis::Client>(io, *endpoint, cfg.connections);
    c.since = std::chrono::steady_clock::now();
  }
  return &c;
}

}  // namespace

void with_redis(WorkerState& state, boost::asio::io_context& io, const config::Redis& cfg,
                std::function<void(redis::Client*)> ready) {
  ThreadClient* tc = client_for(state, io, cfg);
  if (!tc) return ready(nullptr);
  if (tc->client->connected()) return ready(tc->client.get());
  if (std::chrono::steady_clock::now() - tc->since >= cfg.timeout) return ready(nullptr);
  // Still making its first connection: look again in a moment.
  auto timer = std::make_shared<boost::asio::steady_timer>(io, std::chrono::milliseconds(2));
  timer->async_wait(
      [&state, &io, &cfg, timer, ready = std::move(ready)](boost::system::error_code) mutable {
        with_redis(state, io, cfg, std::move(ready));
      });
}

}  // namespace gatehouse::filters
