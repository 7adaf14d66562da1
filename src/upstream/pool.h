// Idle keep-alive connections to one target, owned by one worker (no locks). A connection is
// checked before reuse: if the upstream closed it (or sent unexpected bytes) while it sat idle, it
// is dropped rather than handed out.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "server/asio.h"

namespace gatehouse::upstream {

class TargetPool {
 public:
  TargetPool(net::tcp::endpoint endpoint, std::string address)
      : endpoint_(endpoint), address_(std::move(address)) {}

  // The most recently used idle connection that is still open, or nullopt.
  std::optional<net::Socket> take_idle();
  // Keeps the connection for reuse if fewer than max_idle are kept; closes it otherwise.
  void give_back(net::Socket s, size_t max_idle);

  const net::tcp::endpoint& endpoint() const { return endpoint_; }
  const std::string& address() const { return address_; }
  size_t idle_count() const { return idle_.size(); }

 private:
  net::tcp::endpoint endpoint_;
  std::string address_;  // "ip:port", for logs
  std::vector<net::Socket> idle_;
};

}  // namespace gatehouse::upstream
