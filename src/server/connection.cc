#include "server/connection.h"

#include <algorithm>
#include <charconv>

#include "config/snapshot.h"
#include "http/date.h"
#include "http/parser.h"
#include "http/path.h"
#include "http/proxy_headers.h"
#include "observe/access_log.h"
#include "observe/log.h"
#include "observe/request_id.h"
#include "server/worker.h"
#include "tls/client_context.h"
#include "upstream/pool.h"

namespace gatehouse::server {
namespace {

constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kStreamBuffer = 64 * 1024;     // per direction while streaming a body
constexpr size_t kMaxUpstreamHead = 64 * 1024;  // response heads larger than this are refused
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

bool idempotent(std::string_view m) {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "PUT" || m == "DELETE" || m == "TRACE";
}

double ms_since(net::Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(net::Clock::now() - t).count();
}

// Closes the socket only: the timer's way out, and no TLS record is written on a connection
// given up on.
void close_quietly(net::Socket& s) {
  boost::system::error_code ignored;
  s.close(ignored);
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

// Keeps a balancer's in-flight count true on every path out of an upstream exchange.
class InFlight {
 public:
  InFlight(upstream::Balancer& b, size_t t) : b_(b), t_(t) { b_.started(t_); }
  ~InFlight() { b_.finished(t_); }

 private:
  upstream::Balancer& b_;
  size_t t_;
};

}  // namespace

Connection::Connection(Worker& worker, net::Socket socket,
                       std::shared_ptr<const tls::ServerContext> tls)
    : w_(worker), client_(std::move(socket)), timer_(worker.io().get_executor()) {
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
  boost::system::error_code ec;
  client_.close();
  if (upstream_) upstream_->socket().close(ec);
  stop_waiting_for_slot();
  timer_.cancel();
}

// --- deadlines -------------------------------------------------------------------------------
// One timer per connection, re-armed lazily: moving a deadline later costs a store, and the timer
// re-arms itself when it fires early. Only a deadline earlier than the armed one touches the timer.

// The time an upstream phase may take: its own timeout, cut short by the route's `timeout`, which
// covers the whole exchange (connect, request, response head and body).
net::Clock::duration Connection::upstream_budget(net::Clock::duration after) {
  route_deadline_binds_ = false;
  if (ex_.route_deadline == net::Clock::time_point::max()) return after;
  auto left = ex_.route_deadline - net::coarse_now();
  if (left < after) {
    route_deadline_binds_ = true;
    return std::max<net::Clock::duration>(left, net::Clock::duration::zero());
  }
  return after;
}

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
  if (phase_ == Phase::kQueued) {
    deadline_ = net::Clock::time_point::max();
    stop_waiting_for_slot();  // the request gets 503; the client connection stays usable
  } else if (phase_ == Phase::kUpstreamConnect || phase_ == Phase::kUpstreamResponse) {
    // The exchange sees the flag and answers 504; the client connection stays usable.
    upstream_timed_out_ = true;
    if (upstream_) close_quietly(upstream_->socket());
    deadline_ = net::Clock::time_point::max();
  } else {
    close_now();
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
  auto [ptr, room] = in_.prepare(kReadChunk, kStreamBuffer);
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
    auto [ptr, room] = in_.prepare(kReadChunk, max_head + kReadChunk);
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
  while (step == Step::kForward) {
    retry_reason_ = RetryReason::kNone;
    if (co_await forward() == Outcome::kRetry) {
      // A reused keep-alive connection died before answering (the upstream closed it as we sent):
      // safe to send an idempotent request once more, at once (RFC 9110 9.2.2), its body from
      // the replay copy.
      ex_.retry_allowed = false;
      ex_.new_connection = true;
      continue;
    }
    // A retryable status was decided on where it was read (nothing was recorded for the client).
    if (retry_reason_ == RetryReason::kNone ||
        (retry_reason_ != RetryReason::kStatus && !may_retry(retry_reason_)))
      break;
    co_await before_retry();
    if (!admit_target()) break;  // every breaker open now: answered 503
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

// Moves ex_.target on, past targets whose circuit breaker refuses, to the first that admits a
// request (only upstreams with breakers pay for a clock read). False, after answering 503, when
// no target does.
bool Connection::admit_target() {
  auto& state = view_->upstreams[ex_.up_index];
  auto now = ex_.up->breaker ? net::Clock::now() : net::Clock::time_point();
  const auto& health = snap_->health[ex_.up_index];
  auto admits = [&](size_t t) {
    if (!health.empty() && !health[t]->healthy()) return false;  // active health checks
    if (!ex_.up->breaker) return true;
    auto before = state.breakers[t].state();
    bool ok = state.breakers[t].allow(now);
    if (state.breakers[t].state() != before) breaker_moved(t);  // open -> half-open
    return ok;
  };
  if (!admits(ex_.target)) {
    // Its breaker is open: the next target whose breaker lets a request through, if any.
    const size_t n = state.breakers.size();
    size_t k = 1;
    while (k < n && !admits((ex_.target + k) % n)) ++k;
    if (k == n) {
      auto soonest = net::Clock::time_point::max();
      for (const auto& b : state.breakers) soonest = std::min(soonest, b.open_until());
      auto wait = std::chrono::ceil<std::chrono::seconds>(soonest - now).count();
      http::HeaderList retry_after;
      retry_after.emplace_back("Retry-After", std::to_string(std::max<int64_t>(1, wait)));
      fail(503, "upstream_unavailable",
           ex_.up->name + " has no target available (unhealthy, or its circuit breaker open)",
           std::move(retry_after));
      return false;
    }
    ex_.target = (ex_.target + k) % n;
  }
  ex_.pool = state.pools[ex_.target].get();
  return true;
}


// The route's `retry`, else the upstream's; without one, only the immediate retry of a dead pooled
// connection happens.
const config::RetryPolicy* Connection::retry_policy() const {
  return match_.route->retry ? &*match_.route->retry : ex_.up->retry ? &*ex_.up->retry : nullptr;
}

// A try may be retried when its failure is one the policy names, the request is safe to send again
// (RFC 9110 9.2.2: an idempotent method or an Idempotency-Key, and its body, if any, kept whole
// for replay up to `max_replay_body` -- or not yet read at all, after a connect failure), tries are
// left, and the retry budget allows: each request to the upstream earns `budget` of a
// retry and each retry spends one (as Finagle's retry budget; a reserve of 3 per worker to start),
// so retries stay under `budget` of requests plus a constant, and a brownout cannot multiply
// the load.
bool Connection::may_retry(RetryReason reason) {
  const config::RetryPolicy* p = retry_policy();
  if (!p || tries_ >= p->attempts || response_started_) return false;
  bool wanted = (reason == RetryReason::kConnectFailure && p->on_connect_failure) ||
                (reason == RetryReason::kReset && p->on_reset) ||
                (reason == RetryReason::kTimeout && p->on_timeout) ||
                (reason == RetryReason::kStatus &&
                 std::find(p->on_status.begin(), p->on_status.end(), resp_.status) != p->on_status.end());
  if (!wanted) return false;
  // An upstream's Retry-After (delta-seconds or an HTTP-date, RFC 9110 10.2.3) is honoured: the
  // retry waits that long, if the route's deadline (or, without one, the upstream's response
  // timeout) leaves room; else the answer goes to the client as it is.
  retry_after_ = net::Clock::duration::zero();
  if (reason == RetryReason::kStatus) {
    std::string_view ra = resp_.get("retry-after");
    if (!ra.empty()) {
      net::Clock::duration wait;
      uint64_t seconds = 0;
      auto [end, ec] = std::from_chars(ra.data(), ra.data() + ra.size(), seconds);
      if (ec == std::errc() && end == ra.data() + ra.size()) {
        wait = std::chrono::seconds(std::min<uint64_t>(seconds, 86400));
      } else if (auto date = http::parse_http_date(ra)) {
        wait = std::chrono::duration_cast<net::Clock::duration>(
            std::max(std::chrono::system_clock::duration::zero(), *date - std::chrono::system_clock::now()));
      } else {
        return false;  // unreadable: the answer goes to the client
      }
      auto room = ex_.route_deadline != net::Clock::time_point::max()
                      ? ex_.route_deadline - net::coarse_now()
                      : net::Clock::duration(ex_.up->response_timeout);
      if (wait >= room) return false;
      retry_after_ = wait;
    }
  }
  if (!ex_.idempotent || !body_replayable()) return false;
  auto& state = view_->upstreams[ex_.up_index];
  auto& m = w_.metrics().upstreams[ex_.up->name];
  if (state.retry_tokens < 1) {
    ++m.retry_budget_exhausted;
    return false;
  }
  state.retry_tokens -= 1;
  ++m.retries[static_cast<size_t>(reason) - 1];
  return true;
}

// Full jitter (a random wait up to backoff * 2^try, capped by max_backoff), within the route's
// deadline; then the next try goes to another target when there is one.
net::Task<> Connection::before_retry() {
  const config::RetryPolicy& p = *retry_policy();
  ++tries_;
  auto cap = std::min<net::Clock::duration>(p.max_backoff, p.backoff * (1u << std::min(tries_ - 1, 20u)));
  auto wait = net::Clock::duration(static_cast<int64_t>(w_.rng().next() % (cap.count() + 1)));
  wait = std::max(wait, retry_after_);
  if (ex_.route_deadline != net::Clock::time_point::max())
    wait = std::min(wait, std::max(net::Clock::duration::zero(), ex_.route_deadline - net::coarse_now()));
  auto& state = view_->upstreams[ex_.up_index];
  if (wait.count() > 0) {
    net::Timer t(w_.io().get_executor(), wait);
    co_await t.async_wait(net::use_task);
  }
  error_ = {};
  status_ = 0;
  log_error_ = {};
  up_.consume(up_.size());
  const size_t n = state.pools.size();
  if (n > 1) ex_.target = (ex_.target + 1 + w_.rng().next() % (n - 1)) % n;  // another target
}

bool Connection::prepare_upstream_request() {
  const auto& cfg = snap_->config;
  const config::Route& route = *match_.route;
  // The upstream (a weighted split) and the target (the load balancer).
  ex_ = Exchange{};
  if (route.timeout.count() > 0) ex_.route_deadline = net::coarse_now() + route.timeout;
  ex_.up_index = route.to.size() == 1 ? route.to[0].upstream_index
                                      : route.to[view_->splits[route.order].next()].upstream_index;
  ex_.up = &cfg.upstreams[ex_.up_index];
  log_upstream_ = ex_.up;
  upstream::PickInput pick;
  if (ex_.up->balance == config::Balance::kConsistentHash) {
    switch (ex_.up->hash_on.kind) {
      case config::HashOn::Kind::kClientIp: pick.hash_key = client_ip_; break;
      case config::HashOn::Kind::kHeader: pick.hash_key = req_.get(ex_.up->hash_on.name); break;
      case config::HashOn::Kind::kCookie: pick.hash_key = cookie_value(req_, ex_.up->hash_on.name); break;
    }
  }
  ex_.target = view_->upstreams[ex_.up_index].balancer.pick(pick);
  if (!admit_target()) return false;
  const bool safe_method = idempotent(req_.method);
  ex_.retry_allowed = safe_method;
  ex_.idempotent = safe_method || !req_.get("idempotency-key").empty();
  tries_ = 0;
  const config::RetryPolicy* p = retry_policy();
  if (p) {
    auto& tokens = view_->upstreams[ex_.up_index].retry_tokens;
    tokens = std::min(tokens + p->budget, 3 + 100 * p->budget);  // what a request earns, capped
  }
  // A body that may be sent again is kept as it is read, while it fits: for the policy's retries,
  // and for the immediate retry of an idempotent method on a pooled connection found dead.
  if (safe_method || (p && p->attempts > 0 && ex_.idempotent))
    replay_limit_ = p ? p->max_replay_body : config::RetryPolicy{}.max_replay_body;
  keep_replay_ = replay_limit_ > 0 && !(req_.framing == http::Framing::kContentLength &&
                                         req_.content_length > replay_limit_);

  // The upstream request head, built now while the request head's views are valid.
  target_out_.clear();
  std::string_view query = req_.query;
  if (!ctx_.upstream_remove_query.empty()) {
    query_out_.clear();
    http::append_query_without(req_.query, ctx_.upstream_remove_query, &query_out_);
    query = query_out_;
  }
  router::rewrite_target(route, match_.captures, req_.path, query, &target_out_);
  std::string_view host = route.rewrite.host ? std::string_view(*route.rewrite.host) : req_.host;
  if (host.empty()) host = ex_.pool->address();
  http::ForwardInfo info;
  info.client_ip = client_ip_;
  info.peer_trusted = client_trusted_;
  info.proto = client_.tls() ? "https" : "http";
  info.request_id_header = cfg.observability.request_id_header;
  info.request_id = request_id_;
  info.path_and_query = target_out_;
  info.host = host;
  info.add = &ctx_.upstream_add;
  info.remove = &ctx_.upstream_remove;
  head_out_.clear();
  http::build_upstream_request(req_, info, &head_out_);
  consume_head();
  return true;
}

// --- the upstream exchange -------------------------------------------------------------------

net::Task<Connection::Outcome> Connection::forward() {
  // The upstream's bulkhead: when full, a place in its bounded queue, or 503 at once.
  upstream::Bulkhead* bulkhead = snap_->bulkheads[ex_.up_index].get();
  if (bulkhead && !bulkhead->try_enter()) {
    bool admitted = false;
    if (bulkhead->max_pending() > 0) {
      admitted = co_await wait_for_slot(*bulkhead);
    } else {
      fail_overloaded(*bulkhead, false);
    }
    if (!admitted) co_return Outcome::kDone;
  }
  struct Leave {
    upstream::Bulkhead* b;
    ~Leave() {
      if (b) b->leave();
    }
  } leave{bulkhead};
  InFlight in_flight(view_->upstreams[ex_.up_index].balancer, ex_.target);
  log_target_ = ex_.pool->address();
  ex_.start = net::Clock::now();
  std::optional<net::Stream> sock = co_await lease_upstream();
  if (!sock) co_return Outcome::kDone;
  upstream_ = &*sock;
  struct Detach {  // the timer must never touch a socket that is gone
    Connection* c;
    ~Detach() { c->upstream_ = nullptr; }
  } detach{this};

  Sent sent = co_await send_request(*sock);
  if (sent != Sent::kOk) {
    sock->drop();
    switch (sent) {
      case Sent::kUpstreamError:
        if (may_resend_at_once()) co_return Outcome::kRetry;
        retry_reason_ = RetryReason::kReset;
        upstream_done(observe::UpstreamOutcome::kReset);
        fail_upstream(502, "upstream_reset", "closed the connection while the request was being sent");
        break;
      case Sent::kBadBody:
        fail(400, "bad_request", "malformed chunked request body");
        break;
      case Sent::kTooLarge:
        fail(413, "body_too_large",
             "the request body is larger than " + std::to_string(ctx_.max_body_bytes) + " bytes");
        break;
      default:  // the client went away mid-body: nobody to answer
        close_after_ = true;
        status_ = 499;
        log_error_ = "client_closed";
        break;
    }
    co_return Outcome::kDone;
  }

  Outcome outcome = Outcome::kDone;
  size_t head_len = co_await read_response_head(*sock, &outcome);
  if (head_len == 0) {
    sock->drop();
    up_.consume(up_.size());
    co_return outcome;
  }
  // A new TLS connection: its session (TLS 1.3: the ticket, which came before the response)
  // lets the next new connection to this target skip the full handshake.
  if (!ex_.reused && sock->tls()) ex_.pool->keep_session(sock->resumable_session());
  co_await relay_response(*sock, head_len);
  co_return Outcome::kDone;
}

// Waits in the bulkhead's queue for a slot, at most timeouts.queue (within the route's timeout).
// The slot comes from whichever worker frees one: its wake-up is posted to this worker.
net::Task<bool> Connection::wait_for_slot(upstream::Bulkhead& b) {
  auto waiter = std::make_shared<upstream::Bulkhead::Waiter>();
  auto queued = upstream::Bulkhead::Queued::kFull;
  set_deadline(Phase::kQueued, upstream_budget(ex_.up->queue_timeout));
  queued_in_ = &b;
  queued_ = waiter;
  auto token = net::use_task;
  auto [granted] = co_await net::asio::async_initiate<decltype(token), void(bool)>(
      [&](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        waiter->wake = [h, ex = w_.io().get_executor()](bool granted) {
          net::asio::post(ex, [h, granted] { std::move(*h)(granted); });
        };
        queued = b.wait(waiter);
        if (queued != upstream::Bulkhead::Queued::kWaiting)
          waiter->wake(queued == upstream::Bulkhead::Queued::kGranted);
      },
      token);
  queued_in_ = nullptr;
  queued_.reset();
  if (queued == upstream::Bulkhead::Queued::kWaiting) ++w_.metrics().upstreams[ex_.up->name].queued;
  if (!granted) fail_overloaded(b, queued == upstream::Bulkhead::Queued::kWaiting);
  co_return granted;
}

void Connection::stop_waiting_for_slot() {
  if (queued_ && queued_in_->cancel(queued_.get())) queued_->wake(false);
  queued_in_ = nullptr;
  queued_.reset();
}

// 503 upstream_overloaded: every slot taken and the queue full (or none), or no slot freed in time.
void Connection::fail_overloaded(const upstream::Bulkhead& b, bool waited) {
  ++w_.metrics().upstreams[ex_.up->name].rejected;
  http::HeaderList retry_after;
  retry_after.emplace_back("Retry-After", "1");
  std::string why =
      waited ? "freed no request slot within " +
                   (route_deadline_binds_ ? "the route's timeout of " + config::format_duration(match_.route->timeout)
                                          : config::format_duration(ex_.up->queue_timeout) + " (timeouts.queue)")
             : "already has " + std::to_string(b.limit()) + " requests in flight (max_concurrent_requests)" +
                   (b.max_pending() ? " and " + std::to_string(b.max_pending()) + " waiting (max_pending)" : "");
  fail(503, "upstream_overloaded", ex_.up->name + " " + why, std::move(retry_after));
}

net::Task<std::optional<net::Stream>> Connection::lease_upstream() {
  std::optional<net::Stream> sock = ex_.new_connection ? std::nullopt : ex_.pool->take_idle(ex_.start);
  ex_.reused = sock.has_value();
  upstream_timed_out_ = false;
  if (sock) co_return sock;
  sock.emplace(w_.io().get_executor());
  upstream_ = &*sock;
  set_deadline(Phase::kUpstreamConnect, upstream_budget(ex_.up->connect_timeout));
  auto [ec] = co_await sock->socket().async_connect(ex_.pool->endpoint(), net::use_task);
  if (ec) {
    upstream_ = nullptr;
    retry_reason_ = RetryReason::kConnectFailure;
    upstream_done(upstream_timed_out_ ? observe::UpstreamOutcome::kTimeout
                                      : observe::UpstreamOutcome::kConnectError);
    if (upstream_timed_out_) {
      fail(504, "upstream_connect_timeout",
           ex_.up->name + " did not accept a connection within " +
               (route_deadline_binds_ ? "the route's timeout of " + config::format_duration(match_.route->timeout)
                                      : config::format_duration(ex_.up->connect_timeout)));
    } else {
      fail_upstream(502, "upstream_connect_failed", "refused the connection: " + ec.message());
    }
    co_return std::nullopt;
  }
  boost::system::error_code ignored;
  sock->socket().set_option(net::tcp::no_delay(true), ignored);
  sock->socket().non_blocking(true, ignored);
  if (ex_.up->tls) {
    bool ok = co_await upstream_handshake(*sock);
    if (!ok) {
      upstream_ = nullptr;
      co_return std::nullopt;
    }
  }
  upstream_ = nullptr;
  co_return sock;
}

// The client side of TLS to the upstream, under what is left of the connect deadline: connect and
// handshake together take at most timeouts.connect.
net::Task<bool> Connection::upstream_handshake(net::Stream& up) {
  const tls::ClientContext& ctx = *ex_.up->tls;
  std::string_view name = ctx.server_name_for(ex_.up->targets[ex_.target].host);
  std::string why = "cannot make a TLS session for '" + std::string(name) + "'";
  if (up.start_tls_client(ctx, name, ex_.pool->take_session())) {
    bool ok = co_await up.handshake(&why);
    if (ok) co_return true;
  }
  upstream_done(upstream_timed_out_ ? observe::UpstreamOutcome::kTimeout
                                    : observe::UpstreamOutcome::kConnectError);
  if (upstream_timed_out_) {
    fail(504, "upstream_connect_timeout",
         ex_.up->name + " did not complete the TLS handshake within " +
             config::format_duration(ex_.up->connect_timeout));
  } else {
    fail_upstream(502, "upstream_tls_failed", "TLS handshake failed: " + why);
  }
  co_return false;
}

// Sends the request head and streams the body (validated, passed through unchanged). A retry
// first sends again what earlier tries read of the body (kept in replay_), then reads on.
net::Task<Connection::Sent> Connection::send_request(net::Stream& up) {
  set_deadline(Phase::kStream, upstream_budget(snap_->config.server.timeouts.idle));
  if (req_framing_ == http::Framing::kChunked && body_read_ == 0) chunked_.reset();
  bool done = !body_pending_;
  bool first = true;
  if (body_read_ > 0) {
    std::string_view head = head_out_, body = replay_;
    bool ok = up.send_now(head, body);
    if (ok && (!head.empty() || !body.empty())) ok = co_await up.send_rest(head, body, nullptr);
    if (!ok) co_return Sent::kUpstreamError;
    first = false;
  }
  while (true) {
    // What of the buffered bytes belongs to the body.
    std::string_view avail = in_.data();
    size_t take = 0;
    if (!done && req_framing_ == http::Framing::kContentLength) {
      take = static_cast<size_t>(std::min<uint64_t>(req_length_ - body_read_, avail.size()));
      done = body_read_ + take == req_length_;
    } else if (!done) {
      auto r = chunked_.feed(avail);
      if (r.error) co_return Sent::kBadBody;
      if (chunked_.payload_bytes() > ctx_.max_body_bytes) co_return Sent::kTooLarge;
      take = r.consumed;
      done = r.done;
    }
    std::string_view head = first ? std::string_view(head_out_) : std::string_view();
    std::string_view body = avail.substr(0, take);
    if (keep_replay_ && take) {
      keep_replay_ = replay_.size() + take <= replay_limit_;
      if (keep_replay_) replay_.append(body);
    }
    bool ok = up.send_now(head, body);
    if (ok && (!head.empty() || !body.empty())) ok = co_await up.send_rest(head, body, nullptr);
    in_.consume(take);
    bytes_in_ += take;
    body_read_ += take;
    if (!ok) co_return Sent::kUpstreamError;
    if (done) break;
    if (req_expect_continue_ && !continue_sent_) {
      continue_sent_ = true;
      if (!co_await write_client(kContinue)) co_return Sent::kClientError;
    }
    first = false;
    set_deadline(Phase::kStream, upstream_budget(snap_->config.server.timeouts.idle));
    if (!co_await read_client()) co_return Sent::kClientError;
  }
  body_pending_ = false;
  co_return Sent::kOk;
}

// Reads the response head into up_, skipping 1xx interim responses. Returns its length, or 0
// after recording the failure (or asking for a retry through *outcome).
net::Task<size_t> Connection::read_response_head(net::Stream& up, Outcome* outcome) {
  set_deadline(Phase::kUpstreamResponse, upstream_budget(ex_.up->response_timeout));
  http::ParseLimits limits{kMaxUpstreamHead, kMaxUpstreamHead, 1000};
  size_t scanned = 0;
  while (true) {
    if (size_t end = http::find_head_end(up_.data(), scanned)) {
      http::ParseError err;
      if (http::parse_response_head(up_.data().substr(0, end), limits, req_is_head_ ? "HEAD" : "GET",
                                    &resp_, &err) != http::ParseStatus::kComplete) {
        upstream_done(observe::UpstreamOutcome::kReset);
        fail_upstream(502, "upstream_bad_response", "sent an invalid response: " + std::string(err.message));
        co_return 0;
      }
      if (resp_.status >= 100 && resp_.status < 200 && resp_.status != 101) {
        up_.consume(end);  // 100 Continue, 103 Early Hints: not forwarded
        scanned = 0;
        continue;
      }
      if (resp_.status == 101) {
        upstream_done(observe::UpstreamOutcome::kReset);
        fail(502, "upstream_bad_response", "protocol upgrades are not supported yet");
        co_return 0;
      }
      upstream_done(resp_.status >= 500 ? observe::UpstreamOutcome::k5xx : observe::UpstreamOutcome::kOk);
      upstream_ms_ = upstream_seconds_ * 1000;  // an upstream answered: logged as upstream_ms
      if (resp_.status >= 500 && may_retry(RetryReason::kStatus)) {
        retry_reason_ = RetryReason::kStatus;  // not relayed: the connection is dropped, tried again
        co_return 0;
      }
      co_return end;
    }
    scanned = up_.size();
    if (up_.size() >= kMaxUpstreamHead) {
      upstream_done(observe::UpstreamOutcome::kReset);
      fail_upstream(502, "upstream_bad_response",
                    "sent a response head over " + std::to_string(kMaxUpstreamHead) + " bytes");
      co_return 0;
    }
    auto [ptr, room] = up_.prepare(kReadChunk, kStreamBuffer + kReadChunk);
    auto [ec, n] = co_await up.read_some(net::asio::buffer(ptr, room));
    if (!ec && n > 0) {
      up_.commit(n);
      continue;
    }
    // A pooled connection that the upstream closed as we sent: the request goes again at once.
    const bool stale = up_.empty() && may_resend_at_once();
    if (!(stale && !upstream_timed_out_)) {
      upstream_done(upstream_timed_out_ ? observe::UpstreamOutcome::kTimeout
                                        : observe::UpstreamOutcome::kReset);
    }
    if (upstream_timed_out_) {
      retry_reason_ = RetryReason::kTimeout;
      fail(504, "upstream_timeout",
           ex_.up->name + " did not answer within " +
               (route_deadline_binds_ ? "the route's timeout of " + config::format_duration(match_.route->timeout)
                                      : config::format_duration(ex_.up->response_timeout)));
    } else if (stale) {
      *outcome = Outcome::kRetry;
    } else if (up_.empty()) {
      retry_reason_ = RetryReason::kReset;
      fail_upstream(502, "upstream_reset", "closed the connection without answering");
    } else {
      fail_upstream(502, "upstream_bad_response", "closed the connection in the middle of the response head");
    }
    co_return 0;
  }
}

// Writes the response head and streams the body to the client; returns the upstream connection to
// the pool when the response ended exactly where its framing said.
net::Task<> Connection::relay_response(net::Stream& up, size_t head_len) {
  const http::Framing framing = resp_.framing;
  const bool dechunk = framing == http::Framing::kChunked && req_http10_;
  if (framing == http::Framing::kUntilClose || dechunk) close_after_ = true;
  status_ = resp_.status;
  http::ResponseInfo info;
  info.request_id_header = snap_->config.observability.request_id_header;
  info.request_id = request_id_;
  info.chunked = framing == http::Framing::kChunked && !dechunk;
  info.close = close_after_;
  info.client_http10 = req_http10_;
  info.add = &ctx_.response_add;
  head_out_.clear();
  http::build_client_response(resp_, info, &head_out_);
  uint64_t remaining = framing == http::Framing::kContentLength ? resp_.content_length : 0;
  const bool upstream_keep_alive = resp_.keep_alive;
  up_.consume(head_len);  // resp_'s views are dead from here on
  if (framing == http::Framing::kChunked) chunked_.reset();

  bool client_ok = true, upstream_ok = true, ended_clean = false;
  bool first = true;
  while (true) {
    // Forward what is buffered.
    std::string_view avail = up_.data();
    size_t take = 0;
    bool done = false;
    spans_.clear();
    switch (framing) {
      case http::Framing::kNone:
        done = true;
        break;
      case http::Framing::kContentLength:
        take = static_cast<size_t>(std::min<uint64_t>(remaining, avail.size()));
        remaining -= take;
        done = remaining == 0;
        break;
      case http::Framing::kChunked: {
        auto r = chunked_.feed(avail, dechunk ? &spans_ : nullptr);
        upstream_ok = !r.error;
        take = r.consumed;
        done = r.done;
        break;
      }
      case http::Framing::kUntilClose:
        take = avail.size();
        break;
    }
    if (first || take) {
      set_deadline(Phase::kStream, upstream_budget(snap_->config.server.timeouts.idle));
      if (dechunk) {
        iov_.clear();
        if (first) iov_.push_back(net::asio::buffer(head_out_));
        for (auto s : spans_) iov_.push_back(net::asio::buffer(s.data(), s.size()));
        client_ok = co_await client_.send_all(iov_, &bytes_out_);
      } else {
        // The common case (the whole response in one sendmsg) stays out of any coroutine call.
        std::string_view head = first ? std::string_view(head_out_) : std::string_view();
        std::string_view body = avail.substr(0, take);
        if (!write_client_now(head, body, &client_ok)) client_ok = co_await write_client(head, body);
      }
      response_started_ = true;
      first = false;
      up_.consume(take);
      if (!client_ok) break;
    }
    if (!upstream_ok) break;
    if (done) {
      ended_clean = up_.empty();
      break;
    }
    set_deadline(Phase::kStream, upstream_budget(snap_->config.server.timeouts.idle));
    auto [ptr, room] = up_.prepare(kReadChunk, kStreamBuffer);
    auto [ec, n] = co_await up.read_some(net::asio::buffer(ptr, room));
    if (ec) {
      // For a close-delimited body, the close is the end; for any other, it is a failure.
      if (framing != http::Framing::kUntilClose || ec != net::asio::error::eof) upstream_ok = false;
      break;
    }
    up_.commit(n);
  }
  if (!upstream_ok || !client_ok) {
    // Mid-body failure: the status line is gone, so the only honest signal is closing.
    close_after_ = true;
    log_error_ = upstream_ok ? "client_closed" : "upstream_reset_mid_body";
    if (!upstream_ok) upstream_done(observe::UpstreamOutcome::kReset);
  }
  up_.consume(up_.size());
  if (ended_clean && upstream_keep_alive && client_ok && framing != http::Framing::kUntilClose) {
    ex_.pool->give_back(std::move(up), ex_.up->max_idle_per_target, net::Clock::now());
  } else {
    up.drop();
  }
}

// --- the gateway's own answers ---------------------------------------------------------------

void Connection::fail(int status, std::string_view code, std::string message,
                      http::HeaderList headers) {
  error_ = http::ErrorResponse{status, std::string(code), std::move(message), std::move(headers)};
  status_ = status;
  log_error_ = code;
}

void Connection::upstream_done(observe::UpstreamOutcome outcome) {
  upstream_outcome_ = outcome;
  upstream_seconds_ = ms_since(ex_.start) / 1000;
  if (!ex_.up->breaker) return;
  auto& breaker = view_->upstreams[ex_.up_index].breakers[ex_.target];
  if (breaker.record(outcome == observe::UpstreamOutcome::kOk, net::Clock::now()))
    breaker_moved(ex_.target);
}

void Connection::breaker_moved(size_t target) {
  const auto& state = view_->upstreams[ex_.up_index];
  const char* now = upstream::state_name(state.breakers[target].state());
  spdlog::warn("circuit breaker of {} target {} is now {}", ex_.up->name,
               state.pools[target]->address(), now);
  ++w_.metrics().upstreams[ex_.up->name].breaker_transitions[now];
}

void Connection::fail_upstream(int status, std::string_view code, std::string_view what) {
  fail(status, code, ex_.up->name + " (" + ex_.pool->address() + ") " + std::string(what));
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

void Connection::begin_request() {
  start_ = net::Clock::now();
  wall_start_ = std::chrono::system_clock::now();
  log_method_.clear();
  log_path_.clear();
  log_route_ = nullptr;
  log_upstream_ = nullptr;
  log_target_ = {};
  log_error_ = {};
  request_id_.clear();
  error_.status = 0;
  upstream_ms_ = -1;
  upstream_outcome_.reset();
  status_ = 0;
  bytes_in_ = bytes_out_ = 0;
  response_started_ = false;
  body_pending_ = false;
  head_consumed_ = true;
  req_is_head_ = req_http10_ = req_expect_continue_ = false;
  req_framing_ = http::Framing::kNone;
  req_length_ = 0;
  body_read_ = 0;
  continue_sent_ = keep_replay_ = false;
  replay_limit_ = 0;
  if (replay_.capacity() > kStreamBuffer) std::string().swap(replay_);  // a large one not held idle
  replay_.clear();
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
  if (log_upstream_) r.upstream = log_upstream_->name;
  r.target = log_target_;
  r.status = status_;
  r.bytes_in = bytes_in_;
  r.bytes_out = bytes_out_;
  r.total_ms = ms_since(start_);
  r.upstream_ms = upstream_ms_;
  r.error = log_error_;
  w_.log_access(r);
  auto& m = w_.metrics();
  m.count_request(r.route, log_method_, status_, r.total_ms / 1000, bytes_in_, bytes_out_);
  if (upstream_outcome_) m.count_upstream(r.upstream, r.target, *upstream_outcome_, upstream_seconds_);
}

}  // namespace gatehouse::server
