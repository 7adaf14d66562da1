// A composite route's call (config::Aggregate; docs/aggregation.md): one client request, its
// legs served as sub-requests, one JSON answer. Each leg is an Exchange of its own on the leg's
// route, so that every leg goes through what any request does: the upstream client (balancing,
// pools, retries, breakers, bulkheads, health), the access log and the metrics. Legs start at
// once, or as soon as the legs whose answers they read have answered, and the answers are
// composed as they came: one key per leg, with `errors` for the optional legs that failed. A
// required leg's failure stops the others and becomes the gateway's answer. As KrakenD's
// backends of an endpoint, with dependent calls, and with errors that name the leg and why.
//
// On the worker's thread; the composite's coroutine returns once every leg has ended.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "exchange/context.h"
#include "http/error_response.h"
#include "net/asio.h"

namespace gatehouse::exchange {

// What a composite call takes from its client's request (copies: the legs outlive its views).
struct CompositeRequest {
  std::vector<std::pair<std::string, std::string>> captures;  // the route's, percent-decoded
  std::string query;                                          // as sent, without '?'
  std::vector<std::pair<std::string, std::string>> headers;   // names in lower case
  std::string request_id;
  std::string body;  // the client's request body, whole, for the leg that takes it
  std::string client_ip;
  bool secure = false;
};

// Serves `route`'s legs on `view` (the one the client's request holds) and leaves the answer in
// *out: the composed document (a 2xx with its body), or the gateway's error for a required leg;
// and in *legs, for the access log, each leg's status and time (a JSON array).
net::Task<> serve_composite(WorkerContext& worker, std::shared_ptr<View> view,
                            const config::Route& route, CompositeRequest request,
                            http::ErrorResponse* out, std::string* legs);

}  // namespace gatehouse::exchange
