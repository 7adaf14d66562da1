// The life of one request, whatever protocol carried it: request id, the body limit, path
// normalisation, routing, the request filters, the call to the upstream (upstream::Client, which
// chooses the target and retries), the response relayed to the client, and the access log line
// and metrics. A codec (src/http1/ today; an HTTP/2 stream next) parses a request head, hands it
// to serve() with itself as the Downstream, and writes what the exchange gives it in its own
// framing. As Envoy's connection manager sits between its codecs and its filters, and Pingora's
// Session hides HTTP/1 and HTTP/2 from the proxy phases.
//
// Reused request after request (its buffers keep their capacity): a codec takes one from its
// worker's pool for a request and gives it back after (end()); on one worker's thread.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "exchange/context.h"
#include "exchange/request_body.h"
#include "filters/filter.h"
#include "http/error_response.h"
#include "http/message.h"
#include "net/asio.h"
#include "router/router.h"
#include "trace/request_trace.h"
#include "upstream/client.h"
#include "websocket/tunnel.h"

namespace gatehouse::exchange {

// The codec's side of one exchange: the request body and the deadlines (as the upstream client
// takes them), the client's address, and the response.
class Downstream : public upstream::RequestSource {
 public:
  virtual std::string_view peer_ip() const = 0;
  virtual bool peer_trusted() const = 0;  // the peer is in server.trusted_proxies
  virtual bool secure() const = 0;        // the request came over TLS
  virtual std::string_view tls_version() const { return {}; }  // its TLS version (TLSv1.3)
  virtual std::string_view protocol() const = 0;  // HTTP/1.0, HTTP/1.1, HTTP/2 (for the log)
  // A response's trailer fields reach the client apart from its payload (HTTP/2's HEADERS after
  // the DATA): send_chunk() takes them when the upstream's chunked body ends with some. HTTP/1.1
  // passes a chunked body's trailers on inside it, as they came.
  virtual bool carries_trailers() const { return false; }
  // The request body may go on arriving while the response goes out (HTTP/2's streams; an
  // HTTP/1.1 connection reads one message at a time): a call may stream both ways at once.
  virtual bool full_duplex() const { return false; }
  // The method and status as the client saw them, for the access log and metrics, where the
  // codec translated the exchange's (HTTP/2's extended CONNECT is a GET upgrade inside).
  virtual std::string_view client_method(std::string_view method) const { return method; }
  virtual int client_status(int status) const { return status; }
  // The exchange is done with the request head's views (the head may leave the codec's buffer).
  virtual void release_head() = 0;
  // The request body did not arrive within the codec's limit on it (server.timeouts.body_read):
  // why body_read_more() returned false.
  virtual bool body_timed_out() const = 0;

  // Starts the response with `head` (the upstream's; the codec drops hop-by-hop fields and frames
  // it) without the headers named in `remove` (lower case), plus `add`; nothing is written yet.
  // *payload: the codec wants a chunked body de-chunked. `rewritten`: filters rewrite the body, it
  // comes through send_chunk() (its length unknown until its end).
  virtual void start_response(const http::ResponseHead& head, const http::HeaderList& add,
                              const std::vector<std::string>& remove, std::string_view request_id,
                              bool rewritten, bool* payload) = 0;
  // Writes the response head (the first time) and `body`, in the response's own framing: as much
  // as goes now, synchronously. True when all went out or the client broke (*ok false); what is
  // left stays in `body` for send().
  virtual bool send_now(std::string_view& body, bool* ok) = 0;
  virtual net::Task<bool> send(std::string_view body) = 0;
  // The same for de-chunked payload pieces (when start_response asked for them): all of them
  // at once if the codec has room (true; *ok false if the client broke), else none (false).
  virtual bool send_payload_now(const std::vector<std::string_view>&, bool*) { return false; }
  virtual net::Task<bool> send_payload(const std::vector<std::string_view>& pieces) = 0;
  // A piece of a rewritten body, framed by the codec (the head goes first, the first time); with
  // `trailers` (possibly empty), the last.
  virtual net::Task<bool> send_chunk(std::string_view data, const http::HeaderList* trailers) = 0;
  // After start_response() with a 101: the connection becomes a WebSocket tunnel to `upstream`
  // (the head goes first), until either side closes it; `upstream_first`: what the upstream
  // sent after its 101. What passed each way. A codec that cannot tunnel returns at once.
  virtual net::Task<websocket::Tunnel::Bytes> tunnel(net::Stream& upstream,
                                                     std::string_view upstream_first,
                                                     const config::WebSocket& limits) = 0;
  // The gateway's own answer to the request (or, once the response has started, a close).
  // Its JSON body names the request id, and the trace id when the request is traced.
  virtual net::Task<> answer(const http::ErrorResponse& e, std::string_view request_id,
                             std::string_view trace_id) = 0;
  // The client is gone (or the response is otherwise done with): close the connection after it.
  virtual void close_after() = 0;
  // The upstream failed mid-body: the response cannot be completed as framed, and the client
  // must not take what it got for the whole (RFC 9112 8). The connection closes after it, and
  // where a close would mark the end of the body (close-delimited framing), it is reset instead.
  virtual void cut_response() = 0;
  virtual uint64_t bytes_received() const = 0;  // of this request, head included
  virtual uint64_t bytes_sent() const = 0;      // of its response

 protected:
  ~Downstream() = default;
};

class Exchange {
 public:
  explicit Exchange(WorkerContext& worker);

  // A new request: its clock starts (when its head has arrived). `view`: the one to serve it on
  // (a composite's leg keeps its client's); else the worker's current one.
  void begin(std::shared_ptr<View> view = nullptr);
  // Serves a request whose head the codec parsed, to the end: the upstream's response relayed, or
  // the gateway's own answer.
  // `route`: a composite's leg, served on the leg's route instead of the one the request matches.
  net::Task<> serve(http::RequestHead& req, Downstream& down, const config::Route* route = nullptr);
  // Answers a request the codec refused before serving it (a malformed or oversized head).
  net::Task<> refuse(int status, std::string_view code, std::string message, Downstream& down);
  // The access log line and metrics of the request, once its response is written.
  void finish(const Downstream& down);
  // Back to a pool until the next request: lets go of the view (a pooled exchange must not keep
  // a retired snapshot alive) and of a body buffer a large response grew.
  void end();

  // The codec's timer: an upstream phase's deadline passed.
  void deadline_passed(upstream::RequestSource::Phase phase) { upstream_.deadline_passed(phase); }
  // The connection is closing: cancel the upstream call.
  void abort() { upstream_.abort(); }

 private:
  enum class Step { kForward, kPaused, kDone, kCompose };

  Step start(Downstream& down);  // id, limits, route; then the filters
  Step run_filters(size_t from, filters::FilterStatus paused_result, Downstream& down);
  net::Task<filters::FilterStatus> await_filter(const filters::Filter& f);
  bool start_upstream(Downstream& down);  // the upstream, its client call, the head to send
  upstream::Call make_call(Downstream& down);
  void write_upstream_head(Downstream& down, upstream::Client& client);
  void start_background(Downstream& down);  // a filter's refresh_in_background()
  net::Task<> relay_response(Downstream& down);
  net::Task<> compose(Downstream& down);  // a composite route's legs
  net::Task<bool> read_whole_body(Downstream& down, http::Framing framing, uint64_t length,
                                  std::string* out, std::optional<http::ErrorResponse>* refused);
  bool websocket_upgrade() const;  // while the request head is there
  net::Task<> tunnel(Downstream& down);
  net::Task<> relay_rewritten(Downstream& down);  // through the filters that watch the body
  void start_rewritten(Downstream& down, const http::ResponseHead& head);
  void hold_head(const http::ResponseHead& head);
  bool rewrites_body() const;
  bool has_body() const;  // the upstream's response has a body (RFC 9110 6.4.1)
  void tap(const std::vector<std::string_view>& pieces, bool end);
  void note_grpc_status(const http::HeaderList& trailers);
  // The upstream call is gRPC: the client's, or one a filter made of the request (transcoding).
  bool grpc_call() const { return grpc_ || ctx_.upstream_grpc; }
  void answer_upstream_failure();
  // `status_sent`: a gRPC call's failure was told in its trailers (end_grpc_call): not cut.
  void end_relay(Downstream& down, bool up_ok, bool down_ok, bool status_sent = false);
  net::Task<bool> end_grpc_call(Downstream& down, const http::ErrorResponse& why);
  void fail(int status, std::string_view code, std::string message, http::HeaderList headers = {});
  void fail(http::ErrorResponse e);
  bool run_response_filters(int status, const http::ResponseHead* head);
  void respond_with_reply();
  net::Task<> stream_reply(Downstream& down);  // a filter's answer with a ReplyBody
  void end_trace(const Downstream& down, const observe::AccessRecord& r);

  WorkerContext& w_;
  std::shared_ptr<View> view_;  // the snapshot and worker state this request uses
  const config::Snapshot* snap_ = nullptr;
  const config::Route* route_ = nullptr;  // a composite's leg: the route it is served on
  http::RequestHead* req_ = nullptr;
  router::Match match_;
  filters::RequestContext ctx_;
  trace::RequestTrace trace_;  // declared before upstream_, which may hold it as its observer
  upstream::Client upstream_;
  http::ErrorResponse error_;  // status 0: none
  std::string request_id_;
  std::string path_out_;                 // the normalised path, when it differs from the one sent
  std::string query_out_;                // the query without parameters a filter removed
  std::string target_out_;               // the path and query sent upstream
  std::vector<std::string_view> spans_;  // de-chunked payload pieces
  FilteredRequestBody request_body_;     // when filters watch the request body ...
  bool body_filtered_ = false;           // ... and it has one
  // A gRPC call, or a gRPC-Web one (grpc/status.h): the gateway's answers are gRPC's (of that
  // content type), and its grpc-timeout is the call's deadline (max: none), sent upstream as
  // what is left of it.
  bool grpc_ = false;
  std::string_view grpc_answer_type_;
  int grpc_status_ = -1;  // the status the call ended with (-1: none seen)
  net::Clock::time_point grpc_deadline_ = net::Clock::time_point::max();
  std::string grpc_deadline_text_;
  std::string body_;              // a response body piece the filters work on
  http::HeaderList trailers_;     // the response's trailer fields, when filters watch them
  http::HeaderList held_fields_;  // the upstream's head, while a filter holds it ...
  http::ResponseHead held_head_;  // ... and the head made of it (views into held_fields_)

  // Per-request facts for the access log (copies: the head's views die with the codec's buffer).
  std::string log_method_, log_path_;
  std::string legs_log_;        // a composite's legs (observe::AccessRecord::legs)
  std::string route_template_;  // a prefix route's path as the server span's http.route
  std::string_view client_ip_;  // the real client: the peer, or from X-Forwarded-For
  const config::Route* log_route_ = nullptr;
  std::string_view log_error_;
  int status_ = 0;
  std::chrono::system_clock::time_point wall_start_;
  net::Clock::time_point start_;
  net::Clock::time_point upstream_started_;  // the upstream call's start (upstream_total_ms)
};

}  // namespace gatehouse::exchange
