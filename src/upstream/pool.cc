#include "upstream/pool.h"

#include <sys/socket.h>

#include <cerrno>

#include "upstream/h2/session.h"

namespace gatehouse::upstream {
namespace {

// An idle connection still fit for a new request: open and quiet.
bool reusable(net::Stream& s) {
  if (s.tls()) return s.tls_idle_ok();
  // EAGAIN means open and quiet: the only state fit for a new request.
  char byte;
  ssize_t n = ::recv(s.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

std::optional<net::Stream> TargetPool::take_idle(net::Clock::time_point now, bool resendable) {
  const net::Clock::duration trust =
      resendable ? net::Clock::duration(kResendableTrust) : net::Clock::duration(kTrustWindow);
  while (!idle_.empty()) {
    Idle idle = std::move(idle_.back());
    idle_.pop_back();
    if (now - idle.since < trust || reusable(idle.stream)) return std::move(idle.stream);
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
  if (now - last_sweep_ >= kSweepInterval) sweep(now);
}

// Closes the idle connections past the trust window that are no longer fit for a request; the
// others keep their order (streams cannot be move-assigned: the survivors move to a new vector,
// only when some were closed).
void TargetPool::sweep(net::Clock::time_point now) {
  last_sweep_ = now;
  size_t closed = 0;
  for (auto& idle : idle_) {
    if (now - idle.since < kTrustWindow || reusable(idle.stream)) continue;
    idle.stream.drop();
    ++closed;
  }
  if (closed == 0) return;
  std::vector<Idle> kept;
  kept.reserve(idle_.size() - closed);
  for (auto& idle : idle_)
    if (idle.stream.socket().is_open()) kept.push_back(std::move(idle));
  idle_.swap(kept);
}

std::shared_ptr<h2::Session> TargetPool::session_with_room() {
  // Connections closed or told to go away leave the list as they are passed.
  std::erase_if(sessions_, [](const auto& s) { return !s->alive() && s->streams() == 0; });
  for (auto& s : sessions_) {
    if (s->has_room()) return s;
  }
  return nullptr;
}

void TargetPool::add_session(std::shared_ptr<h2::Session> s) {
  if (retired_) {
    s->retire();  // its one stream finishes; nothing more goes on it
  } else {
    sessions_.push_back(std::move(s));
  }
}

void TargetPool::retire() {
  retired_ = true;
  for (auto& s : sessions_) s->retire();
  sessions_.clear();
  for (auto& idle : idle_) idle.stream.drop();
  idle_.clear();
  session_.reset();
}

}  // namespace gatehouse::upstream
