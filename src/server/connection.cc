#include "server/connection.h"

#include <array>

#include "config/snapshot.h"
#include "http/error_response.h"
#include "http/parser.h"
#include "http/proxy_headers.h"
#include "observe/access_log.h"
#include "observe/log.h"
#include "observe/request_id.h"
#include "server/send.h"
#include "server/worker.h"

namespace gatehouse::server {
namespace {

constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kStreamBuffer = 64 * 1024;        // per direction while streaming a body
constexpr size_t kMaxUpstreamHead = 64 * 1024;     // response heads larger than this are refused
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

bool idempotent(std::string_view m) {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "PUT" || m == "DELETE" || m == "TRACE";
}

double ms_since(net::Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(net::Clock::now() - t).count();
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

Connection::Connection(Worker& worker, net::Socket socket)
    : w_(worker), client_(std::move(socket)), timer_(worker.io().get_executor()) {
  boost::system::error_code ec;
  auto ep = client_.remote_endpoint(ec);
  if (!ec) {
    auto addr = ep.address();
    if (addr.is_v6() && addr.to_v6().is_v4_mapped())
      addr = net::asio::ip::make_address_v4(net::asio::ip::v4_mapped, addr.to_v6());
    client_ip_ = addr.to_string();
    if (auto bytes = config::parse_ip(client_ip_)) {
      for (const auto& cidr : w_.snapshot()->config.server.trusted_proxies) {
        if (cidr.contains(*bytes)) client_trusted_ = true;
      }
    }
  }
  client_.set_option(net::tcp::no_delay(true), ec);
  client_.non_blocking(true, ec);  // for send_now(): never block the worker
  w_.add(this);
}

Connection::~Connection() {
  w_.remove(this);
}

void Connection::start(Worker& worker, net::Socket socket) {
  auto self = std::make_shared<Connection>(worker, std::move(socket));
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
  client_.shutdown(net::tcp::socket::shutdown_both, ec);
  client_.close(ec);
  if (upstream_) upstream_->close(ec);
  timer_.cancel();
}

// --- deadlines -------------------------------------------------------------------------------
// One timer per connection, re-armed lazily: moving a deadline later costs a store, and the timer
// re-arms itself when it fires early. Only a deadline earlier than the armed one touches the timer.

void Connection::set_deadline(Phase phase, net::Clock::duration after) {
  phase_ = phase;
  deadline_ = net::Clock::now() + after;
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
  if (net::Clock::now() < deadline_) {
    arm_timer(deadline_);
    return;
  }
  boost::system::error_code ec;
  switch (phase_) {
    case Phase::kUpstreamConnect:
    case Phase::kUpstreamResponse:
      // The exchange code sees the flag and answers 504; the client connection stays usable.
      upstream_timed_out_ = true;
      if (upstream_) upstream_->close(ec);
      deadline_ = net::Clock::time_point::max();
      break;
    default:
      close_now();
      break;
  }
}

// --- client I/O ------------------------------------------------------------------------------

bool Connection::write_client_now(std::string_view& a, std::string_view& b, bool* ok) {
  size_t total = a.size() + b.size();
  *ok = send_now(client_, a, b);
  bytes_out_ += total - a.size() - b.size();
  if (!*ok) close_after_ = true;
  return !*ok || (a.empty() && b.empty());
}

net::Task<bool> Connection::write_client(std::string_view a, std::string_view b) {
  bool ok;
  if (write_client_now(a, b, &ok)) co_return ok;
  ok = co_await send_rest(client_, a, b, &bytes_out_);
  if (!ok) close_after_ = true;
  co_return ok;
}

net::Task<bool> Connection::read_client() {
  auto [ptr, room] = in_.prepare(kReadChunk, kStreamBuffer);
  if (room == 0) co_return false;
  auto [ec, n] = co_await client_.async_read_some(net::asio::buffer(ptr, room), net::use_task);
  if (ec || n == 0) co_return false;
  in_.commit(n);
  co_return true;
}

// --- the connection loop ---------------------------------------------------------------------

net::Task<> Connection::run() {
  while (!closed_) {
    snap_ = w_.snapshot();
    if (!co_await read_head()) break;
    co_await handle_request();
    finish_request_log();
    busy_ = false;
    if (close_after_ || closed_) break;
  }
  if (!closed_) {
    // Lingering close (RFC 9112 9.6): stop sending, then read and drop what the client still sends
    // for a moment, so unread request bytes cannot turn our close into a reset that destroys the
    // response before the client reads it.
    boost::system::error_code ec;
    client_.shutdown(net::tcp::socket::shutdown_send, ec);
    set_deadline(Phase::kClientIdle, std::chrono::seconds(2));
    for (int i = 0; i < 64 && !closed_; ++i) {
      in_.consume(in_.size());
      if (!co_await read_client()) break;
    }
  }
  close_now();
}

net::Task<bool> Connection::read_head() {
  const auto& limits = snap_->config.server.limits;
  const auto& timeouts = snap_->config.server.timeouts;
  const size_t max_head = limits.max_header_bytes;
  bool started = !in_.empty();
  busy_ = started;
  if (started) {
    set_deadline(Phase::kClientRead, timeouts.header_read);
  } else {
    if (w_.draining()) co_return false;
    set_deadline(Phase::kClientIdle, timeouts.idle);
  }
  size_t scanned = 0;
  while (true) {
    size_t end = http::find_head_end(in_.data(), scanned);
    if (end && end <= max_head) {
      // Parse the head in place; views into in_ stay valid until consume_head().
      begin_request();
      bytes_in_ = end;
      http::ParseError err;
      http::ParseLimits pl{max_head, limits.max_uri_bytes, limits.max_headers};
      auto status = http::parse_request_head(in_.data().substr(0, end), pl, &req_, &err);
      if (status != http::ParseStatus::kComplete) {
        close_after_ = true;
        head_consumed_ = true;  // never forwarded, never reused: the connection closes
        co_await respond_error(err.status, err.code, std::string(err.message));
        co_return false;
      }
      co_return true;
    }
    scanned = in_.size();
    if (end || in_.size() >= max_head) {
      begin_request();
      bytes_in_ = in_.size();
      close_after_ = true;
      bool line_done = in_.data().find('\n') != std::string_view::npos;
      if (line_done)
        co_await respond_error(431, "header_too_large", "the request header section is too large");
      else
        co_await respond_error(414, "uri_too_long", "the request line is too long");
      co_return false;
    }
    auto [ptr, room] = in_.prepare(kReadChunk, max_head + kReadChunk);
    auto [ec, n] = co_await client_.async_read_some(
        net::asio::buffer(ptr, std::min(room, max_head + 1 - in_.size())), net::use_task);
    if (ec || n == 0) co_return false;  // closed, reset, or cut off by the timer
    in_.commit(n);
    if (!started) {
      started = busy_ = true;
      set_deadline(Phase::kClientRead, timeouts.header_read);
    }
  }
}

net::Task<> Connection::handle_request() {
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
  request_id_.clear();
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
    {
      co_await respond_error(413, "body_too_large",
                                     "the request body is larger than " +
                                         std::to_string(cfg.server.limits.max_body_bytes) + " bytes");
      co_return;
    }
  }

  snap_->routes.match(req_, &match_);
  if (!match_.route) {
    if (!match_.allow.empty()) {
      http::HeaderList allow;
      allow.emplace_back(std::string("Allow"), match_.allow);
      co_await respond_error(405, "method_not_allowed",
                             "method " + log_method_ + " is not allowed on this path",
                             std::move(allow));
      co_return;
    }
    {
      co_await respond_error(404, "no_route", "no route for " + log_method_ + " " + log_path_);
      co_return;
    }
  }
  const config::Route& route = *match_.route;
  log_route_ = &route;

  ctx_.reset();
  ctx_.request = &req_;
  ctx_.client_ip = client_ip_;
  ctx_.route = &route;
  ctx_.max_body_bytes = cfg.server.limits.max_body_bytes;
  for (const auto& f : route.filters) {
    auto status = f->on_request(ctx_);
    if (status == filters::FilterStatus::kPause) {
      auto token = net::use_task;
      auto [resumed] = co_await net::asio::async_initiate<decltype(token), void(filters::FilterStatus)>(
          [&](auto handler) {
            auto h = std::make_shared<decltype(handler)>(std::move(handler));
            f->resume(ctx_, [h](filters::FilterStatus s) { std::move(*h)(s); });
          },
          token);
      status = resumed;
    }
    if (status == filters::FilterStatus::kRespond) {
      {
      co_await respond_error(ctx_.reply.status, ctx_.reply.code, ctx_.reply.message,
                                       ctx_.reply.headers);
      co_return;
    }
    }
  }

  // Pick the upstream (weighted split) and the target (load balancer).
  size_t up_index = route.to.size() == 1 ? route.to[0].upstream_index
                                         : route.to[w_.pick_split(route)].upstream_index;
  const config::Upstream& up = cfg.upstreams[up_index];
  log_upstream_ = &up;
  upstream::PickInput pick;
  if (up.balance == config::Balance::kConsistentHash) {
    switch (up.hash_on.kind) {
      case config::HashOn::Kind::kClientIp: pick.hash_key = client_ip_; break;
      case config::HashOn::Kind::kHeader: pick.hash_key = req_.get(up.hash_on.name); break;
      case config::HashOn::Kind::kCookie:
        for (const auto& h : req_.headers) {
          if (h.id != http::HeaderId::kCookie) continue;
          // cookie-string = cookie-pair *( ";" SP cookie-pair )
          for (std::string_view rest = h.value; !rest.empty();) {
            auto semi = rest.find(';');
            auto pair = rest.substr(0, semi);
            while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
            auto eq = pair.find('=');
            if (eq != std::string_view::npos && pair.substr(0, eq) == up.hash_on.name)
              pick.hash_key = pair.substr(eq + 1);
            if (semi == std::string_view::npos) break;
            rest.remove_prefix(semi + 1);
          }
        }
        break;
    }
  }
  auto& state = w_.upstream(up_index);
  size_t target = state.balancer.pick(pick);

  // The upstream request head, built now while the request head's views are valid.
  target_out_.clear();
  router::rewrite_target(route, match_.captures, req_.path, req_.query, &target_out_);
  std::string_view host = route.rewrite.host ? std::string_view(*route.rewrite.host) : req_.host;
  if (host.empty()) host = state.pools[target]->address();
  http::ForwardInfo info;
  info.client_ip = client_ip_;
  info.peer_trusted = client_trusted_;
  info.request_id_header = cfg.observability.request_id_header;
  info.request_id = request_id_;
  info.path_and_query = target_out_;
  info.host = host;
  info.add = &ctx_.upstream_add;
  info.remove = &ctx_.upstream_remove;
  head_out_.clear();
  http::build_upstream_request(req_, info, &head_out_);

  bool retryable = req_.framing == http::Framing::kNone && idempotent(req_.method);
  consume_head();
  auto outcome = co_await forward(up, target, retryable);
  if (outcome == Outcome::kRetry) {
    // A reused keep-alive connection died before answering (the upstream closed it as we sent):
    // safe to send a bodiless idempotent request once more, on a fresh connection.
    co_await forward(up, target, false);
  }
}

net::Task<Connection::Outcome> Connection::forward(const config::Upstream& up, size_t target,
                                                   bool retry_allowed) {
  const bool head_request = req_is_head_;
  const bool client_http10 = req_http10_;
  const bool expect_continue = req_expect_continue_;
  const http::Framing req_framing = req_framing_;
  const uint64_t req_length = req_length_;
  const size_t up_index = static_cast<size_t>(&up - snap_->config.upstreams.data());
  auto& state = w_.upstream(up_index);
  upstream::TargetPool& pool = *state.pools[target];
  log_target_ = pool.address();
  InFlight in_flight(state.balancer, target);

  auto exchange_start = net::Clock::now();
  std::optional<net::Socket> sock = pool.take_idle(exchange_start);
  const bool reused = sock.has_value();
  upstream_timed_out_ = false;
  if (!sock) {
    sock.emplace(w_.io().get_executor());
    upstream_ = &*sock;
    set_deadline(Phase::kUpstreamConnect, up.connect_timeout);
    auto [ec] = co_await sock->async_connect(pool.endpoint(), net::use_task);
    if (ec) {
      upstream_ = nullptr;
      if (upstream_timed_out_) {
        co_await respond_error(504, "upstream_connect_timeout",
                               up.name + " did not accept a connection within " +
                                   config::format_duration(up.connect_timeout));
      } else {
        co_await respond_error(502, "upstream_connect_failed",
                               up.name + " (" + pool.address() + ") refused the connection: " +
                                   ec.message());
      }
      co_return Outcome::kDone;
    }
    boost::system::error_code ignored;
    sock->set_option(net::tcp::no_delay(true), ignored);
    sock->non_blocking(true, ignored);
  }
  upstream_ = &*sock;
  struct Detach {  // the timer must never touch a socket that is gone
    Connection* c;
    ~Detach() { c->upstream_ = nullptr; }
  } detach{this};

  // --- request: head and body ---
  enum class Sent { kOk, kUpstreamError, kClientError, kBadBody, kTooLarge };
  Sent sent = Sent::kOk;
  {
    set_deadline(Phase::kStream, snap_->config.server.timeouts.idle);
    std::string_view avail = in_.data();
    size_t take = 0;
    bool done = true;
    uint64_t remaining = 0;
    if (req_framing == http::Framing::kContentLength) {
      take = static_cast<size_t>(std::min<uint64_t>(req_length, avail.size()));
      remaining = req_length - take;
      done = remaining == 0;
    } else if (req_framing == http::Framing::kChunked) {
      chunked_.reset();
      auto r = chunked_.feed(avail);
      take = r.consumed;
      done = r.done;
      if (r.error) sent = Sent::kBadBody;
      else if (chunked_.payload_bytes() > ctx_.max_body_bytes) sent = Sent::kTooLarge;
    }
    if (sent == Sent::kOk) {
      std::string_view head = head_out_, body = avail.substr(0, take);
      bool ok = send_now(*sock, head, body);
      if (ok && (!head.empty() || !body.empty())) ok = co_await send_rest(*sock, head, body, nullptr);
      in_.consume(take);
      bytes_in_ += take;
      if (!ok) sent = Sent::kUpstreamError;
    }
    if (sent == Sent::kOk && !done && expect_continue) {
      if (!co_await write_client(kContinue)) sent = Sent::kClientError;
    }
    while (sent == Sent::kOk && !done) {
      set_deadline(Phase::kStream, snap_->config.server.timeouts.idle);
      if (in_.empty() && !co_await read_client()) {
        sent = Sent::kClientError;
        break;
      }
      avail = in_.data();
      if (req_framing == http::Framing::kContentLength) {
        take = static_cast<size_t>(std::min<uint64_t>(remaining, avail.size()));
        remaining -= take;
        done = remaining == 0;
      } else {
        auto r = chunked_.feed(avail);
        take = r.consumed;
        done = r.done;
        if (r.error) sent = Sent::kBadBody;
        else if (chunked_.payload_bytes() > ctx_.max_body_bytes) sent = Sent::kTooLarge;
        if (sent != Sent::kOk) break;
      }
      std::string_view body = avail.substr(0, take), none;
      bool ok = send_now(*sock, body, none);
      if (ok && !body.empty()) ok = co_await send_rest(*sock, body, none, nullptr);
      in_.consume(take);
      bytes_in_ += take;
      if (!ok) sent = Sent::kUpstreamError;
    }
    if (sent == Sent::kOk) body_pending_ = false;
  }
  if (sent != Sent::kOk) {
    boost::system::error_code ignored;
    sock->close(ignored);
    switch (sent) {
      case Sent::kUpstreamError:
        if (reused && retry_allowed) co_return Outcome::kRetry;
        co_await respond_error(502, "upstream_reset",
                               up.name + " (" + pool.address() + ") closed the connection while "
                                                                 "the request was being sent");
        break;
      case Sent::kBadBody:
        co_await respond_error(400, "bad_request", "malformed chunked request body");
        break;
      case Sent::kTooLarge:
        co_await respond_error(413, "body_too_large",
                               "the request body is larger than " +
                                   std::to_string(ctx_.max_body_bytes) + " bytes");
        break;
      default:
        close_after_ = true;  // the client went away mid-body: nobody to answer
        status_ = 499;
        log_error_ = "client_closed";
        break;
    }
    co_return Outcome::kDone;
  }

  // --- response head (skipping 1xx interim responses) ---
  set_deadline(Phase::kUpstreamResponse, up.response_timeout);
  size_t scanned = 0;
  http::ParseLimits pl{kMaxUpstreamHead, kMaxUpstreamHead, 1000};
  std::string_view method_for_response = head_request ? "HEAD" : "GET";
  size_t head_len = 0;
  while (true) {
    size_t end = http::find_head_end(up_.data(), scanned);
    if (end) {
      http::ParseError err;
      if (http::parse_response_head(up_.data().substr(0, end), pl, method_for_response, &resp_,
                                    &err) != http::ParseStatus::kComplete) {
        boost::system::error_code ignored;
        sock->close(ignored);
        up_.consume(up_.size());
        co_await respond_error(502, "upstream_bad_response",
                               up.name + " (" + pool.address() + ") sent an invalid response: " +
                                   std::string(err.message));
        co_return Outcome::kDone;
      }
      if (resp_.status >= 100 && resp_.status < 200 && resp_.status != 101) {
        up_.consume(end);  // 100 Continue, 103 Early Hints: not forwarded
        scanned = 0;
        continue;
      }
      head_len = end;
      break;
    }
    scanned = up_.size();
    bool too_big = up_.size() >= kMaxUpstreamHead;
    boost::system::error_code ec;
    size_t n = 0;
    if (!too_big) {
      auto [ptr, room] = up_.prepare(kReadChunk, kStreamBuffer + kReadChunk);
      std::tie(ec, n) = co_await sock->async_read_some(net::asio::buffer(ptr, room), net::use_task);
      if (!ec && n > 0) {
        up_.commit(n);
        continue;
      }
    }
    boost::system::error_code ignored;
    sock->close(ignored);
    bool nothing = up_.empty();
    up_.consume(up_.size());
    if (upstream_timed_out_) {
      co_await respond_error(504, "upstream_timeout",
                             up.name + " did not answer within " +
                                 config::format_duration(up.response_timeout));
    } else if (too_big) {
      co_await respond_error(502, "upstream_bad_response",
                             up.name + " (" + pool.address() + ") sent a response head over " +
                                 std::to_string(kMaxUpstreamHead) + " bytes");
    } else if (nothing && reused && retry_allowed) {
      co_return Outcome::kRetry;
    } else {
      co_await respond_error(502, nothing ? "upstream_reset" : "upstream_bad_response",
                             up.name + " (" + pool.address() + ") closed the connection " +
                                 (nothing ? "without answering" : "in the middle of the response head"));
    }
    co_return Outcome::kDone;
  }
  upstream_ms_ = ms_since(exchange_start);
  if (resp_.status == 101) {
    boost::system::error_code ignored;
    sock->close(ignored);
    up_.consume(up_.size());
    co_await respond_error(502, "upstream_bad_response", "protocol upgrades are not supported yet");
    co_return Outcome::kDone;
  }

  // --- response to the client ---
  const http::Framing framing = resp_.framing;
  const bool dechunk = framing == http::Framing::kChunked && client_http10;
  if (framing == http::Framing::kUntilClose || dechunk) close_after_ = true;
  status_ = resp_.status;
  http::ResponseInfo rinfo;
  rinfo.request_id_header = snap_->config.observability.request_id_header;
  rinfo.request_id = request_id_;
  rinfo.chunked = framing == http::Framing::kChunked && !dechunk;
  rinfo.close = close_after_;
  rinfo.client_http10 = client_http10;
  rinfo.add = &ctx_.response_add;
  head_out_.clear();
  http::build_client_response(resp_, rinfo, &head_out_);
  const uint64_t resp_length = resp_.content_length;
  up_.consume(head_len);  // resp_ views are dead from here on

  bool upstream_clean = false;  // the response ended exactly where its framing said
  bool client_ok = true;
  bool upstream_ok = true;
  uint64_t remaining = framing == http::Framing::kContentLength ? resp_length : 0;
  if (framing == http::Framing::kChunked) chunked_.reset();
  std::vector<std::string_view> spans;
  bool first = true;
  while (true) {
    // Forward what is buffered.
    std::string_view avail = up_.data();
    size_t take = 0;
    bool done = false;
    spans.clear();
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
        auto r = chunked_.feed(avail, dechunk ? &spans : nullptr);
        if (r.error) upstream_ok = false;
        take = r.consumed;
        done = r.done;
        break;
      }
      case http::Framing::kUntilClose:
        take = avail.size();
        break;
    }
    if (first || take) {
      set_deadline(Phase::kStream, snap_->config.server.timeouts.idle);
      if (dechunk) {
        std::vector<net::asio::const_buffer> bufs;
        if (first) bufs.push_back(net::asio::buffer(head_out_));
        for (auto s : spans) bufs.push_back(net::asio::buffer(s.data(), s.size()));
        auto [ec, n] = co_await net::asio::async_write(client_, bufs, net::use_task);
        bytes_out_ += n;
        client_ok = !ec;
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
      upstream_clean = up_.empty();
      break;
    }
    set_deadline(Phase::kStream, snap_->config.server.timeouts.idle);
    auto [ptr, room] = up_.prepare(kReadChunk, kStreamBuffer);
    auto [ec, n] = co_await sock->async_read_some(net::asio::buffer(ptr, room), net::use_task);
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
    if (!upstream_ok) log_error_ = "upstream_reset_mid_body";
    else log_error_ = "client_closed";
  }
  bool reusable = upstream_clean && upstream_ok && client_ok && resp_.keep_alive &&
                  framing != http::Framing::kUntilClose;
  up_.consume(up_.size());
  if (reusable) {
    pool.give_back(std::move(*sock), up.max_idle_per_target, net::Clock::now());
  } else {
    boost::system::error_code ignored;
    sock->close(ignored);
  }
  co_return Outcome::kDone;
}

net::Task<> Connection::respond_error(int status, std::string_view code, std::string message,
                                      http::HeaderList headers) {
  status_ = status;
  log_error_ = code;
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
  http::ErrorResponse e{status, std::string(code), std::move(message), std::move(headers)};
  head_out_.clear();
  http::build_error_response(e, snap_->config.observability.request_id_header, request_id_,
                             close_after_, req_is_head_, &head_out_);
  co_await write_client(head_out_);
  response_started_ = true;
}

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
  upstream_ms_ = -1;
  status_ = 0;
  bytes_in_ = bytes_out_ = 0;
  response_started_ = false;
  body_pending_ = false;
  head_consumed_ = true;
  req_is_head_ = req_http10_ = req_expect_continue_ = false;
  req_framing_ = http::Framing::kNone;
  req_length_ = 0;
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
}

}  // namespace gatehouse::server
