// Where the Redis client connects, and how: the settings of the `redis` config section, read from
// its URL. Kept apart from client.h so the connection code (connection.h) needs only this.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gatehouse::tls {
class ClientContext;
}

namespace gatehouse::redis {

struct Endpoint {
  std::string host = "127.0.0.1";
  uint16_t port = 6379;
  int db = 0;
  std::string user;      // a Redis 6 ACL user (AUTH user password); empty: the default user
  std::string password;  // sent with AUTH on connect when not empty
  bool tls = false;      // rediss://: TLS to Redis, with tls_context (which the caller sets)
  bool cluster = false;  // Redis Cluster: this server is the seed of the map of hash slots
  // Redis Sentinel: these sentinels name the master; `host` is then the master's name.
  std::vector<std::pair<std::string, uint16_t>> sentinels;
  std::shared_ptr<const tls::ClientContext> tls_context;
  // Limit for one connection attempt: TCP connect, TLS handshake, AUTH and SELECT (not in the URL).
  std::chrono::milliseconds connect_timeout{1000};
};

// Parses redis://[[user]:password@]host[:port][/db], or rediss:// for TLS (user and password may
// be percent-encoded, an IPv6 host is written in brackets). nullopt and *error (when given) say why
// when malformed.
std::optional<Endpoint> parse_url(std::string_view url, std::string* error);

}  // namespace gatehouse::redis
