// The outbound client of the proxy path. For one request at a time it chooses a target
// through the balancer (past unhealthy targets and open circuit breakers), takes a slot in the
// upstream's bulkhead (or waits in its queue), leases a pooled connection or connects (with TLS),
// sends the request head and streams the body, and reads the response head. Where it is safe
// (RFC 9110 9.2.2) and the policy asks, it retries: each retry goes back through the balancer, so
// weights, health and breakers apply to every try. The caller then relays the response body
// through it, and the connection goes back to its pool when the response ended cleanly.
//
// To an HTTP/2 upstream (`protocol: http2`), a try takes a stream on one of the target's
// multiplexed connections instead (upstream/h2/), which takes the same head and gives back a
// parsed head and the body's HTTP/1.1 bytes: one request life for both protocols. A stream the
// upstream refused (REFUSED_STREAM, or above a GOAWAY's last id) was never processed: it goes
// again at once, whatever the method.
//
// The client knows nothing of the protocol the request arrived on: the downstream side gives it
// the request body and keeps its deadlines through RequestSource. One Client per downstream
// connection (or stream), reused request after request; used on one worker's thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "grpc/status.h"
#include "http/chunked.h"
#include "http/error_response.h"
#include "http/message.h"
#include "http/outgoing_request.h"
#include "net/asio.h"
#include "net/buffer.h"
#include "net/stream.h"
#include "net/waiter.h"
#include "observe/metrics.h"
#include "upstream/upstream.h"

namespace gatehouse::config {
struct RetryPolicy;
struct Route;
}  // namespace gatehouse::config

namespace gatehouse::upstream {

namespace h2 {
class Stream;
}

// What the client needs from the side that carries the request to the gateway.
class RequestSource {
 public:
  // kStream: a body streaming either way (a stall); kSend: the downstream taking response bytes.
  enum class Phase : uint8_t { kQueued, kConnect, kResponse, kStream, kSend };
  // The request body bytes buffered now, in the framing the request head declares (passed on as
  // they came: a chunked body stays chunked).
  virtual std::string_view body_buffered() = 0;
  // The first n of those bytes were sent on; `done`: the body ended with them.
  virtual void body_consumed(size_t n, bool done) = 0;
  // Reads more of the body (after telling the client 100 Continue, when it asked for that).
  // False: the client is gone.
  virtual net::Task<bool> body_read_more() = 0;
  // The call no longer wants the body (its response ended first, or it failed while the body
  // streamed beside it): a body_read_more() waiting, or to come, returns false.
  virtual void abandon_body() {}
  // All of the body has arrived: body_buffered() holds it to its end (a unary gRPC call's
  // message, usually). A full-duplex call sends it as any other request's.
  virtual bool body_whole() const { return false; }
  // An interim (1xx) response the upstream sent before its final one (not 100 Continue, which
  // the client drops): forwarded at once when the downstream can take it, dropped otherwise;
  // never waited for (a client that does not read holds up nothing). `head` is valid during the
  // call only.
  virtual void interim_response(const http::ResponseHead& head) = 0;
  // A deadline for a phase of the call, `after` from now. When it passes, the owner calls
  // Client::deadline_passed() (kConnect, kResponse, kQueued) or gives up on the exchange (kStream,
  // kSend). While the request body is still being read, the owner may end a kStream deadline
  // sooner (its own limit on the whole body): body_read_more() then returns false.
  virtual void set_deadline(Phase phase, net::Clock::duration after) = 0;

 protected:
  ~RequestSource() = default;
};

// Watches a call's tries (distributed tracing: a client span each). try_started() comes as a try
// begins, before its head is sent, and may rewrite values in the head as long as their lengths
// stay (a traceparent's span id); try_ended() when its outcome is known: an HTTP status, or
// status 0 and why it failed. The try that gets the response ends when its caller is done with
// it, which the observer is told otherwise.
class TryObserver {
 public:
  virtual void try_started(http::OutgoingRequest& head, std::string_view target) = 0;
  // `answered`: this try's response goes to the caller (its span ends with the response).
  virtual void try_ended(int status, std::string_view error, bool answered) = 0;

 protected:
  ~TryObserver() = default;
};

// What one call is about.
struct Call {
  const config::Route* route = nullptr;  // its `retry` and `timeout`
  Upstream* upstream = nullptr;
  std::string_view hash_key;  // consistent_hash: the request's key
  std::string_view method;
  bool idempotency_key = false;  // the request carries an Idempotency-Key
  bool head_request = false;     // HEAD: the response has no body, whatever it says
  http::Framing body_framing = http::Framing::kNone;
  uint64_t content_length = 0;
  uint64_t max_body_bytes = 0;         // a chunked body past this gets 413
  net::Clock::duration stream_idle{};  // the longest pause while a body streams either way
  bool upgrade = false;                // a WebSocket upgrade: a 101 answers it (then upgraded())
  // The request body may stream while the response is read (an HTTP/2 client's call to an
  // HTTP/2 upstream): full duplex, as a bidirectional gRPC call needs.
  bool duplex = false;
  // A gRPC call: its retries follow the policy's gRPC statuses whatever its method (gRPC's own
  // retry design: the service's owner says which calls may go again), and a trailers-only
  // answer's status counts as the HTTP status it stands for (breakers, metrics).
  bool grpc = false;
  uint64_t max_message_bytes = 0;  // a gRPC call's request messages, each (0: any)
  // The caller's own deadline for the call (a gRPC call's grpc-timeout), when sooner than the
  // route's `timeout`; `deadline_text` names it in a timeout's message.
  net::Clock::time_point deadline = net::Clock::time_point::max();
  std::string_view deadline_text;
  TryObserver* observer = nullptr;  // a traced call's
};

class Client {
 public:
  Client(const net::Executor& ex, observe::MetricsShard& metrics, Random& rng);
  ~Client() { release(); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Chooses the first target of `call`. False, with error() set (503), when none will take it.
  bool start(const Call& call);
  // The current target's "ip:port" (a Host for requests that had none).
  const std::string& target_address() const { return pool_->address(); }
  // The request head to send, written by the caller between start() and send().
  http::OutgoingRequest& head() { return head_; }

  // Sends the request and its body, retrying where allowed, until a response head arrives: true,
  // and response() is that head; or false, and error() says what to answer (499 client_closed:
  // nothing, the client left mid-body).
  net::Task<bool> send(RequestSource& from);
  const http::ResponseHead& response() const { return resp_; }
  // After a 101 to an upgrade: the connection, now the upstream's end of a tunnel, and the bytes
  // that came after the head (valid until finish(), which closes the connection).
  bool asks_upgrade() const { return upgrade_; }  // Call::upgrade
  bool upgraded() const { return upgraded_; }     // HTTP/1.1 upstreams only
  net::Stream& upgraded_stream() { return *conn_; }
  std::string_view upgraded_bytes() const { return in_.data().substr(resp_head_len_); }

  // After send() returned true and the caller is done with response() (its views die here).
  // `keep_trailers`: a chunked body's trailer section is kept (up to that many bytes) for
  // trailers().
  void begin_body(size_t keep_trailers = 0);
  // Then the response body, in its own framing (a chunked body passes through chunked); with
  // `payload`, the pieces of its content (de-chunked) are listed there too.
  struct Piece {
    std::string_view bytes;  // to send on, then drop with body_sent()
    bool done = false;       // the body ends with these bytes
    bool error = false;      // the framing is broken: stop after these bytes
  };
  Piece body_piece(std::vector<std::string_view>* payload);
  void body_sent(size_t n) { in_.consume(n); }
  // Waits for more body bytes; false when the upstream closed (for a close-delimited body, that
  // is its end: body_ended_by_close()) or failed.
  net::Task<bool> read_body();
  // The same without a coroutine when the bytes (or the body's end, or a failure) are here
  // already: true, with read_body()'s answer in *more; false: co_await read_body().
  bool read_body_now(bool* more);
  bool body_ended_by_close() const { return closed_at_end_; }
  // The trailer section's lines, once a chunked body ended (when begin_body() kept them).
  // The chunked body's trailer section; none for any other framing (the decoder may still hold
  // an earlier response's).
  std::string_view trailers() const {
    return framing_ == http::Framing::kChunked ? chunked_.trailers() : std::string_view();
  }
  // The response was relayed (or abandoned): the connection goes back to its pool when the body
  // ended where its framing said, nothing failed and the upstream keeps it open; else it is
  // closed (and a failed upstream counted as a reset).
  void finish(bool upstream_ok, bool downstream_ok);
  // The response head arrived but its body will not be relayed (the gateway answers otherwise):
  // the connection is closed, not pooled, unless the response has no body (a 304 a filter
  // answers from).
  void abandon() {
    begin_body();
    auto piece = body_piece(nullptr);
    finish(true, piece.done && !piece.error && piece.bytes.empty());
  }

  // A full-duplex call's request body may still be streaming, beside the response, when send()
  // returns (the pump: it reads the RequestSource and sends through this client). finish()
  // stops it; settle() stops it and waits for its end, the caller's last step of the call.
  bool pumping() const { return pump_running_; }
  net::Task<> settle();

  // The owner's timer says that a phase's deadline passed.
  void deadline_passed(RequestSource::Phase phase);
  // The downstream is gone: close the upstream connection in use and leave any queue.
  void abort();
  // The time a phase of the current call may take: `after`, cut short by the route's timeout.
  net::Clock::duration budget(net::Clock::duration after);
  // What is left of the call's deadline (max when it has none).
  net::Clock::duration time_left() const;

  // What the call did, for the answer, the access log and metrics.
  const http::ErrorResponse& error() const { return error_; }
  const config::Upstream* upstream_config() const { return up_ ? &up_->config() : nullptr; }
  std::string_view target() const { return logged_target_; }
  std::optional<observe::UpstreamOutcome> outcome() const { return outcome_; }
  // A gRPC call answered trailers-only: the status in its head (-1: none, or not a gRPC call).
  int trailers_only_status() const { return grpc_status_; }
  double seconds() const { return seconds_; }          // to the response head, or to the failure
  double answered_ms() const { return answered_ms_; }  // -1: no upstream answered
  double connect_ms() const { return connect_ms_; }    // the last try's; -1: none made
  uint32_t retries() const { return tries_; }
  void reset();  // before the next request

 private:
  enum class Outcome { kResponse, kFailed, kResendAtOnce };
  enum class Sent { kOk, kUpstreamError, kClientError, kBadBody, kTooLarge, kMessageTooLarge };
  enum class RetryReason : uint8_t {
    kNone,
    kConnectFailure,
    kReset,
    kTimeout,
    kStatus,      // resp_'s HTTP status
    kGrpcStatus,  // grpc_status_, of a trailers-only answer
  };

  bool choose_target(size_t exclude);
  void breaker_moved(size_t target, Breaker::State to);
  const config::RetryPolicy* retry_policy() const;
  bool may_retry(RetryReason reason);
  // Every request body byte read so far can be sent again (trivially, when none was read).
  bool body_replayable() const { return body_read_ == 0 || keep_replay_; }
  // This try may go again at once on a new connection, should its connection turn out dead.
  bool resendable() const { return resend_allowed_ && body_replayable(); }
  // A pooled connection died under this try: it may go again at once, on a new connection.
  bool may_resend_at_once() const { return reused_ && resendable(); }
  // The HTTP/2 upstream refused this try's stream: it may go again at once, whatever the method.
  bool may_resend_refused() const;
  net::Task<> before_retry();
  net::Task<Outcome> try_once(RequestSource& from);
  void try_ended(Outcome outcome);  // tells the observer
  net::Task<bool> wait_for_slot(Bulkhead& b, RequestSource& from);
  void stop_waiting_for_slot();
  void fail_overloaded(const Bulkhead& b, bool waited);
  net::Task<bool> connect(RequestSource& from);
  net::Task<bool> open_session(RequestSource& from);  // HTTP/2: a stream on a new connection
  net::Task<bool> handshake(net::Stream& up);
  net::Task<Sent> send_request(RequestSource& from);
  Outcome not_sent(Sent sent);  // the request could not be sent whole
  void fail_body(Sent sent);    // why, when not for the upstream's failure
  void start_pump(RequestSource& from);
  net::Task<> pump(RequestSource& from);
  void stop_pump();
  // The try's connection (HTTP/1.1) or stream (HTTP/2): the head (a, its text, while not sent)
  // then the body, as bytes; the stream takes the head's fields instead of its text.
  bool wire_send_now(std::string_view& a, std::string_view& b);
  net::Task<bool> wire_send_rest(std::string_view a, std::string_view b);
  void drop_wire();  // the connection closed, or the stream cancelled
  bool body_read(boost::system::error_code ec, size_t n);  // read_body()'s answer to a read
  net::Task<Outcome> read_response_head(RequestSource& from);
  Outcome no_response_head();
  std::string timeout_text(config::Duration own) const;
  std::string deadline_text() const;

  void fail(int status, std::string_view code, std::string message, http::HeaderList headers = {});
  void fail_upstream(int status, std::string_view code, std::string_view what);
  void fail_refused();
  void upstream_done(observe::UpstreamOutcome outcome);
  void release();  // the bulkhead slot and the balancer's in-flight count of the try

  net::Executor ex_;
  observe::MetricsShard& metrics_;
  Random& rng_;

  // The call.
  const config::Route* route_ = nullptr;
  Upstream* up_ = nullptr;
  std::string_view hash_key_;
  TargetPool* pool_ = nullptr;
  size_t target_ = 0;
  bool resend_allowed_ = false;  // the one immediate resend after a dead pooled connection
  bool new_connection_ = false;  // that resend: on a new connection, not another pooled one
  bool idempotent_ = false;      // a safe method, or an Idempotency-Key
  bool reused_ = false;
  bool head_request_ = false;
  bool http2_ = false;     // the upstream speaks HTTP/2
  bool upgrade_ = false;   // the call asks for a protocol upgrade ...
  bool upgraded_ = false;  // ... and the upstream switched (101)
  bool duplex_ = false;    // Call::duplex
  bool grpc_ = false;      // Call::grpc
  int grpc_status_ = -1;   // a trailers-only answer's (-1: none)
  uint64_t max_message_bytes_ = 0;
  grpc::MessageScanner messages_;                  // the request's, held to that
  std::vector<std::string_view> request_payload_;  // a chunked body's pieces (scratch)
  http::Framing body_framing_ = http::Framing::kNone;
  uint64_t content_length_ = 0;
  uint64_t max_body_bytes_ = 0;
  net::Clock::duration stream_idle_{};
  bool body_pending_ = false;             // request body bytes not yet sent on
  http::ChunkedDecoder request_chunked_;  // a chunked request body's framing, checked as it goes
  RequestSource* from_ = nullptr;         // the call's request
  TryObserver* observer_ = nullptr;       // Call::observer
  bool observed_try_ = false;             // it was told of a try that has not ended
  net::Clock::time_point start_;
  // The whole call's: the route's `timeout`, or the caller's (Call::deadline) when sooner.
  net::Clock::time_point deadline_ = net::Clock::time_point::max();
  bool deadline_is_callers_ = false;
  std::string deadline_text_;    // the caller's, for messages
  bool deadline_binds_ = false;  // the last budget() was cut by it
  http::OutgoingRequest head_;
  std::vector<uint8_t> allowed_;  // targets a second pick may choose (scratch)

  // The try in progress.
  std::optional<net::Stream> conn_;           // the upstream connection: leased, or being made
  std::shared_ptr<h2::Stream> h2_;            // HTTP/2: the try's stream instead
  uint32_t refused_resends_ = 0;              // of the call's streams the upstream refused
  bool pump_running_ = false;                 // the try's body streams beside its response ...
  bool pump_stopped_ = false;                 // ... until stop_pump() (else its own end) ...
  std::optional<Sent> pump_sent_;             // ... which ended it so
  net::Waiter pump_ended_;                    // settle()'s wait for it
  Bulkhead* queued_in_ = nullptr;             // the bulkhead whose queue the call waits in ...
  std::shared_ptr<Bulkhead::Waiter> queued_;  // ... as this waiter
  bool timed_out_ = false;
  bool aborted_ = false;      // abort(): no resend, no retry
  Bulkhead* slot_ = nullptr;  // a slot taken in this bulkhead
  bool counted_ = false;      // the balancer counts the try as in flight on target_
  net::Buffer in_;            // from the upstream
  http::ResponseHead resp_;
  size_t resp_head_len_ = 0;
  http::Framing framing_ = http::Framing::kNone;  // of the response body being relayed
  bool keep_alive_ = false;                       // the upstream keeps the connection open after it
  uint64_t resp_remaining_ = 0;                   // Content-Length bytes still to come
  bool ended_clean_ = false;    // the body ended where its framing said, nothing after it
  bool closed_at_end_ = false;  // a close-delimited body ended by the close
  http::ChunkedDecoder chunked_;

  // Retries.
  RetryReason retry_reason_ = RetryReason::kNone;
  net::Clock::duration retry_after_{};  // an upstream's Retry-After to wait before the retry
  uint32_t tries_ = 0;                  // retries made
  uint64_t body_read_ = 0;              // request body bytes sent on (and read), as received
  std::string replay_;                  // those bytes, kept while they fit retry.max_replay_body
  uint64_t replay_limit_ = 0;
  bool keep_replay_ = false;  // replay_ holds every body byte read so far

  // The result.
  http::ErrorResponse error_;  // status 0: none
  std::string_view logged_target_;
  std::optional<observe::UpstreamOutcome> outcome_;
  double seconds_ = 0;
  double answered_ms_ = -1;
  double connect_ms_ = -1;
};

}  // namespace gatehouse::upstream
