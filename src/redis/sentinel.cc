// Redis Sentinel's side of the client (redis/sentinel.h).
#include "redis/sentinel.h"

namespace gatehouse::redis {

Endpoint sentinel_endpoint(const Endpoint& master, const std::string& host, uint16_t port) {
  Endpoint ep = master;
  ep.host = host;
  ep.port = port;
  ep.user.clear();
  ep.password.clear();
  ep.db = 0;
  return ep;
}

std::optional<MasterAddress> parse_master_address(const Reply& reply) {
  if (reply.type != Reply::Type::kArray || reply.elements.size() != 2 ||
      reply.elements[0].type != Reply::Type::kString ||
      reply.elements[1].type != Reply::Type::kString)
    return std::nullopt;  // nil: the sentinels do not know this master name
  const std::string& host = reply.elements[0].str;
  auto port = parse_number(reply.elements[1].str, 65535);
  if (host.empty() || !port || *port == 0) return std::nullopt;
  return MasterAddress{host, static_cast<uint16_t>(*port)};
}

}  // namespace gatehouse::redis
