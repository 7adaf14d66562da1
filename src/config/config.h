// The typed configuration: what the YAML file says, validated. Immutable once loaded; the data
// plane reads it through a Snapshot (config/snapshot.h). No YAML types leak out of this header.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/units.h"
#include "http/path.h"

namespace re2 {
class RE2;
}
namespace gatehouse::tls {
class ServerContext;
class ClientContext;
}  // namespace gatehouse::tls
namespace gatehouse::filters {
class Filter;
class JwtProvider;
}  // namespace gatehouse::filters

namespace gatehouse::config {

struct ConfigError {
  std::string file;
  int line = 0;
  int column = 0;
  std::string path;  // YAML path, e.g. routes[1].match.path
  std::string message;
  std::string to_string() const;  // FILE:LINE:COL: path: message
};

struct Limits {
  uint64_t max_header_bytes = 32 * 1024;       // request line + headers; over -> 431
  uint64_t max_body_bytes = 10 * 1024 * 1024;  // over -> 413
  uint64_t max_uri_bytes = 8 * 1024;           // request target; over -> 414
  uint32_t max_headers = 100;                  // header fields; over -> 431
  uint64_t max_connections = 10000;            // per process; past it new connections are closed
};

struct Timeouts {
  Duration header_read{10'000};  // from the first byte of a request to the end of its head
  Duration idle{60'000};         // keep-alive wait between requests, and any body-stream stall
  Duration body_read{60'000};    // from the end of a request's head to the end of its body
  Duration send{60'000};         // the longest wait for the client to take response bytes
  Duration drain{30'000};        // graceful shutdown budget
};

struct Listener {
  SocketAddress address;
  std::shared_ptr<const tls::ServerContext> tls;  // null: plain HTTP
  // What a cleartext listener speaks (listen[].protocols): HTTP/1.1, and HTTP/2 with prior
  // knowledge (h2c), told apart by the connection preface. TLS listeners choose by ALPN.
  bool http1 = true;
  bool h2c = false;
};

// HTTP/2 from clients: what SETTINGS says (server.http2). nginx's and Envoy's defaults, about.
struct Http2 {
  uint32_t max_concurrent_streams = 100;
  uint32_t stream_window = 64 * 1024;        // request body bytes a stream may send ahead
  uint32_t connection_window = 1024 * 1024;  // ... all streams of a connection together
  uint32_t max_frame_size = 16 * 1024;       // the largest frame the gateway takes
};

struct Server {
  int workers = 0;  // 0 = one per core
  std::vector<Listener> listen;
  Limits limits;
  Timeouts timeouts;
  std::vector<Cidr> trusted_proxies;
  http::PathPolicy path_normalization;
  Http2 http2;
};

// The admin API (health, readiness, status, metrics, reload). Off unless the section is present.
struct Admin {
  bool enabled = false;
  SocketAddress listen{"127.0.0.1", 9901, false};
  std::string token_env;  // when it names a set variable, a bearer token is required
};

struct AccessLog {
  enum class Sink { kStdout, kStderr, kFile, kOff } sink = Sink::kStdout;
  std::string path;  // for kFile
  // The fields a line has, in this order (observe/access_log.h writes them); `grpc` stands for
  // grpc_service, grpc_method and grpc_status.
  enum Field : uint8_t {
    kTime,
    kRequestId,
    kTraceId,
    kSpanId,
    kClient,
    kMethod,
    kProtocol,
    kTlsVersion,
    kPath,
    kRoute,
    kUpstream,
    kTarget,
    kStatus,
    kBytesIn,
    kBytesOut,
    kDurationMs,
    kUpstreamConnectMs,
    kUpstreamMs,
    kUpstreamTotalMs,
    kRetries,
    kConsumer,
    kError,
    kCache,
    kGrpc,
    kLegs,
    kFieldCount
  };
  static constexpr std::array<std::string_view, kFieldCount> kFieldNames = {"time",
                                                                            "request_id",
                                                                            "trace_id",
                                                                            "span_id",
                                                                            "client",
                                                                            "method",
                                                                            "protocol",
                                                                            "tls_version",
                                                                            "path",
                                                                            "route",
                                                                            "upstream",
                                                                            "target",
                                                                            "status",
                                                                            "bytes_in",
                                                                            "bytes_out",
                                                                            "duration_ms",
                                                                            "upstream_connect_ms",
                                                                            "upstream_ms",
                                                                            "upstream_total_ms",
                                                                            "retries",
                                                                            "consumer",
                                                                            "error",
                                                                            "cache",
                                                                            "grpc",
                                                                            "legs"};
  uint32_t fields = (1u << kFieldCount) - 1;  // a bit per Field: all by default
  bool has(Field f) const { return fields >> f & 1; }
};

// Redis, for state shared by several gateway instances (cluster-wide rate limits).
struct Redis {
  bool enabled = false;
  std::string url;  // redis://[[user]:password@]host[:port][/db], rediss:// for TLS
  std::shared_ptr<const tls::ClientContext> tls;  // rediss://: `redis.tls` (or the defaults)
  Duration timeout{50};                           // bounds each decision
  enum class OnError { kLocal, kDeny, kAllow } on_error = OnError::kLocal;
  int connections = 2;   // per worker (per node, with `cluster`)
  bool cluster = false;  // Redis Cluster: the URL names one node, the others are found
  // Redis Sentinel: these name the master, whose name is the URL's host.
  std::vector<std::pair<std::string, uint16_t>> sentinels;
};

// The response cache's in-memory store, one per process; the route plugin `cache` says what a
// route stores in it (filters/cache/).
struct CacheStore {
  uint64_t max_size = 256ull << 20;              // bytes of entries (fields, bodies, bookkeeping)
  uint64_t max_object_size = 8ull << 20;         // the largest entry; at most max_size / 16
  uint64_t shared_max_object_size = 1ull << 20;  // the largest entry kept in Redis (tier: redis)
};

// Distributed tracing (src/trace/): the trace context every request carries on, and its spans
// exported with OTLP/HTTP. Off unless the section is present.
struct Tracing {
  // Where spans go (OTLP/HTTP, protobuf): http(s)://host:port/v1/traces. Empty: the context is
  // still continued and sent upstream, and nothing is exported.
  std::string otlp_endpoint;
  double sample_ratio = 1.0;          // for new traces; a caller's decision is followed
  bool always_sample_errors = false;  // a request answered 5xx is exported, sampled or not
  // The formats read from requests (the first valid one wins) and written to upstreams.
  enum class Propagator { kTraceContext, kB3, kB3Multi };
  std::vector<Propagator> propagation{Propagator::kTraceContext};
  // Resource attributes: service.name, service.version and service.instance.id by default, plus
  // any given here (which may replace them).
  std::vector<std::pair<std::string, std::string>> resource;
  size_t max_queue = 8192;  // spans waiting for export, for the process; past it, dropped
  size_t max_batch = 512;   // spans per export request
  Duration interval{1000};  // the longest a span waits before an export starts
  Duration timeout{5000};   // per export request
  int max_retries = 3;      // of an export the collector refused retryably, or that failed
  // OTLP's default is no compression; gzip (level 1) cuts the bytes 6- to 8-fold for a remote
  // collector, at about three times the CPU of writing the spans (docs/observability.md).
  bool gzip = false;
  std::vector<std::pair<std::string, std::string>> headers;  // sent with every export (an API key)
};

struct Observability {
  std::string request_id_header = "x-request-id";  // lower case
  AccessLog access_log;
  std::optional<Tracing> tracing;
};

enum class Balance { kRoundRobin, kLeastRequest, kRandom, kConsistentHash };

struct HashOn {
  enum class Kind { kHeader, kCookie, kClientIp } kind = Kind::kClientIp;
  std::string name;  // header name (lower case) or cookie name
};

struct Target {
  SocketAddress address;
  std::string host;  // the host as written (a name or an IP literal): the default TLS server name
  uint32_t weight = 1;
};

// circuit_breaker on an upstream (src/upstream/breaker.h), applied to each target.
struct BreakerSettings {
  double failure_rate = 0.5;   // of the requests in `window`
  uint32_t min_requests = 20;  // in `window`, before the rate counts
  Duration window{10'000};
  Duration open_for{30'000};
  Duration max_open_for{300'000};  // open_for doubles after each failed probe, up to this
  uint32_t half_open_requests = 3;
  uint32_t consecutive_failures = 0;  // 0: off; else this many in a row open it too
};

// health_check on an upstream (src/upstream/health.h).
struct HealthCheck {
  std::string path = "/healthz";
  Duration interval{5'000};
  Duration timeout{1'000};
  uint32_t unhealthy_after = 3;
  uint32_t healthy_after = 2;
  std::vector<std::pair<int, int>> expected_statuses{{200, 399}};  // inclusive ranges
  bool initially_healthy = true;  // `initial_state` of a target the process has not checked yet
  // A `protocol: grpc` upstream's check is gRPC's: grpc.health.v1.Health/Check for `service`
  // (empty: the server as a whole), passed when it answers SERVING.
  bool grpc = false;
  std::string service;
};

// retry on an upstream (or a route, which then replaces the upstream's).
struct RetryPolicy {
  uint32_t attempts = 1;      // tries after the first
  Duration backoff{25};       // full jitter: a random wait up to backoff * 2^(try-1) ...
  Duration max_backoff{250};  // ... capped here
  bool on_connect_failure = true, on_reset = true, on_timeout = false;
  std::vector<int> on_status;  // e.g. 502, 503, 504
  uint32_t on_grpc = 0;        // gRPC status codes (bit n: code n) of a trailers-only answer
  double budget = 0.2;         // retries at most this share of requests ...
  uint32_t min_retries_per_second = 10;  // ... plus these, per upstream (the budget's floor)
  uint64_t max_replay_body = 64 * 1024;  // request bodies up to this size are kept to send again
};

struct Upstream {
  enum class Protocol : uint8_t { kHttp1, kHttp2, kGrpc };
  std::string name;
  std::vector<Target> targets;
  // kHttp2: h2 by ALPN with `tls`, else cleartext h2c with prior knowledge (upstream/h2/).
  // kGrpc: the same HTTP/2, to gRPC services (docs/grpc.md).
  Protocol protocol = Protocol::kHttp1;
  bool http2() const { return protocol != Protocol::kHttp1; }
  Balance balance = Balance::kRoundRobin;
  HashOn hash_on;
  Duration connect_timeout{2'000};
  Duration response_timeout{30'000};     // from request sent to the response head received
  uint32_t max_idle_per_target = 64;     // idle keep-alive connections kept per worker per target
  uint32_t max_concurrent_requests = 0;  // in flight at once, whole process; 0 = no limit
  uint32_t max_pending = 0;       // requests that may wait for one of those slots; 0 = 503 at once
  Duration queue_timeout{2'000};  // the longest such a wait (timeouts.queue; default: connect's)
  std::optional<BreakerSettings> breaker;
  std::optional<RetryPolicy> retry;
  std::optional<HealthCheck> health_check;
  std::shared_ptr<const tls::ClientContext> tls;  // null: plain HTTP to the targets
};

struct ValueMatch {
  enum class Kind { kExact, kRegex, kPresent, kAbsent } kind = Kind::kExact;
  std::string name;                       // header name (lower case) or query parameter name
  std::string value;                      // for kExact
  std::shared_ptr<const re2::RE2> regex;  // for kRegex, full match
};

struct PathMatch {
  enum class Kind { kAny, kExact, kPrefix, kTemplate, kRegex } kind = Kind::kAny;
  std::string text;  // exact path, prefix (without the trailing "*"), template or regex source
  // For kTemplate: the segments; a segment "{name}" captures one path segment.
  std::vector<std::string> segments;
  std::shared_ptr<const re2::RE2> regex;  // for kRegex, full match; named groups are captures
};

struct HostMatch {
  std::string host;  // lower case; "*.example.com" stored as ".example.com" with wildcard=true
  bool wildcard = false;
};

struct Rewrite {
  std::optional<std::string> strip_prefix;
  std::optional<std::pair<std::string, std::string>> replace_prefix;  // from, to
  std::optional<std::string> path_template;  // "/products/{id}", filled from captures
  std::optional<std::string> host;
};

struct WeightedUpstream {
  std::string upstream;
  size_t upstream_index = 0;  // resolved at load
  uint32_t weight = 1;
};

// A route that takes WebSocket upgrades (routes[].websocket): the tunnel's limits.
struct WebSocket {
  Duration idle_timeout{60'000};  // no frame either way for this long: closed (1001)
  // From clients: a larger frame, or message (its frames together), closes the tunnel (1009,
  // RFC 6455 7.4.1). The upstream's are not bounded.
  uint64_t max_frame_bytes = 1024 * 1024;
  uint64_t max_message_bytes = 4 * 1024 * 1024;
};

struct Aggregate;

struct Route {
  std::string name;
  size_t order = 0;              // position in the file; breaks ties in precedence
  std::vector<HostMatch> hosts;  // any of them; empty = any host
  PathMatch path;
  std::vector<std::string> methods;  // upper case; empty = any
  std::vector<ValueMatch> headers;
  std::vector<ValueMatch> query;
  Rewrite rewrite;
  std::vector<WeightedUpstream> to;
  Duration timeout{0};  // the whole upstream exchange, connect to the end of the response; 0 = none
  std::optional<RetryPolicy> retry;    // replaces the upstream's
  std::optional<WebSocket> websocket;  // set: WebSocket upgrades are tunnelled
  // grpc.max_message_bytes: a gRPC call's length-prefixed messages, either way, up to this
  // (0: no limit); a longer one ends the call with RESOURCE_EXHAUSTED.
  uint64_t grpc_max_message_bytes = 0;
  // Request filters, in phase order (see filters/filter.h), whatever the file's order.
  std::vector<std::shared_ptr<const filters::Filter>> filters;
  // A composite route: its legs instead of `to` (docs/aggregation.md).
  std::shared_ptr<const Aggregate> aggregate;
};

// A piece of a leg's path template: text as it is, or a value filled in per request (percent-
// encoded): a route capture, a client query parameter or header, or a scalar at a dotted path
// of another leg's JSON answer.
struct TemplatePart {
  enum class Kind : uint8_t { kText, kCapture, kQuery, kHeader, kLeg };
  Kind kind = Kind::kText;
  std::string text;  // the text; the capture, parameter or header name; the path in the answer
  size_t leg = 0;    // kLeg: the leg whose answer it reads
};

// One call of a composite route.
struct AggregateLeg {
  std::string name;
  // The route the leg's sub-request is served on: "ROUTE.LEG", to the leg's upstream, with its
  // timeout. It is in no route table: only the composite sends requests to it.
  std::shared_ptr<const Route> route;
  std::string method = "GET";
  std::vector<TemplatePart> path;    // the path and query, filled in per request
  std::vector<size_t> needs;         // the legs whose answers it reads: it starts after them
  bool optional = false;             // its failure leaves null and an `errors` entry, not a 502
  bool raw = false;                  // its answer is embedded as a string, JSON or not
  bool credentials = false;          // the client's Authorization and Cookie go to it
  bool body = false;                 // the client's request body (and its Content-Type) goes to it
  std::vector<int> pass_status;      // a required leg's 4xx answers the composite takes as its own
  std::vector<std::string> headers;  // client headers it gets (lower case)
  std::vector<std::pair<std::string, std::string>> add_headers;  // and these
  // Shaping its answer: where it goes (its keys merged into the document's, or at a dotted path
  // instead of under its name), and what of it goes (these dotted fields only; these top-level
  // keys renamed). An array's objects are shaped one by one.
  bool merge = false;
  std::vector<std::string> at;                   // the path's keys; empty: the leg's name
  std::vector<std::vector<std::string>> fields;  // each one's keys
  std::vector<std::pair<std::string, std::string>> rename;
  bool shaped() const { return merge || !fields.empty() || !rename.empty(); }
};

struct Aggregate {
  Duration timeout{0};       // the whole composite call; 0: none
  int partial_status = 200;  // the answer's status when an optional leg failed
  uint64_t max_leg_bytes = 1 << 20;
  uint64_t max_bytes = 4 << 20;    // the composed answer
  std::vector<AggregateLeg> legs;  // in the file's order
};

// An API client known by name (the consumers section). API keys are kept only as digests.
struct Consumer {
  std::string name;
  std::vector<std::string> groups;
  std::vector<std::array<uint8_t, 32>> api_key_sha256;
};

struct Config {
  std::string file;
  Server server;
  Admin admin;
  Observability observability;
  Redis redis;
  CacheStore cache;
  std::vector<Consumer> consumers;
  // By name; null for a provider whose settings had errors (already reported).
  std::map<std::string, std::shared_ptr<const filters::JwtProvider>> jwt_providers;
  std::vector<Upstream> upstreams;
  std::vector<Route> routes;
};

// Loads and validates a config file. On failure returns nullopt and fills *errors with every error
// found (not only the first), each with its file, line, column and YAML path.
std::optional<Config> load_config(const std::string& file, std::vector<ConfigError>* errors);
// The same from text in memory; `file` names it in errors.
std::optional<Config> parse_config(const std::string& text, const std::string& file,
                                   std::vector<ConfigError>* errors);

}  // namespace gatehouse::config
