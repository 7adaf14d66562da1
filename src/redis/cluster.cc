// Redis Cluster's key hashing, slot map and redirections (redis/cluster.h).
#include "redis/cluster.h"

#include <algorithm>

namespace gatehouse::redis {
namespace {

// CRC16-CCITT (XMODEM), as the Redis Cluster specification defines the key hash.
uint16_t crc16(std::string_view s) {
  uint16_t crc = 0;
  for (unsigned char c : s) {
    crc ^= static_cast<uint16_t>(c) << 8;
    for (int i = 0; i < 8; ++i)
      crc = crc & 0x8000 ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                         : static_cast<uint16_t>(crc << 1);
  }
  return crc;
}

}  // namespace

size_t hash_slot(std::string_view key) {
  // Only what is between the first '{' and the next '}' counts, when that is not empty.
  auto open = key.find('{');
  if (open != std::string_view::npos) {
    auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1)
      key = key.substr(open + 1, close - open - 1);
  }
  return crc16(key) % 16384;
}

std::string_view routing_key(std::span<const std::string_view> args) {
  if (args.size() < 2) return {};
  const auto is = [](std::string_view word, std::string_view upper) {
    return word.size() == upper.size() &&
           std::equal(word.begin(), word.end(), upper.begin(),
                      [](char a, char b) { return (a & ~0x20) == b; });
  };
  if (is(args[0], "XREAD") || is(args[0], "XREADGROUP")) {
    for (size_t i = 1; i + 1 < args.size(); ++i) {
      if (is(args[i], "STREAMS")) return args[i + 1];
    }
    return {};
  }
  return args[1];
}

std::optional<Redirect> redirect_target(std::string_view error) {
  auto first = error.find(' ');
  auto second = error.find(' ', first + 1);
  if (first == std::string_view::npos || second == std::string_view::npos) return std::nullopt;
  auto slot = parse_number(error.substr(first + 1, second - first - 1), kHashSlots - 1);
  std::string_view address = error.substr(second + 1);
  auto colon = address.rfind(':');
  if (!slot || colon == std::string_view::npos || colon == 0) return std::nullopt;
  auto port = parse_number(address.substr(colon + 1), 65535);
  if (!port || *port == 0) return std::nullopt;
  return Redirect{static_cast<size_t>(*slot), std::string(address.substr(0, colon)),
                  static_cast<uint16_t>(*port)};
}

bool load_slot_map(const Reply& reply, std::string_view default_host,
                   const std::function<size_t(std::string_view host, uint16_t port)>& node_at,
                   std::vector<uint16_t>* out) {
  if (reply.type != Reply::Type::kArray || reply.elements.empty()) return false;
  std::vector<uint16_t> owner(kHashSlots, 0);
  for (const auto& range : reply.elements) {
    if (range.type != Reply::Type::kArray || range.elements.size() < 3) return false;
    const auto& master = range.elements[2];
    if (range.elements[0].type != Reply::Type::kInteger ||
        range.elements[1].type != Reply::Type::kInteger || master.type != Reply::Type::kArray ||
        master.elements.size() < 2 || master.elements[0].type != Reply::Type::kString ||
        master.elements[1].type != Reply::Type::kInteger)
      return false;
    int64_t first = range.elements[0].integer, last = range.elements[1].integer;
    int64_t port = master.elements[1].integer;
    if (first < 0 || last >= static_cast<int64_t>(kHashSlots) || first > last || port <= 0 ||
        port > 65535)
      return false;
    // An empty or unknown host ("?"): the node has not learnt its address; take the URL's host.
    std::string_view host = master.elements[0].str;
    if (host.empty() || host == "?") host = default_host;
    size_t node = node_at(host, static_cast<uint16_t>(port));
    for (int64_t slot = first; slot <= last; ++slot) owner[slot] = static_cast<uint16_t>(node);
  }
  *out = std::move(owner);
  return true;
}

}  // namespace gatehouse::redis
