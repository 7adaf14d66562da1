#include "upstream/pool.h"

#include <sys/socket.h>

#include <cerrno>

namespace gatehouse::upstream {

std::optional<net::Socket> TargetPool::take_idle(net::Clock::time_point now) {
  while (!idle_.empty()) {
    Idle idle = std::move(idle_.back());
    idle_.pop_back();
    if (now - idle.since < kTrustWindow) return std::move(idle.socket);
    // EAGAIN means open and quiet: the only state fit for a new request.
    char byte;
    ssize_t n = ::recv(idle.socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return std::move(idle.socket);
    boost::system::error_code ignored;
    idle.socket.close(ignored);
  }
  return std::nullopt;
}

void TargetPool::give_back(net::Socket s, size_t max_idle, net::Clock::time_point now) {
  if (!retired_ && idle_.size() < max_idle) {
    idle_.push_back(Idle{std::move(s), now});
  } else {
    boost::system::error_code ignored;
    s.close(ignored);
  }
}

void TargetPool::retire() {
  retired_ = true;
  for (auto& idle : idle_) {
    boost::system::error_code ignored;
    idle.socket.close(ignored);
  }
  idle_.clear();
}

}  // namespace gatehouse::upstream
