// A request sent upstream in the background, after its client was answered: a cache's
// stale-while-revalidate refresh (RFC 5861 3). It goes through the same upstream client as any
// proxied request (the balancer, pools, breakers, retries, the route's timeout), on the worker
// that served the client, and its response goes through the response phases of the filter that
// asked for it and of those after it (which ran their request phase on it: a compressor codes it
// as it would have for the client), in a context of its own. Nobody waits for it: it lives on its
// own (holding the view it started with) until its response ends or a deadline passes.
#pragma once

#include <memory>
#include <string>

#include "exchange/context.h"
#include "filters/filter.h"
#include "net/asio.h"
#include "upstream/client.h"

namespace gatehouse::exchange {

class Background final : public upstream::RequestSource,
                         public std::enable_shared_from_this<Background> {
 public:
  // `ctx`: the context for the response (the slots, route, metrics, worker state) of the filters
  // from `first` (the one that asked) to the end of the route's chain.
  Background(WorkerContext& worker, std::shared_ptr<View> view, const config::Route& route,
             size_t first, filters::RequestContext ctx);

  // The client to start (Client::start) and write the request head into; then launch().
  upstream::Client& client() { return client_; }
  void launch();

  // RequestSource: a background request has no body, and its deadlines are its own.
  std::string_view body_buffered() override { return {}; }
  void body_consumed(size_t, bool) override {}
  net::Task<bool> body_read_more() override { co_return false; }
  void interim_response(const http::ResponseHead&) override {}
  void set_deadline(Phase phase, net::Clock::duration after) override;

 private:
  net::Task<> run(std::shared_ptr<Background> self);
  bool run_response_filters();
  net::Task<bool> pass_body();

  WorkerContext& w_;
  std::shared_ptr<View> view_;  // keeps the upstream records (and the route) alive
  const config::Route& route_;
  size_t first_;
  filters::RequestContext ctx_;
  upstream::Client client_;
  net::Timer timer_;
  Phase phase_ = Phase::kQueued;
  std::vector<std::string_view> spans_;
  std::string body_;
};

}  // namespace gatehouse::exchange
