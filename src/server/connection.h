// One client connection: reads requests (keep-alive and pipelining), routes them, runs the route's
// filters, forwards to an upstream with bodies streamed both ways, and writes the response.
// Lives on one worker; everything here runs on that worker's thread.
//
// Errors the gateway answers itself are recorded with fail() (synchronous, cheap) and sent from one
// place, send_error(); the coroutines stay small, so their frames come from Asio's recycling
// allocator instead of malloc.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "filters/filter.h"
#include "http/chunked.h"
#include "http/error_response.h"
#include "http/message.h"
#include "observe/metrics.h"
#include "router/router.h"
#include "net/asio.h"
#include "net/buffer.h"
#include "net/stream.h"
#include "upstream/bulkhead.h"

namespace gatehouse::config {
struct RetryPolicy;
struct Snapshot;
}
namespace gatehouse::upstream {
class TargetPool;
}

namespace gatehouse::server {

class Worker;
struct WorkerView;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Worker& worker, net::Socket socket, std::shared_ptr<const tls::ServerContext> tls);
  ~Connection();
  // Serves a connection accepted on a listener; `tls` when that listener terminates TLS.
  static void start(Worker& worker, net::Socket socket,
                    std::shared_ptr<const tls::ServerContext> tls);

  // Drain: an idle connection closes now; a busy one closes after its current response.
  void drain();
  void close_now();

 private:
  enum class Phase { kClientIdle, kClientRead, kQueued, kUpstreamConnect, kUpstreamResponse, kStream };
  enum class Head { kRequest, kError, kClose };
  enum class Step { kForward, kPaused, kDone };
  enum class Outcome { kDone, kRetry };
  enum class Sent { kOk, kUpstreamError, kClientError, kBadBody, kTooLarge };

  // The upstream side of the current request.
  struct Exchange {
    const config::Upstream* up = nullptr;
    upstream::TargetPool* pool = nullptr;
    size_t up_index = 0;
    size_t target = 0;
    bool retry_allowed = false;  // the one immediate retry after a dead pooled connection (safe method)
    bool new_connection = false;  // that retry: not on another pooled connection, idle as long
    bool idempotent = false;     // a safe method, or an Idempotency-Key
    bool reused = false;
    net::Clock::time_point start;
    net::Clock::time_point route_deadline = net::Clock::time_point::max();  // route `timeout`
  };

  net::Task<> run();
  void refresh_view();
  net::Task<Head> read_head();
  net::Task<> handle_request();
  Step start_request();                        // id, limits, route; then the filters
  Step run_filters(size_t from, filters::FilterStatus paused_result);
  net::Task<filters::FilterStatus> await_filter(const filters::Filter& f);
  bool prepare_upstream_request();             // pick upstream and target, build the head
  bool admit_target();                         // past open circuit breakers
  // Retries (the upstream's or the route's `retry`): why the last try failed, whether another
  // may follow, and the wait before it.
  enum class RetryReason : uint8_t { kNone, kConnectFailure, kReset, kTimeout, kStatus };
  const config::RetryPolicy* retry_policy() const;
  bool may_retry(RetryReason reason);
  // Every request body byte read so far can be sent again (trivially, when none was read).
  bool body_replayable() const { return body_read_ == 0 || keep_replay_; }
  // A pooled connection died under this try: it may go again at once, on a new connection.
  bool may_resend_at_once() const { return ex_.reused && ex_.retry_allowed && body_replayable(); }
  net::Task<> before_retry();
  net::Task<Outcome> forward();
  // The upstream's bulkhead is full: wait for a slot (max_pending), else answer 503.
  net::Task<bool> wait_for_slot(upstream::Bulkhead& b);
  void stop_waiting_for_slot();  // the wait's deadline passed, or the client left
  void fail_overloaded(const upstream::Bulkhead& b, bool waited);
  net::Task<std::optional<net::Stream>> lease_upstream();
  net::Task<bool> upstream_handshake(net::Stream& up);
  net::Task<Sent> send_request(net::Stream& up);
  net::Task<size_t> read_response_head(net::Stream& up, Outcome* outcome);
  net::Task<> relay_response(net::Stream& up, size_t head_len);

  void fail(int status, std::string_view code, std::string message, http::HeaderList headers = {});
  void fail_upstream(int status, std::string_view code, std::string_view what);
  void upstream_done(observe::UpstreamOutcome outcome);
  net::Clock::duration upstream_budget(net::Clock::duration after);
  void breaker_moved(size_t target);  // log and count a circuit breaker's new state
  net::Task<> send_error();
  bool write_client_now(std::string_view& a, std::string_view& b, bool* ok);
  net::Task<bool> write_client(std::string_view a, std::string_view b = {});
  net::Task<bool> read_client();
  void begin_request();
  void consume_head();
  void finish_request_log();
  void set_deadline(Phase phase, net::Clock::duration after);
  void arm_timer(net::Clock::time_point at);
  void on_timer();

  Worker& w_;
  net::Stream client_;
  net::Timer timer_;
  net::Clock::time_point deadline_;
  net::Clock::time_point armed_at_ = net::Clock::time_point::max();
  Phase phase_ = Phase::kClientIdle;
  net::Stream* upstream_ = nullptr;  // the upstream connection in use, for the timer to cancel
  upstream::Bulkhead* queued_in_ = nullptr;  // the bulkhead whose queue this request waits in ...
  std::shared_ptr<upstream::Bulkhead::Waiter> queued_;  // ... as this waiter
  bool upstream_timed_out_ = false;
  bool closed_ = false;
  bool busy_ = false;
  bool close_after_ = false;  // send Connection: close and stop after this response

  std::shared_ptr<WorkerView> view_;           // the snapshot and worker state this request uses
  const config::Snapshot* snap_ = nullptr;     // view_->snapshot
  net::Buffer in_;   // from the client
  net::Buffer up_;   // from the upstream
  std::string head_out_;
  std::string target_out_;
  std::string path_out_;   // the normalised path, when it differs from the one sent
  std::string query_out_;  // the query without parameters a filter removed
  http::RequestHead req_;
  http::ResponseHead resp_;
  http::ChunkedDecoder chunked_;
  router::Match match_;
  filters::RequestContext ctx_;
  Exchange ex_;
  http::ErrorResponse error_;  // status 0: none
  std::vector<std::string_view> spans_;             // de-chunked payload pieces
  std::vector<net::asio::const_buffer> iov_;        // their buffers

  std::string client_ip_;
  bool client_trusted_ = false;
  std::string request_id_;
  // Per-request facts for the access log (copies: the head's views die with the buffer).
  std::string log_method_, log_path_;
  const config::Route* log_route_ = nullptr;
  const config::Upstream* log_upstream_ = nullptr;
  std::string_view log_target_;
  std::string_view log_error_;
  int status_ = 0;
  uint64_t bytes_in_ = 0, bytes_out_ = 0;
  std::chrono::system_clock::time_point wall_start_;
  net::Clock::time_point start_;
  double upstream_ms_ = -1;
  std::optional<observe::UpstreamOutcome> upstream_outcome_;
  double upstream_seconds_ = 0;  // to the response head, or to the failure
  bool response_started_ = false;  // a byte of the response went to the client
  bool body_pending_ = false;      // request body bytes not yet read from the client
  RetryReason retry_reason_ = RetryReason::kNone;
  net::Clock::duration retry_after_{};  // an upstream's Retry-After to wait before the retry
  uint32_t tries_ = 0;  // retries made for the current request
  bool route_deadline_binds_ = false;  // the last upstream deadline set is the route's
  bool head_consumed_ = true;      // req_'s views are dead once the head left in_
  // Request facts that outlive the head's views (a retry needs them after the head is consumed).
  bool req_is_head_ = false, req_http10_ = false, req_expect_continue_ = false;
  http::Framing req_framing_ = http::Framing::kNone;
  uint64_t req_length_ = 0;
  uint64_t body_read_ = 0;      // request body bytes read from the client, as received
  bool continue_sent_ = false;  // the client was told 100 Continue
  // Replay for retries: the body bytes read so far, kept while they fit retry.max_replay_body.
  std::string replay_;
  uint64_t replay_limit_ = 0;
  bool keep_replay_ = false;    // replay_ holds every body byte read so far
};

}  // namespace gatehouse::server
