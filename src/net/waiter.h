// One coroutine's wait for news from other code on its thread, continued at once by whoever has
// the news: an HTTP/2 upstream stream's caller waits here for its response, and the session that
// read it resumes the caller as soon as the bytes are taken apart.
//
// Why not a timer cancelled as a wake-up (the usual Asio idiom): a cancelled wait completes
// through the io_context's queue, behind the reactor's next poll. Every such hop splits a
// request's work over one more turn of the event loop; with many turns, each turn reads and
// writes fewer bytes, and the system calls (and the peers' wake-ups) per request go up. Resumed
// here, the responses of one read are relayed in the same turn and leave in one write per
// client connection, as an event loop that runs its ready tasks before polling again (HAProxy's
// tasklets) would send them (docs/architecture.md, decision 32).
//
// The caller of resume() must be at a point where the resumed coroutine may run (not inside a
// library callback it could re-enter). A wait still pending when the io_context shuts down is
// destroyed with it, as Asio's own operations are.
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <optional>
#include <tuple>

#include "net/asio.h"

namespace gatehouse::net {

class Waiter {
 public:
  explicit Waiter(const Executor& ex);
  ~Waiter();
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;

  // Until resume(). One wait at a time. Not a coroutine of its own: the initiation's awaitable
  // is the one frame a wait needs.
  Task<std::tuple<boost::system::error_code>> wait();
  bool waiting() const { return handler_.has_value(); }
  // Continues the waiting coroutine now, on this stack, until it waits again or ends. Nothing
  // when none waits.
  void resume();

 private:
  friend class WaiterService;
  void park(asio::any_completion_handler<void(boost::system::error_code)> handler);
  void unlink();

  class WaiterService* service_;
  std::optional<asio::any_completion_handler<void(boost::system::error_code)>> handler_;
  Waiter* prev_ = nullptr;  // in the service's list while waiting
  Waiter* next_ = nullptr;
};

}  // namespace gatehouse::net
