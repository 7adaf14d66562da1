// Building the heads the proxy sends: the request to the upstream and the response to the client
// (RFC 9110 section 7.6: hop-by-hop fields removed, Via added; X-Forwarded-* as NGINX and Envoy
// set them). Pure functions over parsed heads, appending to a reusable string.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/units.h"
#include "http/message.h"
#include "http/outgoing_request.h"

namespace gatehouse::http {

struct ForwardInfo {
  std::string_view client_ip;          // the TCP peer
  bool peer_trusted = false;           // the peer is in server.trusted_proxies
  std::string_view proto = "http";     // scheme the client used
  std::string_view request_id_header;  // lower case
  std::string_view request_id;
  std::string_view method;                           // empty: the request's
  std::string_view path_and_query;                   // after rewrites
  std::string_view host;                             // Host to send upstream
  const HeaderList* add = nullptr;                   // added by filters
  const std::vector<std::string>* remove = nullptr;  // removed by filters (lower case)
  bool body_rechunked = false;  // the body goes as the gateway frames it: chunked, no length
                                // (a request without one may get one a filter makes)
  std::string_view upgrade;     // a protocol upgrade asked for (websocket): sent with Connection
  // Distributed tracing: the gateway's trace context fields (unique), in place of the client's
  // fields of the formats it writes.
  const HeaderList* trace = nullptr;
  bool replace_trace_context = false;  // traceparent, tracestate
  bool replace_b3 = false;             // b3, X-B3-*
};

// The real client's address: the peer, unless the peer is a trusted proxy; then the last address
// in X-Forwarded-For (all such headers, in order) that is not itself trusted, as NGINX's realip
// module with real_ip_recursive. Returns a view into the request head or into `peer`.
std::string_view real_client_ip(const RequestHead& req, std::string_view peer, bool peer_trusted,
                                const std::vector<config::Cidr>& trusted);

// `query` (without '?') without the parameters named in `drop`, appended to *out.
void append_query_without(std::string_view query, const std::vector<std::string>& drop,
                          std::string* out);

// The request head sent upstream: always HTTP/1.1, keep-alive, chunked bodies passed through (or
// a body of either framing sent chunked, when a filter rewrites it: body_rechunked). The request
// id is a unique field (OutgoingRequest::add_unique).
void build_upstream_request(const RequestHead& req, const ForwardInfo& info, OutgoingRequest* out);

struct ResponseInfo {
  std::string_view request_id_header;
  std::string_view request_id;
  bool chunked = false;  // the body is sent with the chunked coding
  bool close = false;    // the gateway closes the connection after this response
  bool client_http10 = false;
  const HeaderList* add = nullptr;
  const std::vector<std::string>* remove = nullptr;  // headers not to pass on (lower case)
  std::string_view upgrade;  // a 101's protocol (websocket): Upgrade and Connection say it
};

// The response head sent to the client.
void build_client_response(const ResponseHead& resp, const ResponseInfo& info, std::string* out);

// `name` is one of the fields `remove` lists (lower case; null: none).
bool removed_by_filter(const std::vector<std::string>* remove, std::string_view name);

// The fields of that head, whatever framing the codec gives them: the upstream's without the
// hop-by-hop ones (RFC 9110 7.6.1), the request id field (the gateway sets its own) and those the
// filters remove, then Via, the request id and what the filters add. f(name, value) for each, in
// order; the framing fields (Transfer-Encoding, Connection) are the codec's own. A template, so
// that each codec's f is inlined: every response runs it, once per field.
template <class F>
void for_each_client_field(const ResponseHead& resp, const ResponseInfo& info, F&& f) {
  const bool removing = info.remove && !info.remove->empty();
  for (const auto& h : resp.headers) {
    if (h.hop_by_hop) continue;
    if (h.name.size() == info.request_id_header.size() && iequals(h.name, info.request_id_header))
      continue;
    if (removing && removed_by_filter(info.remove, h.name)) continue;
    f(h.name, h.value);
  }
  f("Via", resp.minor_version == 0 ? "1.0 gatehouse" : "1.1 gatehouse");
  f(info.request_id_header, info.request_id);
  if (info.add) {
    for (auto& [n, v] : *info.add) f(n, v);
  }
}

// An interim (1xx) response passed on to the client, such as 103 Early Hints (RFC 9110 15.2: a
// proxy forwards them): its status line and fields without the hop-by-hop ones (RFC 9110 7.6.1)
// and without framing fields (a 1xx ends with its header section, RFC 9112 6.3), plus Via.
void build_interim_response(const ResponseHead& resp, std::string* out);

std::string_view reason_phrase(int status);

}  // namespace gatehouse::http
