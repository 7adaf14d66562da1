#include "exchange/background.h"

namespace gatehouse::exchange {

Background::Background(WorkerContext& worker, std::shared_ptr<View> view,
                       const filters::Filter& filter, filters::RequestContext ctx)
    : w_(worker),
      view_(std::move(view)),
      filter_(filter),
      ctx_(std::move(ctx)),
      client_(worker.io().get_executor(), worker.metrics(), worker.rng()),
      timer_(worker.io().get_executor()) {}

void Background::launch() {
  net::asio::co_spawn(w_.io().get_executor(), run(shared_from_this()), net::asio::detached);
}

void Background::set_deadline(Phase phase, net::Clock::duration after) {
  phase_ = phase;
  timer_.expires_after(after);
  timer_.async_wait([self = shared_from_this(), phase](boost::system::error_code ec) {
    if (ec) return;
    if (phase == Phase::kStream || phase == Phase::kSend)
      self->client_.abort();
    else
      self->client_.deadline_passed(phase);
  });
}

// `self` keeps the call alive (nobody else holds it) until its coroutine ends.
net::Task<> Background::run(std::shared_ptr<Background> self) {
  (void)self;
  const bool answered = co_await client_.send(*this);
  if (answered) {
    ctx_.status = client_.response().status;
    ctx_.response = &client_.response();
    filter_.on_response(ctx_);
    ctx_.response = nullptr;
    const int status = ctx_.status;
    const bool has_body = status >= 200 && status != 204 && status != 304;
    if (ctx_.response_body_taps && has_body) {
      const bool ok = co_await tap_body();
      client_.finish(ok, true);
    } else {
      client_.abandon();
    }
  }
  timer_.cancel();
  if (auto outcome = client_.outcome()) {
    w_.metrics().count_upstream(client_.upstream_config()->name, client_.target(), *outcome,
                                client_.seconds());
  }
}

void Background::tap(bool end) {
  for (size_t i = 0; i < spans_.size(); ++i)
    filter_.on_response_tap(ctx_, spans_[i], end && i + 1 == spans_.size());
  if (end && spans_.empty()) filter_.on_response_tap(ctx_, {}, true);
}

// The whole response body, through the filter's tap; false when it did not end as framed.
net::Task<bool> Background::tap_body() {
  client_.begin_body();
  const auto idle = view_->snapshot->config.server.timeouts.idle;
  while (true) {
    spans_.clear();
    auto piece = client_.body_piece(&spans_);
    if (piece.error) co_return false;
    tap(piece.done);
    client_.body_sent(piece.bytes.size());
    if (piece.done) co_return true;
    set_deadline(Phase::kStream, client_.budget(idle));
    if (!co_await client_.read_body()) {
      if (!client_.body_ended_by_close()) co_return false;
      spans_.clear();
      tap(true);
      co_return true;
    }
  }
}

}  // namespace gatehouse::exchange
