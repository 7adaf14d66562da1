#include "exchange/background.h"

namespace gatehouse::exchange {

Background::Background(WorkerContext& worker, std::shared_ptr<View> view,
                       const config::Route& route, size_t first, filters::RequestContext ctx)
    : w_(worker),
      view_(std::move(view)),
      route_(route),
      first_(first),
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
    const int status = client_.response().status;
    const bool has_body = status >= 200 && status != 204 && status != 304;
    const bool passed = run_response_filters();
    if (passed && has_body && (ctx_.response_body_taps || ctx_.response_body_watchers)) {
      const bool ok = co_await pass_body();
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

// The response phase of the filters from the last to the one that asked; false when one of them
// would answer instead (then nobody takes this response).
bool Background::run_response_filters() {
  ctx_.status = client_.response().status;
  ctx_.response = &client_.response();
  bool passed = true;
  for (size_t i = ctx_.next_filter; passed && i-- > first_;) {
    ctx_.current = i;
    passed = route_.filters[i]->on_response(ctx_) == filters::FilterStatus::kContinue;
  }
  ctx_.response = nullptr;
  return passed;
}

// The whole response body through the filters' body phases; false when it did not end as framed.
net::Task<bool> Background::pass_body() {
  client_.begin_body();
  const auto idle = view_->snapshot->config.server.timeouts.idle;
  while (true) {
    spans_.clear();
    auto piece = client_.body_piece(&spans_);
    if (piece.error) co_return false;
    body_.clear();
    for (auto s : spans_) body_.append(s);
    client_.body_sent(piece.bytes.size());
    if (!body_.empty() || piece.done)
      filters::pass_response_body(route_.filters, ctx_, body_, piece.done, first_);
    if (piece.done) co_return true;
    set_deadline(Phase::kStream, client_.budget(idle));
    if (!co_await client_.read_body()) {
      if (!client_.body_ended_by_close()) co_return false;
      body_.clear();
      filters::pass_response_body(route_.filters, ctx_, body_, true, first_);
      co_return true;
    }
  }
}

}  // namespace gatehouse::exchange
