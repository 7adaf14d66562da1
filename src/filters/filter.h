// The filter chain. Each route lists its plugins; each plugin is built once, at config load, into
// a const Filter (its parsed settings), and runs on the worker that owns the request, in two
// phases: on_request() in phase order before the upstream is called, then on_response() in
// reverse order before the response head goes to the client.
//
// In the request phase a filter can:
//   - pass the request on:        return kContinue (it may add or remove upstream headers),
//   - answer by itself:           fill ctx.reply and return kRespond (401, 429, a 204 preflight,
//                                 or any status, headers and body; a body the filter shares, such
//                                 as a stored response's, goes out without a copy: shared_body),
//   - pause for asynchronous work: return kPause; the exchange then calls resume() and waits for
//     its callback, which must run on the same worker thread (post to the worker's executor).
// In the response phase (filters whose request phase ran, last first) it sees the status and may
// add or remove response headers, or replace the response with its own answer (kRespond). The
// request head's views are gone by then: what a filter needs of the request it keeps in its
// per-request slot (filters/slots.h).
//
// The body phases are for filters that ask for them, so that a route whose filters only look at
// heads keeps the zero-copy relay: in on_request, ctx.watch_request_body() (then
// on_request_body() sees the request body, piece by piece, as it streams upstream); in
// on_response, ctx.watch_response_body() (then on_response_body() sees the response body, last
// filter first, and on_response_trailers() its trailer fields before the last piece). A watched
// body is de-framed for the filters and framed anew after them, chunked (RFC 9112 7.1), since its
// length may change: the Content-Length goes. As Envoy's decodeData/encodeData/encodeTrailers. A
// filter that only needs a copy of the response body (the cache, to store it) taps it instead
// (ctx.tap_response_body()): the body keeps its framing and its zero-copy relay.
//
// The response phase also sees the gateway's own answers to a failed upstream call (502, 503,
// 504: ctx.response is null), so that a filter can answer otherwise (a stale stored response).
//
// Filters run in a fixed order of phases, whatever their order in the file (as Kong's plugin
// priorities): response_headers (outermost), cors (a preflight carries no credentials), ip_rules,
// the auth filters, acl, request_size, rate_limit, cache, compress, response_replace, grpc_web;
// see filters/registry.cc. The
// core never includes a filter's header: it knows filters only through this interface and the
// registry; what a filter keeps per request or per worker lives in slots it owns (filters/slots.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "filters/slots.h"
#include "http/error_response.h"
#include "http/message.h"

namespace gatehouse::filters {

// Who the request is from, once an auth filter has said so. Owned by the filter that set it (it
// lives as long as the snapshot the request holds) or by the context itself (`owned`).
struct Identity {
  std::string name;
  std::vector<std::string> groups;
  std::string groups_header;  // the groups joined by ", ", as sent in X-Consumer-Groups
};

// A configured consumer as an identity (groups joined once, at config load).
inline Identity identity_of(const config::Consumer& c) {
  Identity id{c.name, c.groups, {}};
  for (const auto& g : c.groups) id.groups_header += (id.groups_header.empty() ? "" : ", ") + g;
  return id;
}

}  // namespace gatehouse::filters
namespace boost::asio {
class io_context;
}
namespace gatehouse::observe {
struct MetricsShard;
}
namespace gatehouse::filters {

// The body of a filter's answer that is still arriving: a response another request is
// receiving, which this one shares (the cache's coalesced misses). The answer (ctx.reply, with
// kRespond) is framed with its `length()`; the exchange sends the body as it comes, paced by its
// own client.
class ReplyBody {
 public:
  virtual ~ReplyBody() = default;
  virtual uint64_t length() const = 0;
  // Posts `ready` to `io` with the bytes after the first `offset` (< length()) once there are
  // some: empty when the body was cut short and no more will come. The bytes stay valid while
  // this object lives.
  virtual void read(uint64_t offset, boost::asio::io_context& io,
                    std::function<void(std::string_view)> ready) = 0;
};

struct RequestContext {
  // The request phase's: null once the request goes upstream (its views are then gone).
  const http::RequestHead* request = nullptr;
  boost::asio::io_context* io = nullptr;     // the worker's: for filters that pause for I/O
  observe::MetricsShard* metrics = nullptr;  // the worker's shard (only that thread writes it)
  std::string_view client_ip;          // the real client: the peer, or from X-Forwarded-For when
                                       // the peer is a trusted proxy
  const Identity* consumer = nullptr;  // set by key_auth / jwt_auth
  Identity owned;                      // storage for an identity made per request (a JWT claim)
  Slots slots;                         // what filters keep per request, by their own keys
  WorkerState* worker = nullptr;       // what filters keep per worker
  const config::Route* route = nullptr;
  uint64_t max_body_bytes = 0;    // starts at server.limits.max_body_bytes; filters may lower it
  http::HeaderList upstream_add;  // headers to add to the upstream request
  std::vector<std::string> upstream_remove;        // header names (lower case) to drop upstream
  std::vector<std::string> upstream_remove_query;  // query parameters to drop upstream
  http::HeaderList response_add;                   // headers to add to the client response
  std::vector<std::string> response_remove;        // header names (lower case) to drop from it
  http::ErrorResponse reply;                       // the answer, with kRespond ...
  std::shared_ptr<ReplyBody> reply_body;           // ... and its body, when still arriving
  int status = 0;  // the response phase: the status going to the client, and the upstream's head
  const http::ResponseHead* response = nullptr;  // (null for the gateway's own answer), valid
                                                 // until on_response returns
  size_t next_filter = 0;                        // the chain's position (kept by the exchange)
  size_t current = 0;                   // the filter running now (its index in the route's chain)
  uint64_t request_body_watchers = 0;   // bit i: filter i reads the request body
  uint64_t response_body_watchers = 0;  // bit i: filter i reads the response body
  uint64_t response_body_taps = 0;      // bit i: filter i copies the response body
  bool secure = false;                  // the request came over TLS (its scheme is https)
  // The route's path captures ({name} and the raw value), while the request phase runs.
  std::span<const std::pair<std::string_view, std::string_view>> captures;
  // Set by a filter that turns the request into another call (grpc_transcode): the path and
  // query, and the method, sent upstream instead of the client's; and the call is gRPC (its
  // retries by status, its te: trailers), whatever the client speaks.
  std::string upstream_target;
  std::string_view upstream_method;
  bool upstream_grpc = false;
  bool request_body_made = false;  // see make_request_body()
  bool request_head_held = false;  // see hold_request_head()
  bool head_held = false;          // see hold_response_head()
  std::string_view cache_result;   // for the access log: what the cache did (hit, miss, ...)
  int background = -1;             // the filter that asked for a background request ...
  Slots background_slots;          // ... and what it keeps for that request's response

  // The running filter reads the request body (call from on_request) or the response body and
  // trailers (from on_response). A route has at most one filter per plugin, far below 64.
  void watch_request_body() { request_body_watchers |= uint64_t{1} << current; }
  void watch_response_body() { response_body_watchers |= uint64_t{1} << current; }
  // The running filter copies the response body as it goes to the client (call from
  // on_response): on_response_tap() sees its content, de-framed, piece by piece, but cannot
  // change it, so the relay keeps the upstream's framing (and its zero-copy path).
  void tap_response_body() { response_body_taps |= uint64_t{1} << current; }
  // The running filter makes the upstream request's body, whether the client sent one or not
  // (call from on_request): its on_request_body runs as for a watched body, and for a request
  // without one, once, with an empty last piece (a gRPC call always carries its message).
  void make_request_body() {
    watch_request_body();
    request_body_made = true;
  }
  // The upstream call waits (call from on_request, with watch_request_body() or
  // make_request_body()) until the filters that watch the body pass a piece of it on, or answer
  // instead: a filter that may refuse a request for its body (a transcoder, whose JSON may not
  // fit) keeps the upstream from being called at all for it.
  void hold_request_head() { request_head_held = true; }
  // The response head waits (call from on_response, with watch_response_body()) until the
  // filters that watch the body pass a piece of it on, or it ends: it goes then, with the status
  // in `status` as they left it, and the headers in response_add. For a filter whose answer's
  // status is known only from the body or its trailers (a transcoded gRPC call's).
  void hold_response_head() { head_held = true; }
  // The running filter answers now (kRespond from on_request) and has the request sent upstream
  // anyway, in the background, as it would have gone (with the upstream fields added so far):
  // its own on_response (and body tap) then sees that response, in a context of its own whose
  // slots are `background_slots`. For requests without a body: a cache's refresh of a stale
  // entry it served (RFC 5861 stale-while-revalidate).
  void refresh_in_background() { background = static_cast<int>(current); }

  // Records who the request is from and tells the upstream (X-Consumer-Name, -Groups).
  void identify(const Identity* who) {
    consumer = who;
    upstream_add.emplace_back("X-Consumer-Name", who->name);
    if (!who->groups_header.empty())
      upstream_add.emplace_back("X-Consumer-Groups", who->groups_header);
  }

  void reset() {
    next_filter = current = 0;
    request_body_watchers = response_body_watchers = response_body_taps = 0;
    secure = false;
    captures = {};
    upstream_target.clear();
    upstream_method = {};
    upstream_grpc = request_body_made = request_head_held = head_held = false;
    cache_result = {};
    background = -1;
    background_slots.clear();
    consumer = nullptr;
    slots.clear();
    status = 0;
    response = nullptr;
    response_remove.clear();
    upstream_add.clear();
    upstream_remove.clear();
    upstream_remove_query.clear();
    response_add.clear();
    reply.clear();
    reply_body.reset();
  }
};

enum class FilterStatus { kContinue, kRespond, kPause };

class Filter {
 public:
  virtual ~Filter() = default;
  virtual std::string_view name() const = 0;
  // Runs synchronously on the worker thread; must not block.
  virtual FilterStatus on_request(RequestContext& ctx) const = 0;
  // Called after on_request returned kPause. `done` must be invoked exactly once, on the worker
  // thread, with kContinue or kRespond.
  virtual void resume(RequestContext& ctx, std::function<void(FilterStatus)> done) const {
    done(FilterStatus::kContinue);
  }
  // The response phase: kContinue (after adding or removing headers), or kRespond with ctx.reply
  // replacing the response. Synchronous; must not block.
  virtual FilterStatus on_response(RequestContext& ctx) const { return FilterStatus::kContinue; }
  // The body phases (for a filter that watches the body, see above). `data` is the next piece of
  // the body, to be passed on as the filter leaves it: it may change it, hold it back (keep it in
  // its slot and clear `data`), or add to it; `end`: the body ends after this piece (which may be
  // empty), the last chance to pass on what was held back. A request body filter may answer
  // instead (kRespond, as in on_request): the upstream call is dropped.
  virtual FilterStatus on_request_body(RequestContext& ctx, std::string& data, bool end) const {
    return FilterStatus::kContinue;
  }
  virtual void on_response_body(RequestContext& ctx, std::string& data, bool end) const {}
  // A tapped body (see tap_response_body): the next piece of its content as the client gets it
  // (after the filters that rewrite it). `end`: the body ended, complete, with this piece; a body
  // cut short (the upstream or the client gone) never ends.
  virtual void on_response_tap(RequestContext& ctx, std::string_view piece, bool end) const {}
  // The response's trailer fields (the upstream's, from a chunked body; else none), just before
  // its last body piece (on_response_body with `end`): a filter may add, change or drop fields,
  // or fold them into that piece (gRPC-Web). They reach a client that takes chunked responses
  // (HTTP/1.1), or HTTP/2's trailers.
  virtual void on_response_trailers(RequestContext& ctx, http::HeaderList& trailers) const {}
  // This filter answers CORS preflights: the exchange routes a preflight as the request it
  // announces when the route has such a filter.
  virtual bool answers_preflight() const { return false; }
};

// The next piece of a response body through the chain's body phases, last filter first, down to
// filter `first`: a filter that watches the body rewrites it, one that taps it copies what the
// filters after it made of it.
inline void pass_response_body(std::span<const std::shared_ptr<const Filter>> chain,
                               RequestContext& ctx, std::string& body, bool end, size_t first = 0) {
  for (size_t i = chain.size(); i-- > first;) {
    ctx.current = i;
    if (ctx.response_body_watchers >> i & 1) chain[i]->on_response_body(ctx, body, end);
    if (ctx.response_body_taps >> i & 1) chain[i]->on_response_tap(ctx, body, end);
  }
}

}  // namespace gatehouse::filters
