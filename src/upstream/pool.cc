#include "upstream/pool.h"

#include <sys/socket.h>

#include <cerrno>

namespace gatehouse::upstream {

std::optional<net::Stream> TargetPool::take_idle(net::Clock::time_point now) {
  while (!idle_.empty()) {
    Idle idle = std::move(idle_.back());
    idle_.pop_back();
    if (now - idle.since < kTrustWindow) return std::move(idle.stream);
    if (idle.stream.tls()) {
      if (idle.stream.tls_idle_ok()) return std::move(idle.stream);
    } else {
      // EAGAIN means open and quiet: the only state fit for a new request.
      char byte;
      ssize_t n = ::recv(idle.stream.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return std::move(idle.stream);
    }
    idle.stream.drop();
  }
  return std::nullopt;
}

void TargetPool::give_back(net::Stream s, size_t max_idle, net::Clock::time_point now) {
  if (!retired_ && idle_.size() < max_idle) {
    idle_.push_back(Idle{std::move(s), now});
  } else {
    s.drop();
  }
}

void TargetPool::retire() {
  retired_ = true;
  for (auto& idle : idle_) idle.stream.drop();
  idle_.clear();
  session_.reset();
}

}  // namespace gatehouse::upstream
