#include "net/waiter.h"

namespace gatehouse::net {

// The waits pending on one io_context, so that its shutdown destroys them (and the coroutines
// they hold) as it destroys its own pending operations; without it, a coroutine holding the
// object it waits on would never be freed.
class WaiterService final : public asio::execution_context::service {
 public:
  using key_type = WaiterService;
  static inline asio::execution_context::id id;
  explicit WaiterService(asio::execution_context& ctx) : service(ctx) {}

  void add(Waiter* w) {
    w->prev_ = nullptr;
    w->next_ = head_;
    if (head_) head_->prev_ = w;
    head_ = w;
  }
  void remove(Waiter* w) {
    (w->prev_ ? w->prev_->next_ : head_) = w->next_;
    if (w->next_) w->next_->prev_ = w->prev_;
    w->prev_ = w->next_ = nullptr;
  }

 private:
  void shutdown() override {
    // A destroyed coroutine may destroy other waiters: take one at a time from the head.
    while (Waiter* w = head_) {
      remove(w);
      auto handler = std::move(*w->handler_);
      w->handler_.reset();
    }
  }

  Waiter* head_ = nullptr;
};

Waiter::Waiter(const Executor& ex)
    : service_(&asio::use_service<WaiterService>(asio::query(ex, asio::execution::context))) {}

Waiter::~Waiter() { unlink(); }

Task<std::tuple<boost::system::error_code>> Waiter::wait() {
  return asio::async_initiate<decltype(use_task), void(boost::system::error_code)>(
      [this](auto handler) { park(std::move(handler)); }, use_task);
}

void Waiter::park(asio::any_completion_handler<void(boost::system::error_code)> handler) {
  unlink();
  handler_.emplace(std::move(handler));
  service_->add(this);
}

void Waiter::resume() {
  if (!handler_) return;
  unlink();
  auto handler = std::move(*handler_);
  handler_.reset();
  std::move(handler)(boost::system::error_code());
}

void Waiter::unlink() {
  if (handler_) service_->remove(this);
}

}  // namespace gatehouse::net
