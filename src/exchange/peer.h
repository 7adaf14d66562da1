// Who is at the other end of a client connection: its address, as the access log and
// X-Forwarded-For give it (an IPv4 client on a dual-stack socket as IPv4), and whether it is one
// of server.trusted_proxies. The same for every codec.
#pragma once

#include <string>
#include <vector>

#include "config/units.h"
#include "net/asio.h"

namespace gatehouse::exchange {

struct Peer {
  std::string ip;  // empty when the socket has no peer any more
  bool trusted = false;
};

Peer peer_of(const net::Socket& socket, const std::vector<config::Cidr>& trusted_proxies);

}  // namespace gatehouse::exchange
