#include "server/connection.h"

#include <algorithm>

#include "config/snapshot.h"
#include "http/parser.h"
#include "http/path.h"
#include "http/proxy_headers.h"
#include "observe/access_log.h"
#include "observe/log.h"
#include "observe/request_id.h"
#include "server/worker.h"

namespace gatehouse::server {
namespace {

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

double ms_since(net::Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(net::Clock::now() - t).count();
}

// The value of cookie `name` in a Cookie header (cookie-pair *( ";" SP cookie-pair )).
std::string_view cookie_value(const http::RequestHead& req, std::string_view name) {
  for (const auto& h : req.headers) {
    if (h.id != http::HeaderId::kCookie) continue;
    for (std::string_view rest = h.value; !rest.empty();) {
      auto semi = rest.find(';');
      auto pair = rest.substr(0, semi);
      while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
      auto eq = pair.find('=');
      if (eq != std::string_view::npos && pair.substr(0, eq) == name) return pair.substr(eq + 1);
      if (semi == std::string_view::npos) break;
      rest.remove_prefix(semi + 1);
    }
  }
  return {};
}

}  // namespace

Connection::Connection(Worker& worker, net::Socket socket,
                       std::shared_ptr<const tls::ServerContext> tls)
    : w_(worker),
      client_(std::move(socket)),
      timer_(worker.io().get_executor()),
      upstream_(worker.io().get_executor(), worker.metrics(), worker.rng()) {
  if (tls) client_.start_tls_server(std::move(tls));
  boost::system::error_code ec;
  auto ep = client_.socket().remote_endpoint(ec);
  if (!ec) {
    auto addr = ep.address();
    if (addr.is_v6() && addr.to_v6().is_v4_mapped())
      addr = net::asio::ip::make_address_v4(net::asio::ip::v4_mapped, addr.to_v6());
    client_ip_ = addr.to_string();
    if (auto bytes = config::parse_ip(client_ip_)) {
      for (const auto& cidr : w_.view()->snapshot->config.server.trusted_proxies) {
        if (cidr.contains(*bytes)) client_trusted_ = true;
      }
    }
  }
  client_.socket().set_option(net::tcp::no_delay(true), ec);
  client_.socket().non_blocking(true, ec);  // for send_now(): never block the worker
  w_.add(this);
}

Connection::~Connection() { w_.remove(this); }

void Connection::start(Worker& worker, net::Socket socket,
                       std::shared_ptr<const tls::ServerContext> tls) {
  auto self = std::make_shared<Connection>(worker, std::move(socket), std::move(tls));
  net::asio::co_spawn(
      worker.io().get_executor(), [self]() -> net::Task<> { co_await self->run(); },
      net::asio::detached);
}

void Connection::drain() {
  if (!busy_) close_now();
  close_after_ = true;
}

void Connection::close_now() {
  if (closed_) return;
  closed_ = true;
  client_.close();
  upstream_.abort();
  timer_.cancel();
}

// --- deadlines -------------------------------------------------------------------------------
// One timer per connection, re-armed lazily: moving a deadline later costs a store, and the timer
// re-arms itself when it fires early. Only a deadline earlier than the armed one touches the timer.

void Connection::set_deadline(Phase phase, net::Clock::duration after) {
  phase_ = phase;
  deadline_ = net::coarse_now() + after;
  if (deadline_ < armed_at_) arm_timer(deadline_);
}

void Connection::arm_timer(net::Clock::time_point at) {
  armed_at_ = at;
  timer_.expires_at(at);
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec != net::asio::error::operation_aborted) self->on_timer();
  });
}

void Connection::on_timer() {
  armed_at_ = net::Clock::time_point::max();
  if (closed_) return;
  // The precise clock here (rare: only when the timer fires): the coarse one can lag the timer's
  // own expiry by a tick, and would re-arm it in a tight loop until it caught up.
  if (net::Clock::now() < deadline_) {
    arm_timer(deadline_);
    return;
  }
  // A request waiting for a bulkhead slot gets 503, one waiting on the upstream 504; the client
  // connection stays usable. Any other deadline (the client's, or a body's stream) closes it.
  using Upstream = upstream::RequestSource::Phase;
  switch (phase_) {
    case Phase::kQueued:
      deadline_ = net::Clock::time_point::max();
      upstream_.deadline_passed(Upstream::kQueued);
      break;
    case Phase::kUpstreamConnect:
      deadline_ = net::Clock::time_point::max();
      upstream_.deadline_passed(Upstream::kConnect);
      break;
    case Phase::kUpstreamResponse:
      deadline_ = net::Clock::time_point::max();
      upstream_.deadline_passed(Upstream::kResponse);
      break;
    default:
      close_now();
  }
}

void Connection::set_deadline(upstream::RequestSource::Phase phase, net::Clock::duration after) {
  using Upstream = upstream::RequestSource::Phase;
  switch (phase) {
    case Upstream::kQueued: return set_deadline(Phase::kQueued, after);
    case Upstream::kConnect: return set_deadline(Phase::kUpstreamConnect, after);
    case Upstream::kResponse: return set_deadline(Phase::kUpstreamResponse, after);
    case Upstream::kStream: return set_deadline(Phase::kStream, after);
  }
}

// --- client I/O ------------------------------------------------------------------------------

bool Connection::write_client_now(std::string_view& a, std::string_view& b, bool* ok) {
  size_t total = a.size() + b.size();
  *ok = client_.send_now(a, b);
  bytes_out_ += total - a.size() - b.size();
  if (!*ok) close_after_ = true;
  return !*ok || (a.empty() && b.empty());
}

net::Task<bool> Connection::write_client(std::string_view a, std::string_view b) {
  bool ok;
  if (write_client_now(a, b, &ok)) co_return ok;
  ok = co_await client_.send_rest(a, b, &bytes_out_);
  if (!ok) close_after_ = true;
  co_return ok;
}

net::Task<bool> Connection::read_client() {
  auto [ptr, room] = in_.prepare(net::kReadChunk, net::kStreamBuffer);
  if (room == 0) co_return false;
  auto [ec, n] = co_await client_.read_some(net::asio::buffer(ptr, room));
  if (ec || n == 0) co_return false;
  in_.commit(n);
  co_return true;
}

// --- the connection loop ---------------------------------------------------------------------

// The view is the worker's own (no other core touches its count), and copied only on change.
void Connection::refresh_view() {
  if (view_ != w_.view()) {
    view_ = w_.view();
    snap_ = view_->snapshot.get();
  }
}

net::Task<> Connection::run() {
  if (client_.tls()) {
    // The handshake counts against header_read: a client that stalls it is cut off the same way.
    refresh_view();
    set_deadline(Phase::kClientRead, snap_->config.server.timeouts.header_read);
    if (!co_await client_.handshake()) {
      close_now();
      co_return;
    }
    set_deadline(Phase::kClientIdle, snap_->config.server.timeouts.idle);
  }
  while (!closed_) {
    refresh_view();  // the limits and timeouts for reading the head
    Head head = co_await read_head();
    if (head == Head::kClose) break;
    // A request starts when its head has arrived: a reload that came while this connection sat
    // idle applies to it.
    refresh_view();
    if (head == Head::kRequest) {
      co_await handle_request();
    } else {
      co_await send_error();
    }
    finish_request_log();
    busy_ = false;
    if (close_after_ || closed_) break;
  }
  if (!closed_) {
    // Lingering close (RFC 9112 9.6): stop sending, then read and drop what the client still sends
    // for a moment, so unread request bytes cannot turn our close into a reset that destroys the
    // response before the client reads it.
    client_.shutdown_send();
    set_deadline(Phase::kClientIdle, std::chrono::seconds(2));
    for (int i = 0; i < 64 && !closed_; ++i) {
      in_.consume(in_.size());
      if (!co_await read_client()) break;
    }
  }
  close_now();
}

net::Task<Connection::Head> Connection::read_head() {
  const auto& limits = snap_->config.server.limits;
  const auto& timeouts = snap_->config.server.timeouts;
  const size_t max_head = limits.max_header_bytes;
  bool started = !in_.empty();
  busy_ = started;
  if (started) {
    set_deadline(Phase::kClientRead, timeouts.header_read);
  } else {
    if (w_.draining()) co_return Head::kClose;
    set_deadline(Phase::kClientIdle, timeouts.idle);
  }
  size_t scanned = 0;
  while (true) {
    size_t end = http::find_head_end(in_.data(), scanned);
    if (end && end <= max_head) {
      // Parse in place; the views into in_ stay valid until consume_head().
      begin_request();
      bytes_in_ = end;
      http::ParseError err;
      http::ParseLimits pl{max_head, limits.max_uri_bytes, limits.max_headers};
      if (http::parse_request_head(in_.data().substr(0, end), pl, &req_, &err) ==
          http::ParseStatus::kComplete) {
        co_return Head::kRequest;
      }
      close_after_ = true;  // never forwarded, never reused
      fail(err.status, err.code, std::string(err.message));
      co_return Head::kError;
    }
    scanned = in_.size();
    if (end || in_.size() >= max_head) {
      begin_request();
      bytes_in_ = in_.size();
      close_after_ = true;
      if (in_.data().find('\n') != std::string_view::npos)
        fail(431, "header_too_large", "the request header section is too large");
      else
        fail(414, "uri_too_long", "the request line is too long");
      co_return Head::kError;
    }
    auto [ptr, room] = in_.prepare(net::kReadChunk, max_head + net::kReadChunk);
    auto [ec, n] = co_await client_.read_some(
        net::asio::buffer(ptr, std::min(room, max_head + 1 - in_.size())));
    if (ec || n == 0) co_return Head::kClose;  // closed, reset, or cut off by the timer
    in_.commit(n);
    if (!started) {
      started = busy_ = true;
      set_deadline(Phase::kClientRead, timeouts.header_read);
    }
  }
}

net::Task<> Connection::handle_request() {
  Step step = start_request();
  while (step == Step::kPaused) {
    size_t paused_at = ctx_.next_filter - 1;
    auto result = co_await await_filter(*match_.route->filters[paused_at]);
    step = run_filters(ctx_.next_filter, result);
  }
  if (step == Step::kForward) {
    if (co_await upstream_.send(*this)) {
      co_await relay_response();
    } else if (upstream_.error().status == 499) {
      close_after_ = true;  // the client went away mid-body: nobody to answer
      status_ = 499;
      log_error_ = "client_closed";
    } else {
      fail(upstream_.error());
    }
  }
  if (error_.status) co_await send_error();
}

Connection::Step Connection::start_request() {
  const auto& cfg = snap_->config;
  head_consumed_ = false;
  log_method_.assign(req_.method);
  log_path_.assign(req_.target);
  close_after_ = close_after_ || !req_.keep_alive || w_.draining();
  body_pending_ = req_.framing != http::Framing::kNone;
  req_is_head_ = req_.method == "HEAD";
  req_http10_ = req_.minor_version == 0;
  req_expect_continue_ = req_.expect_continue;
  req_framing_ = req_.framing;
  req_length_ = req_.content_length;

  // Request id: keep a well-formed one from the client, or make one.
  for (const auto& h : req_.headers) {
    if (http::iequals(h.name, cfg.observability.request_id_header) &&
        observe::valid_request_id(h.value)) {
      request_id_.assign(h.value);
      break;
    }
  }
  if (request_id_.empty()) observe::generate_request_id(w_.rng(), &request_id_);

  if (req_.framing == http::Framing::kContentLength &&
      req_.content_length > cfg.server.limits.max_body_bytes) {
    fail(413, "body_too_large", "the request body is larger than " +
                                    std::to_string(cfg.server.limits.max_body_bytes) + " bytes");
    return Step::kDone;
  }

  // Routing, filters and the upstream see one canonical path (docs/security.md).
  std::string_view why;
  switch (http::normalise_path(req_.path, cfg.server.path_normalization, &path_out_, &why)) {
    case http::PathVerdict::kUnchanged:
      break;
    case http::PathVerdict::kNormalised:
      req_.path = path_out_;
      break;
    case http::PathVerdict::kRejected:
      fail(400, "bad_request", std::string(why));
      return Step::kDone;
  }

  if (http::is_cors_preflight(req_)) {
    // Routed as the request it announces, so that the route's cors plugin answers it even when
    // the route does not accept OPTIONS; without a cors plugin there, it is a plain OPTIONS.
    std::string_view options = req_.method;
    req_.method = req_.get("access-control-request-method");
    snap_->routes.match(req_, &match_);
    req_.method = options;
    auto has_cors = [](const config::Route& r) {
      return std::any_of(r.filters.begin(), r.filters.end(), [](auto& f) { return f->name() == "cors"; });
    };
    if (!match_.route || !has_cors(*match_.route)) snap_->routes.match(req_, &match_);
  } else {
    snap_->routes.match(req_, &match_);
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
  ctx_.request = &req_;
  ctx_.io = &w_.io();
  ctx_.metrics = &w_.metrics();
  ctx_.client_ip = http::real_client_ip(req_, client_ip_, client_trusted_, cfg.server.trusted_proxies);
  ctx_.route = match_.route;
  ctx_.max_body_bytes = cfg.server.limits.max_body_bytes;
  return run_filters(0, filters::FilterStatus::kContinue);
}

// Runs the route's filters from index `from`; `paused_result` is what the filter before `from`
// answered after a pause (kContinue when starting).
Connection::Step Connection::run_filters(size_t from, filters::FilterStatus paused_result) {
  const auto& chain = match_.route->filters;
  auto status = paused_result;
  for (size_t i = from; status == filters::FilterStatus::kContinue && i < chain.size(); ++i) {
    status = chain[i]->on_request(ctx_);
    ctx_.next_filter = i + 1;
  }
  if (status == filters::FilterStatus::kPause) return Step::kPaused;
  if (status == filters::FilterStatus::kRespond) {
    http::HeaderList headers = std::move(ctx_.reply.headers);
    headers.insert(headers.end(), ctx_.response_add.begin(), ctx_.response_add.end());
    fail(ctx_.reply.status, ctx_.reply.code, ctx_.reply.message, std::move(headers));
    return Step::kDone;
  }
  return prepare_upstream_request() ? Step::kForward : Step::kDone;
}

net::Task<filters::FilterStatus> Connection::await_filter(const filters::Filter& f) {
  auto token = net::use_task;
  auto [status] = co_await net::asio::async_initiate<decltype(token), void(filters::FilterStatus)>(
      [&](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        f.resume(ctx_, [h](filters::FilterStatus s) { std::move(*h)(s); });
      },
      token);
  co_return status;
}

// Starts the upstream call: the upstream (a weighted split) here, the target in the client; then
// the head to send. False, after answering 503, when no target takes the request.
bool Connection::prepare_upstream_request() {
  const auto& cfg = snap_->config;
  const config::Route& route = *match_.route;
  size_t index = route.to.size() == 1 ? route.to[0].upstream_index
                                      : route.to[view_->splits[route.order].next()].upstream_index;
  upstream::Upstream& up = view_->upstreams[index];
  upstream::Call call;
  call.route = &route;
  call.upstream = &up;
  if (up.config().balance == config::Balance::kConsistentHash) {
    switch (up.config().hash_on.kind) {
      case config::HashOn::Kind::kClientIp: call.hash_key = client_ip_; break;
      case config::HashOn::Kind::kHeader: call.hash_key = req_.get(up.config().hash_on.name); break;
      case config::HashOn::Kind::kCookie: call.hash_key = cookie_value(req_, up.config().hash_on.name); break;
    }
  }
  call.method = req_.method;
  call.idempotency_key = !req_.get("idempotency-key").empty();
  call.head_request = req_is_head_;
  call.body_framing = req_.framing;
  call.content_length = req_.content_length;
  call.max_body_bytes = ctx_.max_body_bytes;
  call.stream_idle = cfg.server.timeouts.idle;
  if (!upstream_.start(call)) {
    fail(upstream_.error());
    return false;
  }

  // The upstream request head, built now while the request head's views are valid.
  std::string& target = target_out_;
  target.clear();
  std::string_view query = req_.query;
  if (!ctx_.upstream_remove_query.empty()) {
    query_out_.clear();
    http::append_query_without(req_.query, ctx_.upstream_remove_query, &query_out_);
    query = query_out_;
  }
  router::rewrite_target(route, match_.captures, req_.path, query, &target);
  std::string_view host = route.rewrite.host ? std::string_view(*route.rewrite.host) : req_.host;
  if (host.empty()) host = upstream_.target_address();
  http::ForwardInfo info;
  info.client_ip = client_ip_;
  info.peer_trusted = client_trusted_;
  info.proto = client_.tls() ? "https" : "http";
  info.request_id_header = cfg.observability.request_id_header;
  info.request_id = request_id_;
  info.path_and_query = target;
  info.host = host;
  info.add = &ctx_.upstream_add;
  info.remove = &ctx_.upstream_remove;
  upstream_.head().clear();
  http::build_upstream_request(req_, info, &upstream_.head());
  consume_head();
  return true;
}

// --- the request body, for the upstream client ---------------------------------------------

void Connection::body_consumed(size_t n, bool done) {
  in_.consume(n);
  bytes_in_ += n;
  if (done) body_pending_ = false;
}

net::Task<bool> Connection::body_read_more() {
  if (req_expect_continue_ && !continue_sent_) {
    continue_sent_ = true;
    if (!co_await write_client(kContinue)) co_return false;
  }
  // Not `co_return co_await read_client()`: GCC 12 miscompiles that form here (the frame is later
  // resumed with a bad `this`).
  bool more = co_await read_client();
  co_return more;
}

// --- the response ----------------------------------------------------------------------------

// Writes the response head and streams the body to the client, through the upstream client that
// reads it.
net::Task<> Connection::relay_response() {
  const http::ResponseHead& resp = upstream_.response();
  const http::Framing framing = resp.framing;
  const bool dechunk = framing == http::Framing::kChunked && req_http10_;
  if (framing == http::Framing::kUntilClose || dechunk) close_after_ = true;
  status_ = resp.status;
  http::ResponseInfo info;
  info.request_id_header = snap_->config.observability.request_id_header;
  info.request_id = request_id_;
  info.chunked = framing == http::Framing::kChunked && !dechunk;
  info.close = close_after_;
  info.client_http10 = req_http10_;
  info.add = &ctx_.response_add;
  head_out_.clear();
  http::build_client_response(resp, info, &head_out_);
  upstream_.begin_body();  // resp's views are dead from here on

  const auto idle = snap_->config.server.timeouts.idle;
  bool client_ok = true, upstream_ok = true;
  bool first = true;
  while (true) {
    // Forward what is buffered.
    spans_.clear();
    auto piece = upstream_.body_piece(dechunk ? &spans_ : nullptr);
    upstream_ok = !piece.error;
    if (first || !piece.bytes.empty()) {
      set_deadline(Phase::kStream, upstream_.budget(idle));
      if (dechunk) {
        iov_.clear();
        if (first) iov_.push_back(net::asio::buffer(head_out_));
        for (auto s : spans_) iov_.push_back(net::asio::buffer(s.data(), s.size()));
        client_ok = co_await client_.send_all(iov_, &bytes_out_);
      } else {
        // The common case (the whole response in one sendmsg) stays out of any coroutine call.
        std::string_view head = first ? std::string_view(head_out_) : std::string_view();
        std::string_view body = piece.bytes;
        if (!write_client_now(head, body, &client_ok)) client_ok = co_await write_client(head, body);
      }
      response_started_ = true;
      first = false;
      upstream_.body_sent(piece.bytes.size());
      if (!client_ok) break;
    }
    if (!upstream_ok || piece.done) break;
    set_deadline(Phase::kStream, upstream_.budget(idle));
    if (!co_await upstream_.read_body()) {
      upstream_ok = upstream_.body_ended_by_close();
      break;
    }
  }
  if (!upstream_ok || !client_ok) {
    // Mid-body failure: the status line is gone, so the only honest signal is closing.
    close_after_ = true;
    log_error_ = upstream_ok ? "client_closed" : "upstream_reset_mid_body";
  }
  upstream_.finish(upstream_ok, client_ok);
}

// --- the gateway's own answers ---------------------------------------------------------------

void Connection::fail(int status, std::string_view code, std::string message,
                      http::HeaderList headers) {
  error_ = http::ErrorResponse{status, std::string(code), std::move(message), std::move(headers)};
  status_ = status;
  log_error_ = error_.code;
}

net::Task<> Connection::send_error() {
  if (request_id_.empty()) observe::generate_request_id(w_.rng(), &request_id_);
  consume_head();
  if (body_pending_) {
    // An unread body would be taken for the next request: skip it when it is all here, else close.
    if (req_framing_ == http::Framing::kContentLength && in_.size() >= req_length_) {
      in_.consume(req_length_);
      bytes_in_ += req_length_;
    } else {
      close_after_ = true;
    }
    body_pending_ = false;
  }
  if (response_started_) {
    close_after_ = true;  // too late for a status: the client sees the connection close
    co_return;
  }
  head_out_.clear();
  http::build_error_response(error_, snap_->config.observability.request_id_header, request_id_,
                             close_after_, req_is_head_, &head_out_);
  co_await write_client(head_out_);
  response_started_ = true;
}

// --- per-request bookkeeping -----------------------------------------------------------------

// --- per-request bookkeeping -----------------------------------------------------------------

void Connection::begin_request() {
  start_ = net::Clock::now();
  wall_start_ = std::chrono::system_clock::now();
  log_method_.clear();
  log_path_.clear();
  log_route_ = nullptr;
  log_error_ = {};
  request_id_.clear();
  error_.status = 0;
  upstream_.reset();
  status_ = 0;
  bytes_in_ = bytes_out_ = 0;
  response_started_ = false;
  body_pending_ = false;
  head_consumed_ = true;
  req_is_head_ = req_http10_ = req_expect_continue_ = false;
  req_framing_ = http::Framing::kNone;
  req_length_ = 0;
  continue_sent_ = false;
}

void Connection::consume_head() {
  if (head_consumed_) return;
  in_.consume(req_.head_bytes);
  head_consumed_ = true;
}

void Connection::finish_request_log() {
  observe::AccessRecord r;
  r.start = wall_start_;
  r.request_id = request_id_;
  r.client = client_ip_;
  r.method = log_method_;
  r.path = log_path_;
  if (log_route_) r.route = log_route_->name;
  if (const auto* up = upstream_.upstream_config()) r.upstream = up->name;
  r.target = upstream_.target();
  r.status = status_;
  r.bytes_in = bytes_in_;
  r.bytes_out = bytes_out_;
  r.total_ms = ms_since(start_);
  r.upstream_ms = upstream_.answered_ms();
  r.error = log_error_;
  w_.log_access(r);
  auto& m = w_.metrics();
  m.count_request(r.route, log_method_, status_, r.total_ms / 1000, bytes_in_, bytes_out_);
  if (auto outcome = upstream_.outcome()) m.count_upstream(r.upstream, r.target, *outcome, upstream_.seconds());
}

}  // namespace gatehouse::server
