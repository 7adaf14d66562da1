#include "exchange/exchange.h"

#include <algorithm>

#include "config/units.h"
#include "exchange/background.h"
#include "exchange/composite.h"
#include "grpc/status.h"
#include "http/chunked.h"
#include "http/cookie.h"
#include "http/path.h"
#include "http/proxy_headers.h"
#include "http/url.h"
#include "observe/request_id.h"

namespace gatehouse::exchange {
namespace {

double ms_since(net::Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(net::Clock::now() - t).count();
}

}  // namespace

Exchange::Exchange(WorkerContext& worker)
    : w_(worker), upstream_(worker.io().get_executor(), worker.metrics(), worker.rng()) {
  error_.status = 0;
}

void Exchange::begin(std::shared_ptr<View> view) {
  start_ = net::Clock::now();
  wall_start_ = std::chrono::system_clock::now();
  // The view current now: a reload that came while the connection sat idle applies to it. A
  // composite's leg keeps its client's view instead, whose routes it is served on.
  if (!view) view = w_.view();
  if (view_ != view) {
    view_ = std::move(view);
    snap_ = view_->snapshot.get();
  }
  route_ = nullptr;
  req_ = nullptr;
  log_method_.clear();
  log_path_.clear();
  log_route_ = nullptr;
  log_error_ = {};
  request_id_.clear();
  trace_.reset();
  error_.status = 0;
  upstream_.reset();
  body_filtered_ = false;
  grpc_ = false;
  grpc_status_ = -1;
  grpc_deadline_ = net::Clock::time_point::max();
  status_ = 0;
  legs_log_.clear();
}

net::Task<> Exchange::serve(http::RequestHead& req, Downstream& down, const config::Route* route) {
  req_ = &req;
  route_ = route;
  Step step = start(down);
  while (step == Step::kPaused) {
    size_t paused_at = ctx_.next_filter - 1;
    auto result = co_await await_filter(*match_.route->filters[paused_at]);
    step = run_filters(ctx_.next_filter, result, down);
  }
  if (step == Step::kCompose) co_await compose(down);
  if (step == Step::kForward) {
    bool answered = false;
    if (body_filtered_ && ctx_.request_head_held)
      co_await request_body_.prime(upstream_.budget(snap_->config.server.timeouts.idle));
    if (body_filtered_ && request_body_.refused())
      answered = false;  // refused before the call: the upstream never hears of it
    else if (body_filtered_)
      answered = co_await upstream_.send(request_body_);
    else
      answered = co_await upstream_.send(down);
    if (answered && upstream_.upgraded()) {
      co_await tunnel(down);
    } else if (answered) {
      if (grpc_call()) grpc_status_ = upstream_.trailers_only_status();
      if (!run_response_filters(upstream_.response().status, &upstream_.response())) {
        upstream_.abandon();  // a filter answers instead: the upstream's body is not read
        respond_with_reply();
      } else if (rewrites_body()) {
        co_await relay_rewritten(down);
      } else {
        // A HEAD (or 304) stands for a body the filters would rewrite: its length is unknown.
        if (ctx_.response_body_watchers) ctx_.response_remove.emplace_back("content-length");
        co_await relay_response(down);
      }
    } else if (body_filtered_ && request_body_.refused()) {
      ctx_.reply = request_body_.refusal();  // a body filter's answer, or a bad or large body
      respond_with_reply();
    } else if (upstream_.error().status == 499 && down.body_timed_out()) {
      // A body that trickles in: the upstream request is cancelled (its connection closed), the
      // client told why, and its connection closed after that (the rest of its body unread).
      down.close_after();
      fail(408, "body_timeout",
           "the request body did not arrive within " +
               config::format_duration(snap_->config.server.timeouts.body_read) +
               " (server.timeouts.body_read)");
    } else if (upstream_.error().status == 499) {
      down.close_after();  // the client went away mid-body: nobody to answer
      status_ = 499;
      log_error_ = "client_closed";
    } else {
      answer_upstream_failure();
    }
  }
  if (error_.status) {
    if (request_id_.empty()) observe::generate_request_id(w_.rng(), &request_id_);
    // A gRPC client reads a status, not a JSON body: the error as a trailers-only response.
    if (grpc_ && error_.status >= 400 && !error_.body && !error_.shared_body) {
      grpc_status_ = static_cast<int>(grpc::make_trailers_only(&error_, grpc_answer_type_));
      status_ = error_.status;  // the client gets a 200; the log's error and grpc_status say why
    }
    if (ctx_.reply_body)
      co_await stream_reply(down);
    else
      co_await down.answer(error_, request_id_, trace_.trace_id());
  }
  // A full-duplex call's request body may still stream (the client's side of a gRPC call the
  // upstream ended first): the exchange ends once that has stopped.
  if (upstream_.pumping()) co_await upstream_.settle();
}

// A WebSocket handshake (RFC 6455 4.1) on a route that tunnels them: asked upstream as it came.
bool Exchange::websocket_upgrade() const {
  const http::RequestHead& req = *req_;
  return match_.route->websocket && req.upgrade && req.method == "GET" &&
         http::iequals(req.get("upgrade"), "websocket");
}

// The upstream switched to WebSocket (101): the client gets the 101, then the two connections are
// one tunnel until either side closes (websocket/tunnel.h). The response filters see the 101
// (CORS, headers); one that answers instead closes the upstream's side unused.
net::Task<> Exchange::tunnel(Downstream& down) {
  status_ = 101;
  if (!run_response_filters(101, &upstream_.response())) {
    upstream_.finish(true, false);
    respond_with_reply();
    co_return;
  }
  bool payload = false;
  down.start_response(upstream_.response(), ctx_.response_add, ctx_.response_remove, request_id_,
                      false, &payload);
  ++w_.metrics().tunnels_opened;
  const auto bytes = co_await down.tunnel(upstream_.upgraded_stream(), upstream_.upgraded_bytes(),
                                          *match_.route->websocket);
  auto& m = w_.metrics();
  ++m.tunnels_closed;
  m.tunnel_bytes_to_upstream += bytes.to_upstream;
  m.tunnel_bytes_to_client += bytes.to_client;
  upstream_.finish(true, false);  // never pooled: the connection was the tunnel's
  down.close_after();
}

net::Task<> Exchange::refuse(int status, std::string_view code, std::string message,
                             Downstream& down) {
  fail(status, code, std::move(message));
  observe::generate_request_id(w_.rng(), &request_id_);
  co_await down.answer(error_, request_id_, trace_.trace_id());
}

Exchange::Step Exchange::start(Downstream& down) {
  const auto& cfg = snap_->config;
  http::RequestHead& req = *req_;
  log_method_.assign(req.method);
  log_path_.assign(req.target);

  // Request id: keep a well-formed one from the client, or make one.
  for (const auto& h : req.headers) {
    if (http::iequals(h.name, cfg.observability.request_id_header) &&
        observe::valid_request_id(h.value)) {
      request_id_.assign(h.value);
      break;
    }
  }
  if (request_id_.empty()) observe::generate_request_id(w_.rng(), &request_id_);
  if (const auto& tracing = cfg.observability.tracing) {
    const auto since_epoch = wall_start_.time_since_epoch();
    trace_.begin(&*tracing, req, w_.rng(),
                 std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch).count());
  }

  grpc_answer_type_ = grpc::answer_content_type(req.get("content-type"));
  grpc_ = !grpc_answer_type_.empty();
  if (grpc_) {
    // grpc-timeout counts from the call's start (here: its head arrived); a malformed one is
    // ignored, as gRPC servers do.
    if (auto t = grpc::parse_timeout(req.get("grpc-timeout"))) {
      grpc_deadline_ = start_ + *t;
      grpc_deadline_text_ = "the call's grpc-timeout of " + std::string(req.get("grpc-timeout"));
    }
  }

  if (req.framing == http::Framing::kContentLength &&
      req.content_length > cfg.server.limits.max_body_bytes) {
    fail(413, "body_too_large",
         "the request body is larger than " + std::to_string(cfg.server.limits.max_body_bytes) +
             " bytes");
    return Step::kDone;
  }

  // Routing, filters and the upstream see one canonical path (docs/security.md).
  std::string_view why;
  switch (http::normalise_path(req.path, cfg.server.path_normalization, &path_out_, &why)) {
    case http::PathVerdict::kUnchanged:
      break;
    case http::PathVerdict::kNormalised:
      req.path = path_out_;
      break;
    case http::PathVerdict::kRejected:
      fail(400, "bad_request", std::string(why));
      return Step::kDone;
  }

  if (route_) {
    match_.reset();  // a composite's leg: served on its own route, which no table holds
    match_.route = route_;
  } else if (http::is_cors_preflight(req)) {
    // Routed as the request it announces, so that the route's CORS filter answers it even when
    // the route does not accept OPTIONS; without such a filter there, it is a plain OPTIONS.
    std::string_view options = req.method;
    req.method = req.get("access-control-request-method");
    snap_->routes.match(req, &match_);
    req.method = options;
    auto answers = [](const config::Route& r) {
      return std::any_of(r.filters.begin(), r.filters.end(),
                         [](auto& f) { return f->answers_preflight(); });
    };
    if (!match_.route || !answers(*match_.route)) snap_->routes.match(req, &match_);
  } else {
    snap_->routes.match(req, &match_);
  }
  if (!match_.route) {
    if (!match_.allow.empty()) {
      http::HeaderList allow;
      allow.emplace_back("Allow", match_.allow);
      fail(405, "method_not_allowed", "method " + log_method_ + " is not allowed on this path",
           std::move(allow));
    } else {
      fail(404, "no_route", "no route for " + log_method_ + " " + log_path_);
    }
    return Step::kDone;
  }
  log_route_ = match_.route;
  ctx_.reset();
  ctx_.request = &req;
  ctx_.io = &w_.io();
  ctx_.metrics = &w_.metrics();
  ctx_.worker = &w_.filter_state();
  ctx_.client_ip =
      http::real_client_ip(req, down.peer_ip(), down.peer_trusted(), cfg.server.trusted_proxies);
  ctx_.route = match_.route;
  ctx_.captures = match_.captures;
  ctx_.secure = down.secure();
  ctx_.max_body_bytes = cfg.server.limits.max_body_bytes;
  return run_filters(0, filters::FilterStatus::kContinue, down);
}

// Runs the route's filters from index `from`; `paused_result` is what the filter before `from`
// answered after a pause (kContinue when starting).
Exchange::Step Exchange::run_filters(size_t from, filters::FilterStatus paused_result,
                                     Downstream& down) {
  const auto& chain = match_.route->filters;
  auto status = paused_result;
  for (size_t i = from; status == filters::FilterStatus::kContinue && i < chain.size(); ++i) {
    ctx_.current = i;
    status = chain[i]->on_request(ctx_);
    ctx_.next_filter = i + 1;
  }
  if (status == filters::FilterStatus::kPause) return Step::kPaused;
  if (status == filters::FilterStatus::kRespond) {
    if (ctx_.background >= 0) start_background(down);
    respond_with_reply();
    return Step::kDone;
  }
  if (match_.route->aggregate) return Step::kCompose;
  return start_upstream(down) ? Step::kForward : Step::kDone;
}

// A filter's own answer (ctx_.reply), through the response phase of the filters before it (and
// its own), which may add or remove headers, or answer otherwise in turn.
void Exchange::respond_with_reply() {
  while (!run_response_filters(ctx_.reply.status, nullptr)) {
    // a filter answered otherwise (its own body): the filters before it see that answer
    ctx_.reply_body.reset();
  }
  http::ErrorResponse reply = std::move(ctx_.reply);
  if (!ctx_.response_remove.empty()) {
    std::erase_if(reply.headers, [&](const auto& h) {
      return std::any_of(ctx_.response_remove.begin(), ctx_.response_remove.end(),
                         [&](const std::string& name) { return http::iequals(h.first, name); });
    });
  }
  reply.headers.insert(reply.headers.end(), ctx_.response_add.begin(), ctx_.response_add.end());
  fail(std::move(reply));
}

// The upstream call failed (no target, refused, timed out, broken answer): the gateway's answer
// goes through the response phase of every filter, which may answer otherwise (a stale stored
// response, RFC 5861 stale-if-error).
void Exchange::answer_upstream_failure() {
  ctx_.next_filter = match_.route->filters.size();
  ctx_.reply = upstream_.error();
  respond_with_reply();
}

// The response phase: the filters whose request phase ran, last first. False when one of them
// answers instead (its answer is then in ctx_.reply).
bool Exchange::run_response_filters(int status, const http::ResponseHead* head) {
  ctx_.status = status;
  ctx_.response = head;
  const auto& chain = match_.route->filters;
  for (size_t i = ctx_.next_filter; i-- > 0;) {
    ctx_.current = i;
    if (chain[i]->on_response(ctx_) == filters::FilterStatus::kRespond) {
      ctx_.next_filter = i;  // the filters before it see its answer, if the answer is passed on
      ctx_.response = nullptr;
      ctx_.response_body_watchers = 0;  // the upstream's body is not relayed
      return false;
    }
  }
  ctx_.response = nullptr;  // its views die when the body starts
  return true;
}

net::Task<filters::FilterStatus> Exchange::await_filter(const filters::Filter& f) {
  auto token = net::use_task;
  auto [status] = co_await net::asio::async_initiate<decltype(token), void(filters::FilterStatus)>(
      [&](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        f.resume(ctx_, [h](filters::FilterStatus s) { std::move (*h)(s); });
      },
      token);
  co_return status;
}

// A composite route's answer: its legs' (exchange/composite.h), through the response phase of
// the route's filters as a filter's answer goes.
net::Task<> Exchange::compose(Downstream& down) {
  const http::RequestHead& req = *req_;
  CompositeRequest in;
  for (const auto& [name, value] : match_.captures) {
    std::string decoded;
    if (!http::percent_decode(value, &decoded)) decoded = value;
    in.captures.emplace_back(name, std::move(decoded));
  }
  in.query = req.query;
  in.headers.reserve(req.headers.size());
  for (const auto& h : req.headers) {
    std::string name(h.name);
    http::lower_ascii(name.data(), name.size());
    in.headers.emplace_back(std::move(name), h.value);
  }
  in.request_id = request_id_;
  if (trace_.on()) {
    // The legs are calls this request makes: their spans are children of its span.
    std::erase_if(in.headers, [](const auto& h) {
      return h.first == "traceparent" || h.first == "tracestate";
    });
    std::string parent;
    trace_.server_traceparent(&parent);
    in.headers.emplace_back("traceparent", std::move(parent));
    if (!trace_.tracestate().empty()) in.headers.emplace_back("tracestate", trace_.tracestate());
  }
  in.client_ip = ctx_.client_ip;
  in.secure = down.secure();
  log_route_ = match_.route;
  const auto& legs = match_.route->aggregate->legs;
  std::optional<http::ErrorResponse> refused;
  bool body_read = true;
  if (req.framing != http::Framing::kNone &&
      std::any_of(legs.begin(), legs.end(), [](const auto& l) { return l.body; })) {
    // The client's body, whole, before any leg starts (the leg that takes it sends it with its
    // length). A composite whose legs take none leaves it unread, as a filter's answer does. The
    // head's views go first: its body may take the codec's buffer.
    const http::Framing framing = req.framing;
    const uint64_t length = req.content_length;
    down.release_head();
    req_ = nullptr;
    ctx_.request = nullptr;
    body_read = co_await read_whole_body(down, framing, length, &in.body, &refused);
  }
  if (body_read) {
    co_await serve_composite(w_, view_, *match_.route, std::move(in), &ctx_.reply, &legs_log_);
  } else if (refused) {
    ctx_.reply = std::move(*refused);
  } else {
    down.close_after();  // the client went away, or stalled, mid-body: nobody to answer
    status_ = 499;
    log_error_ = "client_closed";
  }
  if (body_read || refused) {
    ctx_.next_filter = match_.route->filters.size();
    respond_with_reply();
  }
}

// The whole request body, de-framed, up to the body limit: false with *refused (400, 413) for a
// body that is not one, false alone when the client stopped sending.
net::Task<bool> Exchange::read_whole_body(Downstream& down, http::Framing framing, uint64_t length,
                                          std::string* out,
                                          std::optional<http::ErrorResponse>* refused) {
  BodyDeframer body;
  body.start(framing, length, ctx_.max_body_bytes);
  bool ok = true;
  while (ok && !body.done()) {
    const std::string_view avail = down.body_buffered();
    const size_t take = body.feed(avail, out);
    down.body_consumed(take, body.done());
    if (body.refusal()) {
      *refused = *body.refusal();
      ok = false;
    }
    if (ok && !body.done() && take == avail.size()) {
      down.set_deadline(upstream::RequestSource::Phase::kStream,
                        snap_->config.server.timeouts.idle);
      ok = co_await down.body_read_more();
    }
  }
  co_return ok;
}

// The upstream call for the request: the upstream (a weighted split) here, the target later, in
// the client.
upstream::Call Exchange::make_call(Downstream& down) {
  const config::Route& route = *match_.route;
  const http::RequestHead& req = *req_;
  size_t index = route.to.size() == 1 ? route.to[0].upstream_index
                                      : route.to[view_->splits[route.order].next()].upstream_index;
  upstream::Upstream& up = view_->upstreams[index];
  upstream::Call call;
  call.route = &route;
  call.upstream = &up;
  if (up.config().balance == config::Balance::kConsistentHash) {
    switch (up.config().hash_on.kind) {
      case config::HashOn::Kind::kClientIp:
        call.hash_key = down.peer_ip();
        break;
      case config::HashOn::Kind::kHeader:
        call.hash_key = req.get(up.config().hash_on.name);
        break;
      case config::HashOn::Kind::kCookie:
        call.hash_key = http::cookie_value(req, up.config().hash_on.name);
        break;
    }
  }
  call.method = ctx_.upstream_method.empty() ? req.method : ctx_.upstream_method;
  call.idempotency_key = !req.get("idempotency-key").empty();
  call.head_request = req.method == "HEAD";
  call.body_framing = req.framing;
  call.content_length = req.content_length;
  call.max_body_bytes = ctx_.max_body_bytes;
  call.stream_idle = snap_->config.server.timeouts.idle;
  call.upgrade = websocket_upgrade();
  call.grpc = grpc_ || ctx_.upstream_grpc;
  call.max_message_bytes = route.grpc_max_message_bytes;
  call.deadline = grpc_deadline_;
  call.deadline_text = grpc_deadline_text_;
  if (trace_.on()) call.observer = &trace_;
  return call;
}

// Starts the upstream call, and writes the head to send. False, after answering 503, when no
// target takes the request.
bool Exchange::start_upstream(Downstream& down) {
  const http::RequestHead& req = *req_;
  upstream::Call call = make_call(down);
  // A body the filters watch goes upstream as they pass it on: chunked, its length theirs (and
  // one a filter makes goes so too, when the request has none).
  body_filtered_ =
      ctx_.request_body_watchers && (req.framing != http::Framing::kNone || ctx_.request_body_made);
  if (body_filtered_) {
    request_body_.start(down, req.framing, req.content_length, ctx_.max_body_bytes,
                        match_.route->filters, ctx_);
    call.body_framing = http::Framing::kChunked;
  }
  call.duplex = down.full_duplex() && !body_filtered_;
  upstream_started_ = net::Clock::now();
  if (!upstream_.start(call)) {
    answer_upstream_failure();
    return false;
  }
  write_upstream_head(down, upstream_);
  down.release_head();
  // The head's views die with the codec's buffer (a request body is read into its bytes): the
  // response phase reads what the filters kept of it, never the head.
  req_ = nullptr;
  ctx_.request = nullptr;
  return true;
}

// The upstream request head, built while the request head's views are valid, into the client
// (started: a request without Host gets its target's address).
void Exchange::write_upstream_head(Downstream& down, upstream::Client& client) {
  const auto& cfg = snap_->config;
  const config::Route& route = *match_.route;
  const http::RequestHead& req = *req_;
  target_out_.clear();
  std::string_view query = req.query;
  if (!ctx_.upstream_remove_query.empty()) {
    query_out_.clear();
    http::append_query_without(req.query, ctx_.upstream_remove_query, &query_out_);
    query = query_out_;
  }
  if (!ctx_.upstream_target.empty())
    target_out_ = ctx_.upstream_target;  // a filter made the request another call
  else
    router::rewrite_target(route, match_.captures, req.path, query, &target_out_);
  std::string_view host = route.rewrite.host ? std::string_view(*route.rewrite.host) : req.host;
  if (host.empty()) host = client.target_address();
  http::ForwardInfo info;
  info.client_ip = down.peer_ip();
  info.peer_trusted = down.peer_trusted();
  info.proto = down.secure() ? "https" : "http";
  info.request_id_header = cfg.observability.request_id_header;
  info.request_id = request_id_;
  info.method = ctx_.upstream_method;
  info.path_and_query = target_out_;
  info.host = host;
  info.add = &ctx_.upstream_add;
  info.remove = &ctx_.upstream_remove;
  info.body_rechunked = body_filtered_;
  if (trace_.on()) {
    info.trace = &trace_.upstream_fields();
    info.replace_trace_context = trace_.replaces_w3c();
    info.replace_b3 = trace_.replaces_b3();
  }
  if (grpc_ || ctx_.upstream_grpc) {
    // TE is hop-by-hop, but a gRPC server may insist on "te: trailers" (gRPC's HTTP/2 protocol
    // requires it: it says that the client takes trailers, as the gateway does).
    ctx_.upstream_add.emplace_back("te", "trailers");
  }
  if (grpc_deadline_ != net::Clock::time_point::max()) {
    // The upstream gets what is left of the call's deadline (or of the route's timeout, when
    // sooner), so that it does not work on past the time the client waits.
    ctx_.upstream_remove.emplace_back("grpc-timeout");
    ctx_.upstream_add.emplace_back("grpc-timeout", grpc::format_timeout(client.time_left()));
  }
  if (client.asks_upgrade()) info.upgrade = "websocket";
  http::build_upstream_request(req, info, &client.head());
}

// A filter answered, and asked for the request to go upstream anyway, in the background. The
// filters after it run their request phase on that request, as they would have on the client's
// (a compressor picks its coding), so that its response reaches the asking filter as the
// client's would have; one that would answer or pause there drops the background request.
void Exchange::start_background(Downstream& down) {
  if (req_->framing != http::Framing::kNone) return;  // only requests without a body
  const auto& chain = match_.route->filters;
  const auto first = static_cast<size_t>(ctx_.background);
  filters::RequestContext bctx;
  bctx.request = req_;
  bctx.io = ctx_.io;
  bctx.metrics = ctx_.metrics;
  bctx.worker = ctx_.worker;
  bctx.client_ip = ctx_.client_ip;
  bctx.route = ctx_.route;
  bctx.secure = ctx_.secure;
  bctx.max_body_bytes = ctx_.max_body_bytes;
  bctx.slots = std::move(ctx_.background_slots);
  for (size_t i = first + 1; i < chain.size(); ++i) {
    bctx.current = i;
    if (chain[i]->on_request(bctx) != filters::FilterStatus::kContinue) return;
  }
  bctx.request = nullptr;
  bctx.client_ip = {};  // a view into the request
  bctx.next_filter = chain.size();
  bctx.current = first;
  // The client's request is answered: its upstream lists are the background request's now.
  ctx_.upstream_add.insert(ctx_.upstream_add.end(), bctx.upstream_add.begin(),
                           bctx.upstream_add.end());
  ctx_.upstream_remove.insert(ctx_.upstream_remove.end(), bctx.upstream_remove.begin(),
                              bctx.upstream_remove.end());
  ctx_.upstream_remove_query.insert(ctx_.upstream_remove_query.end(),
                                    bctx.upstream_remove_query.begin(),
                                    bctx.upstream_remove_query.end());
  auto bg = std::make_shared<Background>(w_, view_, *match_.route, first, std::move(bctx));
  if (!bg->client().start(make_call(down))) return;  // no target now: nothing to refresh with
  write_upstream_head(down, bg->client());
  bg->launch();
}

// Streams the upstream's response to the client through the codec, piece by piece as it arrives.
net::Task<> Exchange::relay_response(Downstream& down) {
  status_ = upstream_.response().status;
  bool payload = false;
  down.start_response(upstream_.response(), ctx_.response_add, ctx_.response_remove, request_id_,
                      false, &payload);
  // The head's views are dead from here on. A codec that frames payload itself and carries
  // trailers gets a chunked body's trailer section (RFC 9110 6.5) at its end.
  const bool trailers = payload && down.carries_trailers();
  upstream_.begin_body(trailers ? snap_->config.server.limits.max_header_bytes : 0);

  const auto idle = snap_->config.server.timeouts.idle;
  const auto send_timeout = snap_->config.server.timeouts.send;
  using Phase = upstream::RequestSource::Phase;
  const bool tapped = ctx_.response_body_taps && has_body();
  // A gRPC call's response messages, held to the route's grpc.max_message_bytes (the pieces of
  // the payload are there: an HTTP/2 client's codec frames it).
  const uint64_t max_message = grpc_ && payload ? match_.route->grpc_max_message_bytes : 0;
  grpc::MessageScanner messages;
  bool message_too_long = false;
  bool down_ok = true, up_ok = true;
  bool first = true;
  while (true) {
    spans_.clear();
    auto piece = upstream_.body_piece(payload || tapped ? &spans_ : nullptr);
    up_ok = !piece.error;
    for (size_t i = 0; max_message && up_ok && i < spans_.size(); ++i) {
      message_too_long = !messages.feed(spans_[i], max_message);
      up_ok = !message_too_long;
      if (message_too_long) {  // the messages before it go on, then the call ends
        spans_[i] = spans_[i].substr(0, messages.kept());
        spans_.resize(i + 1);
      }
    }
    if (tapped && up_ok) tap(spans_, piece.done);
    if (first || !piece.bytes.empty()) {
      down.set_deadline(Phase::kSend, upstream_.budget(send_timeout));
      if (payload) {
        if (!down.send_payload_now(spans_, &down_ok)) down_ok = co_await down.send_payload(spans_);
      } else {
        // The common case (the whole response in one sendmsg) stays out of any coroutine call.
        std::string_view body = piece.bytes;
        if (!down.send_now(body, &down_ok)) down_ok = co_await down.send(body);
      }
      first = false;
      upstream_.body_sent(piece.bytes.size());
      if (!down_ok) break;
    }
    if (up_ok && piece.done && trailers && !upstream_.trailers().empty()) {
      trailers_.clear();
      http::parse_trailer_fields(upstream_.trailers(), &trailers_);
      note_grpc_status(trailers_);
      const std::string_view no_data;
      if (!trailers_.empty()) down_ok = co_await down.send_chunk(no_data, &trailers_);
    }
    if (!up_ok || piece.done) break;
    down.set_deadline(Phase::kStream, upstream_.budget(idle));
    bool more = false;
    if (!upstream_.read_body_now(&more)) more = co_await upstream_.read_body();
    if (!more) {
      up_ok = upstream_.body_ended_by_close();
      if (tapped && up_ok) tap({}, true);
      break;
    }
  }
  // A gRPC client reads a status at the end of a call: a failure mid-call is told so, not cut.
  bool status_sent = false;
  if (!up_ok && grpc_ && down_ok && down.carries_trailers()) {
    http::ErrorResponse why =
        message_too_long
            ? http::ErrorResponse{413,
                                  "grpc_message_too_large",
                                  "a response message of " + std::to_string(messages.too_long()) +
                                      " bytes is larger than the route's grpc.max_message_bytes (" +
                                      std::to_string(max_message) + ")",
                                  {}}
        : upstream_.error().status
            ? upstream_.error()  // the request's side failed (its body, its client)
            : http::ErrorResponse{502,
                                  "upstream_reset_mid_body",
                                  std::string(upstream_.upstream_config()->name) +
                                      " reset the call in the middle of its response",
                                  {}};
    status_sent = co_await end_grpc_call(down, why);
    log_error_ = message_too_long           ? "grpc_message_too_large"
                 : upstream_.error().status ? std::string_view(upstream_.error().code)
                                            : "upstream_reset_mid_body";
  }
  end_relay(down, up_ok, down_ok, status_sent);
}

// Ends a gRPC call whose response is under way with a status in its trailers (the code that
// `why`, a gateway answer, stands for). False: the client is gone.
net::Task<bool> Exchange::end_grpc_call(Downstream& down, const http::ErrorResponse& why) {
  const grpc::Code code = grpc::code_for_gateway_status(why.status);
  grpc_status_ = static_cast<int>(code);
  trailers_.clear();
  grpc::append_status_fields(&trailers_, code, why.message);
  const std::string_view no_data;
  const bool ok = co_await down.send_chunk(no_data, &trailers_);
  co_return ok;
}

// A filter's answer whose body is still arriving (filters::ReplyBody): framed with its length
// like a relayed response, then sent piece by piece as the body comes, paced by this client. A
// body cut short cuts the response (the client must not take a part for the whole).
net::Task<> Exchange::stream_reply(Downstream& down) {
  std::shared_ptr<filters::ReplyBody> body = std::move(ctx_.reply_body);
  const std::string length = std::to_string(body->length());
  http::ResponseHead head;
  head.status = error_.status;
  head.minor_version = 1;
  head.framing = http::Framing::kContentLength;
  head.content_length = body->length();
  head.headers.reserve(error_.headers.size() + 1);
  for (const auto& [name, value] : error_.headers) head.headers.push_back({name, value});
  head.headers.push_back({"Content-Length", length, http::HeaderId::kContentLength});
  static const http::HeaderList kNothingToAdd;
  static const std::vector<std::string> kNothingToRemove;
  bool payload = false;
  down.start_response(head, kNothingToAdd, kNothingToRemove, request_id_, false, &payload);

  const auto send_timeout = snap_->config.server.timeouts.send;
  auto& io = w_.io();
  uint64_t sent = 0;
  bool down_ok = true;
  while (down_ok && sent < head.content_length) {
    // Waits for the next bytes on this worker: a timer that never fires, cancelled when they come.
    auto arrived = std::make_shared<std::pair<net::Timer, std::string_view>>(
        std::piecewise_construct, std::forward_as_tuple(io, net::Clock::time_point::max()),
        std::forward_as_tuple());
    body->read(sent, io, [arrived](std::string_view piece) {
      arrived->second = piece;
      arrived->first.cancel();
    });
    co_await arrived->first.async_wait(net::use_task);
    const std::string_view piece = arrived->second;
    if (piece.empty()) break;
    down.set_deadline(upstream::RequestSource::Phase::kSend, send_timeout);
    down_ok = co_await down.send(piece);
    sent += piece.size();
  }
  if (sent < head.content_length) {
    down.cut_response();
    log_error_ = down_ok ? "upstream_reset_mid_body" : "client_closed";
  }
}

// The filters that tap the response body get the next pieces of its content, last first.
void Exchange::tap(const std::vector<std::string_view>& pieces, bool end) {
  const auto& chain = match_.route->filters;
  for (size_t i = chain.size(); i-- > 0;) {
    if (!(ctx_.response_body_taps >> i & 1)) continue;
    ctx_.current = i;
    for (size_t p = 0; p < pieces.size(); ++p)
      chain[i]->on_response_tap(ctx_, pieces[p], end && p + 1 == pieces.size());
    if (end && pieces.empty()) chain[i]->on_response_tap(ctx_, {}, true);
  }
}

// A gRPC call's status, from the trailers that end its response.
void Exchange::note_grpc_status(const http::HeaderList& trailers) {
  if (!grpc_call()) return;
  for (const auto& [name, value] : trailers) {
    if (!http::iequals(name, "grpc-status")) continue;
    if (auto code = grpc::parse_code(value)) grpc_status_ = static_cast<int>(*code);
  }
}

// Filters watch the response body, and the response has one (RFC 9110 6.4.1: not for HEAD, 1xx,
// 204 and 304). A Content-Length: 0 body is watched too: a filter may add to an empty body.
bool Exchange::rewrites_body() const { return ctx_.response_body_watchers && has_body(); }

bool Exchange::has_body() const {
  const int status = upstream_.response().status;
  return log_method_ != "HEAD" && status >= 200 && status != 204 && status != 304;
}

// The response body through the filters that watch it, last first, piece by piece as it arrives;
// framed anew by the codec (chunked), with the trailer fields the filters leave at its end.
net::Task<> Exchange::relay_rewritten(Downstream& down) {
  status_ = upstream_.response().status;
  ctx_.response_remove.emplace_back("content-length");  // the filters decide the length
  // A head a filter holds (RequestContext::hold_response_head) goes when the filters pass on the
  // body's first piece, or its end: kept till then, since the upstream's views die with its body.
  bool started = !ctx_.head_held;
  if (started)
    start_rewritten(down, upstream_.response());
  else
    hold_head(upstream_.response());
  upstream_.begin_body(snap_->config.server.limits.max_header_bytes);
  trailers_.clear();

  const auto& chain = match_.route->filters;
  auto each_watcher = [&](auto&& run) {
    for (size_t i = chain.size(); i-- > 0;) {
      if (!(ctx_.response_body_watchers >> i & 1)) continue;
      ctx_.current = i;
      run(*chain[i]);
    }
  };
  const auto idle = snap_->config.server.timeouts.idle;
  const auto send_timeout = snap_->config.server.timeouts.send;
  using Phase = upstream::RequestSource::Phase;
  bool down_ok = true, up_ok = true;
  bool closed = false;  // a close-delimited body ended
  bool first = true;
  while (true) {
    spans_.clear();
    auto piece = upstream_.body_piece(&spans_);
    body_.clear();
    for (auto s : spans_) body_.append(s);
    upstream_.body_sent(piece.bytes.size());
    // Broken framing: what came before it goes on (with the head, the first time), as in
    // relay_response, and the response is then cut, never ended.
    const bool end = !piece.error && (piece.done || closed);
    if (end) {  // the trailers before the last piece, which a filter may fold them into
      http::parse_trailer_fields(upstream_.trailers(), &trailers_);
      note_grpc_status(trailers_);
      each_watcher([&](const filters::Filter& f) { f.on_response_trailers(ctx_, trailers_); });
    }
    if (!body_.empty() || end) filters::pass_response_body(chain, ctx_, body_, end);
    if (!started && (!body_.empty() || end)) {
      held_head_.status = status_ = ctx_.status;
      start_rewritten(down, held_head_);
      started = true;
    }
    if (started && (first || !body_.empty() || end)) {  // unless held, the head goes at once
      down.set_deadline(Phase::kSend, upstream_.budget(send_timeout));
      down_ok = co_await down.send_chunk(body_, end ? &trailers_ : nullptr);
      first = false;
      if (!down_ok || end) break;
    }
    if (piece.error) {
      up_ok = false;
      break;
    }
    down.set_deadline(Phase::kStream, upstream_.budget(idle));
    if (!co_await upstream_.read_body()) {
      if (!upstream_.body_ended_by_close()) {
        up_ok = false;
        break;
      }
      closed = true;
    }
  }
  if (!started) {  // nothing went to the client yet: the gateway answers for the broken call
    upstream_.finish(false, true);
    fail(502, "upstream_reset_mid_body",
         std::string(upstream_.upstream_config()->name) +
             " broke off its response before the gateway could answer");
    co_return;
  }
  end_relay(down, up_ok, down_ok);
}

void Exchange::start_rewritten(Downstream& down, const http::ResponseHead& head) {
  bool payload = true;
  down.start_response(head, ctx_.response_add, ctx_.response_remove, request_id_, true, &payload);
}

// A copy of the upstream's head for a filter that holds it (its end-to-end fields: the codec
// frames the rewritten body anew).
void Exchange::hold_head(const http::ResponseHead& head) {
  held_fields_.clear();
  for (const auto& h : head.headers) {
    if (h.hop_by_hop || h.id == http::HeaderId::kContentLength ||
        h.id == http::HeaderId::kTransferEncoding)
      continue;
    held_fields_.emplace_back(h.name, h.value);
  }
  held_head_.reset();
  held_head_.reason = {};
  held_head_.framing = head.framing;
  held_head_.headers.reserve(held_fields_.size());
  for (const auto& [name, value] : held_fields_) held_head_.headers.push_back({name, value});
}

void Exchange::end_relay(Downstream& down, bool up_ok, bool down_ok, bool status_sent) {
  if (!up_ok) {
    // Mid-body failure: the status line is gone, so the only honest signal is the connection's
    // end (a reset where a close would look like the end of the body); a gRPC call's trailers
    // told it already.
    if (!status_sent) down.cut_response();
    if (log_error_.empty()) log_error_ = "upstream_reset_mid_body";
  } else if (!down_ok) {
    down.close_after();
    log_error_ = "client_closed";
  }
  upstream_.finish(up_ok, down_ok);
}

void Exchange::fail(int status, std::string_view code, std::string message,
                    http::HeaderList headers) {
  fail(http::ErrorResponse{status, std::string(code), std::move(message), std::move(headers)});
}

void Exchange::fail(http::ErrorResponse e) {
  error_ = std::move(e);
  status_ = error_.status;
  log_error_ = error_.code;
  if (trace_.recording() && error_.status >= 400) {
    // The gateway's decision, as an event on its span: who was refused, limited or failed.
    const int s = error_.status;
    trace_.event(s == 401                                ? "gatehouse.auth_failed"
                 : s == 403                              ? "gatehouse.access_denied"
                 : s == 429                              ? "gatehouse.rate_limited"
                 : error_.code == "upstream_unavailable" ? "gatehouse.upstream_unavailable"
                                                         : "gatehouse.error",
                 "error.type", error_.code);
  }
}

void Exchange::finish(const Downstream& down) {
  observe::AccessRecord r;
  r.start = wall_start_;
  r.request_id = request_id_;
  r.trace_id = trace_.trace_id();
  r.span_id = trace_.span_id();
  r.client = down.peer_ip();
  r.method = down.client_method(log_method_);
  r.protocol = down.protocol();
  r.tls_version = down.tls_version();
  r.path = log_path_;
  if (log_route_) r.route = log_route_->name;
  if (const auto* up = upstream_.upstream_config()) r.upstream = up->name;
  r.target = upstream_.target();
  r.status = down.client_status(status_);
  r.bytes_in = down.bytes_received();
  r.bytes_out = down.bytes_sent();
  r.total_ms = ms_since(start_);
  r.upstream_ms = upstream_.answered_ms();
  r.upstream_connect_ms = upstream_.connect_ms();
  if (r.upstream_ms >= 0)
    r.upstream_total_ms =
        std::chrono::duration<double, std::milli>(net::Clock::now() - upstream_started_).count();
  r.retries = upstream_.retries();
  if (ctx_.consumer) r.consumer = ctx_.consumer->name;
  r.error = log_error_;
  if (log_route_) r.cache = ctx_.cache_result;
  r.legs = legs_log_;
  // A call a filter made (transcoding) is one once it went upstream; a gateway's answer after
  // that has the status a gRPC client would have got for it.
  const bool made_call = !grpc_ && ctx_.upstream_grpc && upstream_.outcome().has_value();
  if (made_call && grpc_status_ < 0 && error_.status >= 400)
    grpc_status_ = static_cast<int>(grpc::code_for_gateway_status(error_.status));
  const std::string_view call_path = grpc_ ? std::string_view(log_path_) : ctx_.upstream_target;
  if (grpc_ || made_call) {
    // The path is /service/method (gRPC's HTTP/2 protocol); anything else names no method.
    std::string_view path = call_path.substr(0, call_path.find('?'));
    if (path.size() > 1) path.remove_prefix(1);
    const auto slash = path.find('/');
    r.grpc_service = path.substr(0, slash);
    r.grpc_method = slash == std::string_view::npos ? "" : path.substr(slash + 1);
    r.grpc_status = grpc_status_;
  }
  w_.log_access(r);
  if (trace_.recording()) end_trace(down, r);
  auto& m = w_.metrics();
  m.count_request(r.route, r.method, r.status, r.total_ms / 1000, r.bytes_in, r.bytes_out,
                  trace_.sampled() ? trace_.trace_id() : std::string_view());
  if (grpc_ || made_call) m.count_grpc(call_path, grpc_status_, r.total_ms / 1000);
  m.count_protocol(r.protocol);
  if (auto outcome = upstream_.outcome())
    m.count_upstream(r.upstream, r.target, *outcome, upstream_.seconds());
}

// The request's spans, written for export when it is sampled (trace/request_trace.h).
void Exchange::end_trace(const Downstream& down, const observe::AccessRecord& r) {
  if (!r.cache.empty()) trace_.event("gatehouse.cache", "gatehouse.cache.result", r.cache);
  trace::RequestEnd end{r, {}, down.secure()};
  if (log_route_) {
    const config::PathMatch& p = log_route_->path;
    using Kind = config::PathMatch::Kind;
    if (p.kind == Kind::kExact || p.kind == Kind::kTemplate) end.route_template = p.text;
    if (p.kind == Kind::kPrefix) {
      route_template_.assign(p.text).append("*");
      end.route_template = route_template_;
    }
  }
  trace_.finish(end, w_.spans());
}

void Exchange::end() {
  ctx_.slots.clear();  // what filters kept for the request goes now, not at the next one
  error_.clear();      // an answer's shared body (a stored response) is not held while pooled
  upstream_.reset();   // while the view it points into is still held
  view_.reset();
  snap_ = nullptr;
  if (body_.capacity() > net::kStreamBuffer) std::string().swap(body_);
}

}  // namespace gatehouse::exchange
