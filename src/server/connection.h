// One client connection: reads requests (keep-alive and pipelining), routes them, runs the route's
// filters, hands them to the upstream client (upstream/client.h) with bodies streamed both ways,
// and writes the response. Lives on one worker; everything here runs on that worker's thread.
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
#include "upstream/client.h"

namespace gatehouse::config {
struct Snapshot;
}

namespace gatehouse::server {

class Worker;
struct WorkerView;

class Connection : public std::enable_shared_from_this<Connection>,
                   private upstream::RequestSource {
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

  net::Task<> run();
  void refresh_view();
  net::Task<Head> read_head();
  net::Task<> handle_request();
  Step start_request();                        // id, limits, route; then the filters
  Step run_filters(size_t from, filters::FilterStatus paused_result);
  net::Task<filters::FilterStatus> await_filter(const filters::Filter& f);
  bool prepare_upstream_request();             // pick upstream and target, build the head
  net::Task<> relay_response();

  // upstream::RequestSource: the request body and the deadlines, for the upstream client.
  std::string_view body_buffered() override { return in_.data(); }
  void body_consumed(size_t n, bool done) override;
  net::Task<bool> body_read_more() override;
  void set_deadline(upstream::RequestSource::Phase phase, net::Clock::duration after) override;

  void fail(int status, std::string_view code, std::string message, http::HeaderList headers = {});
  void fail(const http::ErrorResponse& e) { fail(e.status, e.code, e.message, e.headers); }
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
  bool closed_ = false;
  bool busy_ = false;
  bool close_after_ = false;  // send Connection: close and stop after this response

  std::shared_ptr<WorkerView> view_;           // the snapshot and worker state this request uses
  const config::Snapshot* snap_ = nullptr;     // view_->snapshot
  net::Buffer in_;  // from the client
  std::string head_out_;
  std::string target_out_;  // the path and query sent upstream
  std::string path_out_;   // the normalised path, when it differs from the one sent
  std::string query_out_;  // the query without parameters a filter removed
  http::RequestHead req_;
  router::Match match_;
  filters::RequestContext ctx_;
  upstream::Client upstream_;  // the call to the upstream
  http::ErrorResponse error_;  // status 0: none
  std::vector<std::string_view> spans_;             // de-chunked payload pieces
  std::vector<net::asio::const_buffer> iov_;        // their buffers

  std::string client_ip_;
  bool client_trusted_ = false;
  std::string request_id_;
  // Per-request facts for the access log (copies: the head's views die with the buffer).
  std::string log_method_, log_path_;
  const config::Route* log_route_ = nullptr;
  std::string_view log_error_;
  int status_ = 0;
  uint64_t bytes_in_ = 0, bytes_out_ = 0;
  std::chrono::system_clock::time_point wall_start_;
  net::Clock::time_point start_;
  bool response_started_ = false;  // a byte of the response went to the client
  bool body_pending_ = false;      // request body bytes not yet read from the client
  bool head_consumed_ = true;      // req_'s views are dead once the head left in_
  // Request facts that outlive the head's views (the body is read after the head is consumed).
  bool req_is_head_ = false, req_http10_ = false, req_expect_continue_ = false;
  http::Framing req_framing_ = http::Framing::kNone;
  uint64_t req_length_ = 0;
  bool continue_sent_ = false;  // the client was told 100 Continue
};

}  // namespace gatehouse::server
