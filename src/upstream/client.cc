#include "upstream/client.h"

#include <algorithm>
#include <tuple>

#include "config/config.h"
#include "grpc/status.h"
#include "http/parser.h"
#include "tls/client_context.h"
#include "upstream/h2/session.h"

namespace gatehouse::upstream {
namespace {

constexpr const http::ParseLimits& kResponseLimits = http::kUpstreamResponseLimits;
// Streams an HTTP/2 upstream refused, sent again at once per call (then: the retry policy).
constexpr uint32_t kMaxRefusedResends = 2;
bool idempotent(std::string_view m) {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "PUT" || m == "DELETE" || m == "TRACE";
}

}  // namespace

Client::Client(const net::Executor& ex, observe::MetricsShard& metrics, Random& rng)
    : ex_(ex), metrics_(metrics), rng_(rng), pump_ended_(ex) {
  error_.status = 0;
}

void Client::reset() {
  release();
  route_ = nullptr;
  up_ = nullptr;
  pool_ = nullptr;
  error_.clear();
  error_.status = 0;
  logged_target_ = {};
  outcome_.reset();
  seconds_ = 0;
  answered_ms_ = -1;
  connect_ms_ = -1;
  tries_ = 0;
  body_read_ = 0;
  keep_replay_ = false;
  replay_limit_ = 0;
  if (replay_.capacity() > net::kStreamBuffer) std::string().swap(replay_);  // not held idle
  replay_.clear();
}

void Client::release() {
  if (slot_) slot_->leave();
  slot_ = nullptr;
  if (counted_) up_->balancer.finished(target_);
  counted_ = false;
}

// --- choosing a target -----------------------------------------------------------------------

bool Client::start(const Call& call) {
  route_ = call.route;
  up_ = call.upstream;
  hash_key_ = call.hash_key;
  head_request_ = call.head_request;
  http2_ = up_->config().http2();
  upgrade_ = call.upgrade;
  upgraded_ = false;
  duplex_ = call.duplex && http2_;
  pump_sent_.reset();  // an earlier call's
  pump_stopped_ = false;
  grpc_ = call.grpc;
  grpc_status_ = -1;
  aborted_ = false;
  observer_ = call.observer;
  observed_try_ = false;
  max_message_bytes_ = call.grpc ? call.max_message_bytes : 0;
  messages_ = {};
  refused_resends_ = 0;
  body_framing_ = call.body_framing;
  body_pending_ = call.body_framing != http::Framing::kNone;
  content_length_ = call.content_length;
  max_body_bytes_ = call.max_body_bytes;
  stream_idle_ = call.stream_idle;
  deadline_ = route_->timeout.count() > 0 ? net::coarse_now() + route_->timeout
                                          : net::Clock::time_point::max();
  deadline_is_callers_ = call.deadline < deadline_;
  if (deadline_is_callers_) {
    deadline_ = call.deadline;
    deadline_text_.assign(call.deadline_text);
  }
  new_connection_ = false;
  if (!choose_target(kNone)) return false;
  const bool safe_method = idempotent(call.method);
  resend_allowed_ = safe_method;
  idempotent_ = safe_method || call.idempotency_key || call.grpc;
  tries_ = 0;
  const config::RetryPolicy* p = retry_policy();
  if (p) up_->retry_tokens = std::min(up_->retry_tokens + p->budget, 100 * p->budget);  // capped
  // A body that may be sent again is kept as it is read, while it fits: for the policy's retries,
  // for the immediate resend of an idempotent method on a pooled connection found dead, and for
  // any method to an HTTP/2 upstream, which may refuse a stream it did not process.
  if (safe_method || http2_ || (p && p->attempts > 0 && idempotent_))
    replay_limit_ = p ? p->max_replay_body : config::RetryPolicy{}.max_replay_body;
  keep_replay_ = replay_limit_ > 0 && !(body_framing_ == http::Framing::kContentLength &&
                                        content_length_ > replay_limit_);
  return true;
}

// --- the call --------------------------------------------------------------------------------

net::Task<bool> Client::send(RequestSource& from) {
  from_ = &from;
  while (true) {
    retry_reason_ = RetryReason::kNone;
    Outcome outcome = co_await try_once(from);
    try_ended(outcome);
    if (outcome == Outcome::kResponse) {
      if (error_.status) {  // an earlier try's: error() tells of this one's body from here on
        error_.clear();
        error_.status = 0;
      }
      co_return true;
    }
    // Given up on by its caller (abort()): the connection it closed is not the upstream's doing,
    // and nobody waits for another try.
    if (aborted_) co_return false;
    if (outcome == Outcome::kResendAtOnce) {
      // A reused keep-alive connection died before answering (the upstream closed it as we
      // sent): safe to send an idempotent request once more, at once (RFC 9110 9.2.2), its body
      // from the replay copy, on a new connection to the same target.
      resend_allowed_ = false;
      new_connection_ = true;
      continue;
    }
    // A retryable status was decided on where it was read (nothing was recorded for the client).
    if (retry_reason_ == RetryReason::kNone ||
        (retry_reason_ != RetryReason::kStatus && retry_reason_ != RetryReason::kGrpcStatus &&
         !may_retry(retry_reason_)))
      co_return false;
    const size_t left = target_;
    co_await before_retry();
    if (!choose_target(left)) co_return false;  // every target refuses now: answered 503
  }
}

void Client::try_ended(Outcome outcome) {
  if (!observed_try_) return;  // not traced, or it ended before it began (no bulkhead slot)
  observed_try_ = false;
  if (outcome == Outcome::kResponse)
    observer_->try_ended(resp_.status, {}, true);
  else if (retry_reason_ == RetryReason::kStatus || retry_reason_ == RetryReason::kGrpcStatus)
    observer_->try_ended(resp_.status, {}, false);  // answered, and tried again
  else if (outcome == Outcome::kResendAtOnce || !error_.status)
    observer_->try_ended(0, "upstream_reset", false);  // sent again at once, on a new connection
  else
    observer_->try_ended(0, error_.code, false);
}

net::Clock::duration Client::budget(net::Clock::duration after) {
  deadline_binds_ = false;
  if (deadline_ == net::Clock::time_point::max()) return after;
  auto left = deadline_ - net::coarse_now();
  if (left < after) {
    deadline_binds_ = true;
    return std::max<net::Clock::duration>(left, net::Clock::duration::zero());
  }
  return after;
}

net::Clock::duration Client::time_left() const {
  if (deadline_ == net::Clock::time_point::max()) return net::Clock::duration::max();
  // The precise clock: the coarse one lags by up to a turn of the event loop, which would tell
  // an upstream it has more time than is left.
  return std::max<net::Clock::duration>(deadline_ - net::Clock::now(), {});
}

std::string Client::deadline_text() const {
  return deadline_is_callers_
             ? deadline_text_
             : "the route's timeout of " + config::format_duration(route_->timeout);
}

// How long a phase was allowed, for an error message: its own timeout, or the call's deadline
// when that cut it short.
std::string Client::timeout_text(config::Duration own) const {
  return deadline_binds_ ? deadline_text() : config::format_duration(own);
}

void Client::deadline_passed(RequestSource::Phase phase) {
  if (phase == RequestSource::Phase::kQueued) {
    stop_waiting_for_slot();  // the request gets 503; the downstream stays usable
    return;
  }
  // The call sees the flag and answers 504; the downstream stays usable. Only the socket is
  // closed: no TLS record is written on a connection given up on.
  timed_out_ = true;
  if (conn_) {
    boost::system::error_code ignored;
    conn_->socket().close(ignored);
  }
  if (h2_) h2_->cancel();
}

void Client::abort() {
  aborted_ = true;
  if (conn_) {
    boost::system::error_code ignored;
    conn_->socket().close(ignored);
  }
  if (h2_) h2_->cancel();
  stop_waiting_for_slot();
}

bool Client::may_resend_refused() const {
  return h2_ && h2_->refused() && refused_resends_ < kMaxRefusedResends && body_replayable();
}

bool Client::wire_send_now(std::string_view& a, std::string_view& b) {
  if (!h2_) return conn_->send_now(a, b);
  if (!a.empty() && !h2_->submit(head_)) return false;
  a = {};
  return h2_->send_now(b);
}

net::Task<bool> Client::wire_send_rest(std::string_view a, std::string_view b) {
  return h2_ ? h2_->send_rest(b) : conn_->send_rest(a, b, nullptr);
}

void Client::drop_wire() {
  if (h2_) {
    h2_->cancel();
    h2_.reset();
  } else if (conn_) {  // (none: a stopped pump dropped the stream)
    conn_->drop();
    conn_.reset();
  }
}

net::Task<Client::Outcome> Client::try_once(RequestSource& from) {
  // The upstream's bulkhead: when full, a place in its bounded queue, or 503 at once.
  Bulkhead* bulkhead = up_->bulkhead();
  if (bulkhead && !bulkhead->try_enter()) {
    bool admitted = false;
    if (bulkhead->max_pending() > 0) {
      admitted = co_await wait_for_slot(*bulkhead, from);
    } else {
      fail_overloaded(*bulkhead, false);
    }
    if (!admitted) co_return Outcome::kFailed;
  }
  slot_ = bulkhead;
  up_->balancer.started(target_);
  counted_ = true;
  logged_target_ = pool_->address();
  start_ = net::Clock::now();
  timed_out_ = false;
  if (observer_) {
    observer_->try_started(head_, logged_target_);
    observed_try_ = true;
  }
  if (http2_) {
    // A stream on a pooled connection with room (the common case) costs no coroutine; a new
    // connection is made in open_session().
    std::shared_ptr<h2::Session> session = pool_->session_with_room();
    reused_ = session != nullptr;
    if (session) {
      h2_ = session->open_stream(kResponseLimits);
    } else if (!co_await open_session(from)) {
      release();
      co_return Outcome::kFailed;
    }
  } else {
    // A pooled connection (the common case) costs no coroutine; a new one is made in connect().
    std::optional<net::Stream> idle =
        new_connection_ ? std::nullopt : pool_->take_idle(start_, resendable());
    reused_ = idle.has_value();
    if (idle) {
      conn_.emplace(std::move(*idle));
    } else if (!co_await connect(from)) {
      release();
      co_return Outcome::kFailed;
    }
  }
  // The try's connect (TCP and TLS), for the access log; none when it reused a connection.
  connect_ms_ =
      reused_ ? -1 : std::chrono::duration<double, std::milli>(net::Clock::now() - start_).count();
  // A request without a body (the usual GET) is its head alone: sent here, with no coroutine of
  // its own unless the wire cannot take it at once.
  Sent sent = Sent::kOk;
  if (duplex_ && body_pending_ && !from.body_whole()) {
    // Full duplex: the body streams on beside the response (a bidirectional gRPC call's client
    // waits for answers before it sends more). The pump sends what is here before this returns.
    start_pump(from);
    if (!pump_running_) sent = *pump_sent_;
  } else if (body_pending_ || body_read_ > 0) {
    sent = co_await send_request(from);
  } else {
    from.set_deadline(RequestSource::Phase::kStream, budget(stream_idle_));
    std::string_view head = head_.text(), none;
    bool ok = wire_send_now(head, none);
    if (ok && !head.empty()) ok = co_await wire_send_rest(head, none);
    if (!ok) sent = Sent::kUpstreamError;
  }
  if (sent != Sent::kOk) co_return not_sent(sent);
  Outcome outcome = co_await read_response_head(from);
  if (outcome != Outcome::kResponse && pump_running_) {
    // The try failed while its body still streamed: that body cannot be sent again whole, so
    // the call ends here (no retry, no resend).
    const bool refused = h2_->refused();
    co_await settle();
    if (outcome == Outcome::kResendAtOnce) {
      if (refused) {
        fail_refused();
      } else {
        upstream_done(observe::UpstreamOutcome::kReset);
        fail_upstream(502, "upstream_reset", "closed the connection without answering");
      }
    }
    retry_reason_ = RetryReason::kNone;
    outcome = Outcome::kFailed;
  } else if (outcome != Outcome::kResponse && pump_sent_ && *pump_sent_ != Sent::kOk &&
             *pump_sent_ != Sent::kUpstreamError && !pump_stopped_) {
    // The body failed (malformed, too large, its client gone), and the try with it.
    co_return not_sent(*pump_sent_);
  }
  if (outcome != Outcome::kResponse) {
    drop_wire();
    in_.consume(in_.size());
    release();
    co_return outcome;
  }
  // A new TLS connection: its session (TLS 1.3: the ticket, which came before the response)
  // lets the next new connection to this target skip the full handshake.
  const net::Stream& used = h2_ ? h2_->session().connection() : *conn_;
  if (!reused_ && used.tls()) pool_->keep_session(used.resumable_session());
  co_return Outcome::kResponse;
}

// The request could not be sent whole (an upstream that failed may get it again at once).
Client::Outcome Client::not_sent(Sent sent) {
  const bool refused = h2_ && h2_->refused();
  const bool resend = may_resend_at_once() || may_resend_refused();
  drop_wire();
  release();
  switch (sent) {
    case Sent::kUpstreamError:
      if (resend) {
        if (refused) ++refused_resends_;
        return Outcome::kResendAtOnce;
      }
      if (refused) {
        fail_refused();
        break;
      }
      retry_reason_ = RetryReason::kReset;
      upstream_done(observe::UpstreamOutcome::kReset);
      fail_upstream(502, "upstream_reset",
                    "closed the connection while the request was being sent");
      break;
    default:
      fail_body(sent);
      break;
  }
  return Outcome::kFailed;
}

void Client::fail_body(Sent sent) {
  switch (sent) {
    case Sent::kBadBody:
      fail(400, "bad_request", "malformed chunked request body");
      break;
    case Sent::kTooLarge:
      fail(413, "body_too_large",
           "the request body is larger than " + std::to_string(max_body_bytes_) + " bytes");
      break;
    case Sent::kMessageTooLarge:
      fail(413, "grpc_message_too_large",
           "a request message of " + std::to_string(messages_.too_long()) +
               " bytes is larger than the route's grpc.max_message_bytes (" +
               std::to_string(max_message_bytes_) + ")");
      break;
    default:  // the client went away mid-body: nobody to answer
      fail(499, "client_closed", "");
      break;
  }
}

// --- full duplex: the request body beside the response ----------------------------------------

void Client::start_pump(RequestSource& from) {
  pump_running_ = true;
  pump_stopped_ = false;
  pump_sent_.reset();
  net::asio::co_spawn(ex_, pump(from), net::asio::detached);
}

// The try's stream (h2_) stays while the pump runs: a call done with it (finish(), a failed try)
// stops the pump, which drops it.
net::Task<> Client::pump(RequestSource& from) {
  const Sent sent = co_await send_request(from);
  pump_running_ = false;
  pump_sent_ = sent;
  if (pump_stopped_) {
    h2_.reset();
  } else if (sent != Sent::kOk) {
    // A request cut short has no whole response: the upstream hears it (RST_STREAM CANCEL), and
    // a wait for the response ends. Why, for a response already under way.
    h2_->cancel();
    if (sent != Sent::kUpstreamError) fail_body(sent);
  }
  pump_ended_.resume();  // the last step: the waiter may end the call, and this client's use
}

// The pump's waits end: the stream's (cancelled) and the request body's (abandoned).
void Client::stop_pump() {
  pump_stopped_ = true;
  h2_->cancel();
  from_->abandon_body();
}

net::Task<> Client::settle() {
  if (pump_running_ && !pump_stopped_) stop_pump();
  while (pump_running_) co_await pump_ended_.wait();
}

// Waits in the bulkhead's queue for a slot, at most timeouts.queue (within the route's timeout).
// The slot comes from whichever worker frees one: its wake-up is posted to this worker.
net::Task<bool> Client::wait_for_slot(Bulkhead& b, RequestSource& from) {
  auto waiter = std::make_shared<Bulkhead::Waiter>();
  auto queued = Bulkhead::Queued::kFull;
  from.set_deadline(RequestSource::Phase::kQueued, budget(up_->config().queue_timeout));
  queued_in_ = &b;
  queued_ = waiter;
  auto token = net::use_task;
  auto [granted] = co_await net::asio::async_initiate<decltype(token), void(bool)>(
      [&](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        waiter->wake = [h, ex = ex_](bool granted) {
          net::asio::post(ex, [h, granted] { std::move (*h)(granted); });
        };
        queued = b.wait(waiter);
        if (queued != Bulkhead::Queued::kWaiting)
          waiter->wake(queued == Bulkhead::Queued::kGranted);
      },
      token);
  queued_in_ = nullptr;
  queued_.reset();
  if (queued == Bulkhead::Queued::kWaiting) ++metrics_.upstreams[up_->name()].queued;
  if (!granted) fail_overloaded(b, queued == Bulkhead::Queued::kWaiting);
  co_return granted;
}

void Client::stop_waiting_for_slot() {
  if (queued_ && queued_in_->cancel(queued_.get())) queued_->wake(false);
  queued_in_ = nullptr;
  queued_.reset();
}

// 503 upstream_overloaded: every slot taken and the queue full (or none), or no slot freed in time.
void Client::fail_overloaded(const Bulkhead& b, bool waited) {
  ++metrics_.upstreams[up_->name()].rejected;
  http::HeaderList retry_after;
  retry_after.emplace_back("Retry-After", "1");
  std::string why =
      waited
          ? "freed no request slot within " +
                (deadline_binds_
                     ? deadline_text()
                     : config::format_duration(up_->config().queue_timeout) + " (timeouts.queue)")
          : "already has " + std::to_string(b.limit()) +
                " requests in flight (max_concurrent_requests)" +
                (b.max_pending()
                     ? " and " + std::to_string(b.max_pending()) + " waiting (max_pending)"
                     : "");
  fail(503, "upstream_overloaded", up_->name() + " " + why, std::move(retry_after));
}

// A new connection to the target (connected, and TLS set up, within the connect timeout). False
// after recording the failure.
net::Task<bool> Client::connect(RequestSource& from) {
  conn_.emplace(ex_);
  from.set_deadline(RequestSource::Phase::kConnect, budget(up_->config().connect_timeout));
  auto [ec] = co_await conn_->socket().async_connect(pool_->endpoint(), net::use_task);
  if (ec) {
    conn_.reset();
    retry_reason_ = RetryReason::kConnectFailure;
    upstream_done(timed_out_ ? observe::UpstreamOutcome::kTimeout
                             : observe::UpstreamOutcome::kConnectError);
    if (timed_out_) {
      fail(504, "upstream_connect_timeout",
           up_->name() + " did not accept a connection within " +
               timeout_text(up_->config().connect_timeout));
    } else {
      fail_upstream(502, "upstream_connect_failed", "refused the connection: " + ec.message());
    }
    co_return false;
  }
  boost::system::error_code ignored;
  conn_->socket().set_option(net::tcp::no_delay(true), ignored);
  conn_->socket().non_blocking(true, ignored);
  // HTTP/1.1: every send is a request the upstream answers. (An HTTP/2 connection also sends
  // what needs no answer, WINDOW_UPDATE and acknowledgements, so its reads keep Asio's way.)
  if (!http2_) conn_->expect_answers();
  if (up_->config().tls && !co_await handshake(*conn_)) {
    conn_.reset();
    co_return false;
  }
  co_return true;
}

// HTTP/2, when none of the target's connections has room (after a refused stream too: the
// session that refused it has none if it is going away): a stream on a new connection
// (connected, TLS with "h2" agreed by ALPN, within the connect timeout), which the pool then
// shares with the worker's other requests. False after recording the failure.
net::Task<bool> Client::open_session(RequestSource& from) {
  bool ok = co_await connect(from);
  if (ok && conn_->tls() && conn_->alpn() != "h2") {
    conn_->drop();
    conn_.reset();
    upstream_done(observe::UpstreamOutcome::kConnectError);
    fail_upstream(502, "upstream_tls_failed",
                  "did not agree to HTTP/2 (ALPN h2) in the TLS handshake");
    ok = false;
  }
  if (ok) {
    auto session = h2::Session::start(ex_, std::move(*conn_));
    conn_.reset();
    pool_->add_session(session);
    h2_ = session->open_stream(kResponseLimits);
  }
  co_return ok;
}

// The client side of TLS to the upstream, under what is left of the connect deadline: connect and
// handshake together take at most timeouts.connect.
net::Task<bool> Client::handshake(net::Stream& up) {
  const tls::ClientContext& ctx = *up_->config().tls;
  std::string_view name = ctx.server_name_for(up_->config().targets[target_].host);
  std::string why = "cannot make a TLS session for '" + std::string(name) + "'";
  if (up.start_tls_client(ctx, name, pool_->take_session())) {
    bool ok = co_await up.handshake(&why);
    if (ok) co_return true;
  }
  upstream_done(timed_out_ ? observe::UpstreamOutcome::kTimeout
                           : observe::UpstreamOutcome::kConnectError);
  if (timed_out_) {
    fail(504, "upstream_connect_timeout",
         up_->name() + " did not complete the TLS handshake within " +
             timeout_text(up_->config().connect_timeout));
  } else {
    // A server that speaks TLS but not HTTP/2 ends the handshake with this alert (RFC 7301 3.2).
    const bool no_h2 = http2_ && why.find("no application protocol") != std::string::npos;
    fail_upstream(502, "upstream_tls_failed",
                  no_h2 ? "did not agree to HTTP/2 (ALPN h2) in the TLS handshake: " + why
                        : "TLS handshake failed: " + why);
  }
  co_return false;
}

// Sends the request head and streams the body (validated, passed through unchanged). A retry
// first sends again what earlier tries read of the body (kept in replay_), then reads on.
net::Task<Client::Sent> Client::send_request(RequestSource& from) {
  // The pump leaves the deadlines to the response's reader (the downstream keeps one at a time).
  const bool pumped = pump_running_;
  if (!pumped) from.set_deadline(RequestSource::Phase::kStream, budget(stream_idle_));
  if (body_framing_ == http::Framing::kChunked && body_read_ == 0) request_chunked_.reset();
  bool done = !body_pending_;
  bool first = true;
  if (body_read_ > 0) {
    std::string_view head = head_.text(), body = replay_;
    bool ok = wire_send_now(head, body);
    if (ok && (!head.empty() || !body.empty())) ok = co_await wire_send_rest(head, body);
    if (!ok) co_return Sent::kUpstreamError;
    first = false;
  }
  while (true) {
    // What of the buffered bytes belongs to the body.
    std::string_view avail = from.body_buffered();
    size_t take = 0;
    const bool scan = max_message_bytes_ > 0;
    request_payload_.clear();
    if (!done && body_framing_ == http::Framing::kContentLength) {
      take = static_cast<size_t>(std::min<uint64_t>(content_length_ - body_read_, avail.size()));
      done = body_read_ + take == content_length_;
      if (scan) request_payload_.push_back(avail.substr(0, take));
    } else if (!done) {
      auto r = request_chunked_.feed(avail, scan ? &request_payload_ : nullptr);
      if (r.error) co_return Sent::kBadBody;
      if (request_chunked_.payload_bytes() > max_body_bytes_) co_return Sent::kTooLarge;
      take = r.consumed;
      done = r.done;
    }
    bool too_long = false;
    for (auto piece : request_payload_) {
      too_long = !messages_.feed(piece, max_message_bytes_);
      if (too_long) {
        // The messages before it go on (the payload's pieces are views into `avail`), then the
        // call ends.
        take = piece.data() + messages_.kept() - avail.data();
        done = false;
        break;
      }
    }
    std::string_view head = first ? head_.text() : std::string_view();
    std::string_view body = avail.substr(0, take);
    if (keep_replay_ && take) {
      keep_replay_ = replay_.size() + take <= replay_limit_;
      if (keep_replay_) replay_.append(body);
    }
    bool ok = wire_send_now(head, body);
    if (ok && (!head.empty() || !body.empty())) ok = co_await wire_send_rest(head, body);
    from.body_consumed(take, false);
    body_read_ += take;
    if (!ok) co_return Sent::kUpstreamError;
    if (too_long) co_return Sent::kMessageTooLarge;
    if (done) break;
    first = false;
    if (!pumped) from.set_deadline(RequestSource::Phase::kStream, budget(stream_idle_));
    if (!co_await from.body_read_more()) co_return Sent::kClientError;
  }
  body_pending_ = false;
  from.body_consumed(0, true);
  co_return Sent::kOk;
}

// Reads the response head (HTTP/1.1: parsed from in_; HTTP/2: the stream's), past 1xx interim
// responses. kResponse with the head in resp_; else the failure is recorded (or a retry asked for
// through retry_reason_).
net::Task<Client::Outcome> Client::read_response_head(RequestSource& from) {
  from.set_deadline(RequestSource::Phase::kResponse, budget(up_->config().response_timeout));
  size_t scanned = 0;
  while (true) {
    size_t end = 0;  // HTTP/1.1: the head's length in in_
    bool have = false, too_large = false;
    if (h2_) {
      auto got = h2_->take_head(&resp_);
      while (got == h2::Stream::Head::kNotYet) {
        co_await h2_->wait();
        got = h2_->take_head(&resp_);
      }
      have = got == h2::Stream::Head::kOk;
      too_large = got == h2::Stream::Head::kTooLarge;
    } else if ((end = http::find_head_end(in_.data(), scanned))) {
      http::ParseError err;
      if (http::parse_response_head(in_.data().substr(0, end), kResponseLimits,
                                    head_request_ ? "HEAD" : "GET", &resp_,
                                    &err) != http::ParseStatus::kComplete) {
        upstream_done(observe::UpstreamOutcome::kReset);
        fail_upstream(502, "upstream_bad_response",
                      "sent an invalid response: " + std::string(err.message));
        co_return Outcome::kFailed;
      }
      have = true;
    } else {
      scanned = in_.size();
      too_large = in_.size() >= kResponseLimits.max_head_bytes;
    }
    if (too_large) {
      upstream_done(observe::UpstreamOutcome::kReset);
      fail_upstream(502, "upstream_bad_response",
                    "sent a response head over " + std::to_string(kResponseLimits.max_head_bytes) +
                        " bytes or " + std::to_string(kResponseLimits.max_headers) + " fields");
      co_return Outcome::kFailed;
    }
    if (have) {
      if (resp_.status >= 100 && resp_.status < 200 && resp_.status != 101) {
        // Interim responses come before the final one (RFC 9112 6.3: a 1xx ends with its head).
        // A proxy forwards them (RFC 9110 15.2), and the downstream does (103 Early Hints), but
        // not 100 Continue: the gateway answers a client's Expect itself and never sends one
        // upstream (http/parser.cc), and the whole request body was sent before this head was
        // read, so a 100 here answers nobody (Envoy drops it too).
        if (resp_.status != 100) from.interim_response(resp_);
        in_.consume(end);
        scanned = 0;
        continue;
      }
      if (resp_.status == 101 && !upgrade_) {
        // Switching to a protocol nobody asked for (RFC 9110 15.2.2: only to one the request
        // named in Upgrade).
        upstream_done(observe::UpstreamOutcome::kReset);
        fail_upstream(502, "upstream_bad_response", "switched protocols unasked (101)");
        co_return Outcome::kFailed;
      }
      upgraded_ = resp_.status == 101;
      // A gRPC call's failure comes as a 200 whose head carries the status (trailers-only).
      std::optional<grpc::Code> grpc_status;
      if (grpc_) grpc_status = grpc::trailers_only_status(resp_);
      const int status = grpc_status ? grpc::http_status_for(*grpc_status) : resp_.status;
      upstream_done(status >= 500 ? observe::UpstreamOutcome::k5xx : observe::UpstreamOutcome::kOk);
      answered_ms_ = seconds_ * 1000;  // an upstream answered: logged as upstream_ms
      grpc_status_ = grpc_status ? static_cast<int>(*grpc_status) : -1;
      const RetryReason reason = grpc_status ? RetryReason::kGrpcStatus : RetryReason::kStatus;
      if ((grpc_status || resp_.status >= 500) && may_retry(reason)) {
        retry_reason_ = reason;  // not relayed: the connection is dropped, tried again
        co_return Outcome::kFailed;
      }
      resp_head_len_ = end;
      co_return Outcome::kResponse;
    }
    if (!h2_) {
      auto [ptr, room] = in_.prepare(net::kReadChunk, net::kStreamBuffer + net::kReadChunk);
      auto [ec, n] = co_await conn_->read_some(net::asio::buffer(ptr, room));
      if (!ec && n > 0) {
        in_.commit(n);
        continue;
      }
    }
    co_return no_response_head();
  }
}

// The connection closed (or the stream failed) before a whole response head came.
Client::Outcome Client::no_response_head() {
  // A pooled connection that the upstream closed as we sent, or a stream it refused: the request
  // goes again at once.
  const bool refused = h2_ && h2_->refused();
  if (!timed_out_ && in_.empty() && (may_resend_at_once() || may_resend_refused())) {
    if (refused) ++refused_resends_;
    return Outcome::kResendAtOnce;
  }
  if (refused && !timed_out_) {
    fail_refused();
    return Outcome::kFailed;
  }
  upstream_done(timed_out_ ? observe::UpstreamOutcome::kTimeout : observe::UpstreamOutcome::kReset);
  if (timed_out_) {
    retry_reason_ = RetryReason::kTimeout;
    fail(504, "upstream_timeout",
         up_->name() + " did not answer within " + timeout_text(up_->config().response_timeout));
  } else if (in_.empty()) {
    retry_reason_ = RetryReason::kReset;
    fail_upstream(502, "upstream_reset", "closed the connection without answering");
  } else {
    fail_upstream(502, "upstream_bad_response",
                  "closed the connection in the middle of the response head");
  }
  return Outcome::kFailed;
}

// --- the response body -----------------------------------------------------------------------

void Client::begin_body(size_t keep_trailers) {
  framing_ = resp_.framing;
  keep_alive_ = resp_.keep_alive;
  resp_remaining_ = framing_ == http::Framing::kContentLength ? resp_.content_length : 0;
  ended_clean_ = closed_at_end_ = false;
  in_.consume(resp_head_len_);  // resp_'s views are dead from here on
  if (framing_ == http::Framing::kChunked) {
    chunked_.reset();
    if (keep_trailers) chunked_.keep_trailers(keep_trailers);
  }
}

Client::Piece Client::body_piece(std::vector<std::string_view>* payload) {
  std::string_view avail = in_.data();
  size_t take = 0;
  Piece p;
  switch (framing_) {
    case http::Framing::kNone:
      p.done = true;
      break;
    case http::Framing::kContentLength:
      take = static_cast<size_t>(std::min<uint64_t>(resp_remaining_, avail.size()));
      resp_remaining_ -= take;
      p.done = resp_remaining_ == 0;
      break;
    case http::Framing::kChunked: {
      auto r = chunked_.feed(avail, payload);
      p.error = r.error;
      take = r.consumed;
      p.done = r.done;
      break;
    }
    case http::Framing::kUntilClose:
      take = avail.size();
      break;
  }
  p.bytes = avail.substr(0, take);
  if (payload && framing_ != http::Framing::kChunked && take) payload->push_back(p.bytes);
  if (p.done) ended_clean_ = take == avail.size();  // nothing beyond the body's end
  return p;
}

bool Client::read_body_now(bool* more) {
  if (!h2_) return false;
  auto [ptr, room] = in_.prepare(net::kReadChunk, net::kStreamBuffer);
  boost::system::error_code ec;
  size_t n = 0;
  if (!h2_->read_now(net::asio::buffer(ptr, room), &ec, &n)) return false;
  *more = body_read(ec, n);
  return true;
}

net::Task<bool> Client::read_body() {
  auto [ptr, room] = in_.prepare(net::kReadChunk, net::kStreamBuffer);
  boost::system::error_code ec;
  size_t n = 0;
  if (!h2_) {
    std::tie(ec, n) = co_await conn_->read_some(net::asio::buffer(ptr, room));
  } else {
    while (!h2_->read_now(net::asio::buffer(ptr, room), &ec, &n)) co_await h2_->wait();
  }
  co_return body_read(ec, n);
}

bool Client::body_read(boost::system::error_code ec, size_t n) {
  if (ec) {
    // For a close-delimited body, the close is the end; for any other, it is a failure.
    closed_at_end_ = framing_ == http::Framing::kUntilClose && ec == net::asio::error::eof;
    return false;
  }
  in_.commit(n);
  return true;
}

void Client::finish(bool upstream_ok, bool downstream_ok) {
  if (!upstream_ok) upstream_done(observe::UpstreamOutcome::kReset);
  in_.consume(in_.size());
  if (h2_) {
    // A stream whose response ended ends by itself; any other is cancelled. The connection
    // stays with the pool's other streams.
    if (!(ended_clean_ && downstream_ok && upstream_ok)) h2_->cancel();
    if (pump_running_) {
      stop_pump();  // the response is over, and so is the call: the pump drops the stream
    } else {
      h2_.reset();
    }
  } else if (ended_clean_ && keep_alive_ && downstream_ok && upstream_ok &&
             framing_ != http::Framing::kUntilClose) {
    pool_->give_back(std::move(*conn_), up_->config().max_idle_per_target, net::Clock::now());
  } else {
    conn_->drop();
  }
  conn_.reset();
  release();
}

// --- outcomes --------------------------------------------------------------------------------

void Client::fail(int status, std::string_view code, std::string message,
                  http::HeaderList headers) {
  error_ = http::ErrorResponse{status, std::string(code), std::move(message), std::move(headers)};
}

void Client::fail_upstream(int status, std::string_view code, std::string_view what) {
  fail(status, code, up_->name() + " (" + pool_->address() + ") " + std::string(what));
}

// An HTTP/2 stream the upstream refused, not to be sent again at once: it never processed it, so
// the retry policy may send it again whatever the method, as after a failed connect.
void Client::fail_refused() {
  retry_reason_ = RetryReason::kConnectFailure;
  upstream_done(observe::UpstreamOutcome::kConnectError);
  fail_upstream(503, "upstream_refused",
                "refused the request before processing it (HTTP/2 REFUSED_STREAM or GOAWAY)");
}

void Client::upstream_done(observe::UpstreamOutcome outcome) {
  outcome_ = outcome;
  const auto now = net::Clock::now();  // one clock read for the duration and the breaker
  seconds_ = std::chrono::duration<double>(now - start_).count();
  Breaker* breaker = up_->targets[target_].breaker;
  if (!breaker) return;
  auto moved =
      breaker->record(*up_->config().breaker, outcome == observe::UpstreamOutcome::kOk, now);
  if (moved) breaker_moved(target_, *moved);
}

}  // namespace gatehouse::upstream
