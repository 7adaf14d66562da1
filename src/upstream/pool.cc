#include "upstream/pool.h"

#include <sys/socket.h>

#include <cerrno>

namespace gatehouse::upstream {

std::optional<net::Socket> TargetPool::take_idle() {
  while (!idle_.empty()) {
    net::Socket s = std::move(idle_.back());
    idle_.pop_back();
    // One non-blocking peek: EAGAIN means open and quiet, the only state fit for a new request.
    char byte;
    ssize_t n = ::recv(s.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return s;
    boost::system::error_code ignored;
    s.close(ignored);
  }
  return std::nullopt;
}

void TargetPool::give_back(net::Socket s, size_t max_idle) {
  if (idle_.size() < max_idle) {
    idle_.push_back(std::move(s));
  } else {
    boost::system::error_code ignored;
    s.close(ignored);
  }
}

}  // namespace gatehouse::upstream
