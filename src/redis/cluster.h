// Redis Cluster: which node owns a key. The hash slot of a key, the map of slots to masters read
// from CLUSTER SLOTS, and the MOVED / ASK redirections a node answers for a slot it does not
// serve. Pure functions; the client (client.cc) keeps the map and the connections to each node.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "redis/resp.h"

namespace gatehouse::redis {

constexpr size_t kHashSlots = 16384;

// The Redis Cluster hash slot of `key` (0-16383): CRC16 of the key, or of its {hash tag}.
size_t hash_slot(std::string_view key);

// The key a command is routed by: its first argument, but for XREAD and XREADGROUP, whose keys
// follow STREAMS (XREAD BLOCK 1000 STREAMS key id). Empty when the command names none.
std::string_view routing_key(std::span<const std::string_view> args);

// A MOVED or ASK error: the slot lives (for good / for now) on another node.
struct Redirect {
  size_t slot;
  std::string host;
  uint16_t port;
};
// "MOVED 3999 127.0.0.1:6381" (an IPv6 host keeps its colons: the port follows the last one).
std::optional<Redirect> redirect_target(std::string_view error);

// A CLUSTER SLOTS reply, [[start, end, [host, port, id, ...], replicas...], ...], as the owner of
// every hash slot: masters only (writes go there), each named by the index node_at(host, port)
// gives it (an empty or unknown host is `default_host`). False, with *owner untouched, when the
// reply is not such a map.
bool load_slot_map(const Reply& reply, std::string_view default_host,
                   const std::function<size_t(std::string_view host, uint16_t port)>& node_at,
                   std::vector<uint16_t>* owner);

}  // namespace gatehouse::redis
