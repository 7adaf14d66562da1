#include "exchange/peer.h"

namespace gatehouse::exchange {

Peer peer_of(const net::Socket& socket, const std::vector<config::Cidr>& trusted_proxies) {
  Peer peer;
  boost::system::error_code ec;
  auto ep = socket.remote_endpoint(ec);
  if (ec) return peer;
  auto addr = ep.address();
  if (addr.is_v6() && addr.to_v6().is_v4_mapped())
    addr = net::asio::ip::make_address_v4(net::asio::ip::v4_mapped, addr.to_v6());
  peer.ip = addr.to_string();
  if (auto bytes = config::parse_ip(peer.ip)) {
    for (const auto& cidr : trusted_proxies) {
      if (cidr.contains(*bytes)) peer.trusted = true;
    }
  }
  return peer;
}

}  // namespace gatehouse::exchange
