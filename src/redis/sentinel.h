// Redis Sentinel: the master is found by name through the sentinels (SENTINEL
// get-master-addr-by-name), and asked for again after a failover. The pure parts: a sentinel's
// endpoint and the reading of its answer; the client (client.cc) keeps the connections.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "redis/endpoint.h"
#include "redis/resp.h"

namespace gatehouse::redis {

// The endpoint of the sentinel at host:port, from the client's (`master`, whose host is the
// master's name): its TLS settings, but no AUTH and database 0, since a sentinel has neither.
Endpoint sentinel_endpoint(const Endpoint& master, const std::string& host, uint16_t port);

struct MasterAddress {
  std::string host;
  uint16_t port;
};
// The answer to SENTINEL get-master-addr-by-name, [ip, port]: the master now. nullopt for nil
// (the sentinels do not know this master name) or anything else.
std::optional<MasterAddress> parse_master_address(const Reply& reply);

}  // namespace gatehouse::redis
