#include "config/config.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "crypto/digest.h"
#include "filters/filter.h"
#include "http/message.h"
#include "tls/client_context.h"

namespace gatehouse::config {
namespace {

// A listener, an upstream "app" and an upstream "other"; tests append their routes.
constexpr const char* kHead = R"(server:
  listen:
    - address: 127.0.0.1:8080
upstreams:
  app:
    targets:
      - address: 127.0.0.1:9001
  other:
    targets:
      - address: 127.0.0.1:9002
)";

// kHead plus one plain route.
std::string with_routes(const std::string& routes) {
  return std::string(kHead) + "routes:\n" + routes;
}
const std::string kMinimal = with_routes("  - match: { path: /api/* }\n    to: app\n");

std::string dump(const std::vector<ConfigError>& errors) {
  std::string s;
  for (const auto& e : errors) s += "  " + e.to_string() + "\n";
  return s;
}

// Parses text that must be invalid and returns its errors.
std::vector<ConfigError> errors_of(const std::string& text) {
  std::vector<ConfigError> errors;
  auto c = parse_config(text, "test.yaml", &errors);
  EXPECT_FALSE(c.has_value()) << "expected errors for:\n" << text;
  EXPECT_FALSE(errors.empty());
  return errors;
}

// Parses text that must be valid.
Config load(const std::string& text) {
  std::vector<ConfigError> errors;
  auto c = parse_config(text, "test.yaml", &errors);
  EXPECT_TRUE(c.has_value()) << "unexpected errors:\n" << dump(errors) << "for:\n" << text;
  EXPECT_TRUE(errors.empty());
  if (!c) return Config{};
  return std::move(*c);
}

// True when some error has exactly this path and a message containing `part`.
bool has_error(const std::vector<ConfigError>& errors, const std::string& path,
               const std::string& part) {
  for (const auto& e : errors) {
    if (e.path == path && e.message.find(part) != std::string::npos) return true;
  }
  return false;
}

#define EXPECT_HAS_ERROR(errors, path, part)                 \
  EXPECT_TRUE(has_error(errors, path, part))                 \
      << "want " << path << ": ..." << part << "...\ngot:\n" \
      << dump(errors)

TEST(ConfigTest, MinimalConfigLoads) {
  Config c = load(kMinimal);
  EXPECT_EQ(c.file, "test.yaml");
  ASSERT_EQ(c.server.listen.size(), 1u);
  EXPECT_EQ(c.server.listen[0].address.to_string(), "127.0.0.1:8080");
  ASSERT_EQ(c.upstreams.size(), 2u);
  EXPECT_EQ(c.upstreams[0].name, "app");
  ASSERT_EQ(c.upstreams[0].targets.size(), 1u);
  EXPECT_EQ(c.upstreams[0].targets[0].address.port, 9001);
  EXPECT_EQ(c.upstreams[0].targets[0].weight, 1u);
  EXPECT_EQ(c.upstreams[0].balance, Balance::kRoundRobin);
  ASSERT_EQ(c.routes.size(), 1u);
  EXPECT_EQ(c.routes[0].name, "route-0");
  EXPECT_EQ(c.routes[0].path.kind, PathMatch::Kind::kPrefix);
  EXPECT_EQ(c.routes[0].path.text, "/api/");
  ASSERT_EQ(c.routes[0].to.size(), 1u);
  EXPECT_EQ(c.routes[0].to[0].upstream, "app");
  EXPECT_EQ(c.routes[0].to[0].upstream_index, 0u);
  // Defaults.
  EXPECT_EQ(c.server.limits.max_header_bytes, 32u * 1024);
  EXPECT_EQ(c.observability.request_id_header, "x-request-id");
}

TEST(ConfigTest, FullServerSectionLoads) {
  Config c = load(R"(server:
  workers: 4
  listen:
    - address: 0.0.0.0:8080
    - address: "[::1]:8081"
  limits:
    max_header_bytes: 16KiB
    max_body_bytes: 1MiB
    max_connections: 500
    max_headers: 50
  timeouts: { header_read: 5s, idle: 250ms, drain: 1m }
  trusted_proxies: [10.0.0.0/8, "::1"]
observability:
  request_id_header: X-Trace-Id
  access_log: { path: off, format: json }
upstreams:
  app:
    targets:
      - { address: 127.0.0.1:9001, weight: 3 }
    balance: least_request
    timeouts: { connect: 250ms, response: 2s }
routes:
  - name: all
    match: { path: /x }
    to: app
)");
  EXPECT_EQ(c.server.workers, 4);
  ASSERT_EQ(c.server.listen.size(), 2u);
  EXPECT_TRUE(c.server.listen[1].address.v6);
  EXPECT_EQ(c.server.limits.max_header_bytes, 16u * 1024);
  EXPECT_EQ(c.server.limits.max_body_bytes, 1024u * 1024);
  EXPECT_EQ(c.server.limits.max_connections, 500u);
  EXPECT_EQ(c.server.limits.max_headers, 50u);
  EXPECT_EQ(c.server.timeouts.header_read, Duration(5'000));
  EXPECT_EQ(c.server.timeouts.idle, Duration(250));
  EXPECT_EQ(c.server.timeouts.drain, Duration(60'000));
  ASSERT_EQ(c.server.trusted_proxies.size(), 2u);
  EXPECT_EQ(c.observability.request_id_header, "x-trace-id");
  EXPECT_EQ(c.observability.access_log.sink, AccessLog::Sink::kOff);
  EXPECT_EQ(c.upstreams[0].targets[0].weight, 3u);
  EXPECT_EQ(c.upstreams[0].balance, Balance::kLeastRequest);
  EXPECT_EQ(c.upstreams[0].connect_timeout, Duration(250));
  EXPECT_EQ(c.upstreams[0].response_timeout, Duration(2'000));
  EXPECT_EQ(c.routes[0].name, "all");
  EXPECT_EQ(c.routes[0].path.kind, PathMatch::Kind::kExact);
}

TEST(ConfigTest, ErrorFormatIsFileLineColPathMessage) {
  ConfigError e{"a.yaml", 3, 7, "routes[1].match.path", "boom"};
  EXPECT_EQ(e.to_string(), "a.yaml:3:7: routes[1].match.path: boom");
}

TEST(ConfigTest, UnknownKeyIsReportedAtTheKey) {
  auto errors = errors_of(R"(server:
  listen:
    - address: 127.0.0.1:8080
  bogus: 1
upstreams:
  app:
    targets: [ { address: 127.0.0.1:9001 } ]
routes:
  - match: { path: /a }
    to: app
)");
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].to_string(),
            "test.yaml:4:3: server.bogus: unknown key 'bogus' (expected one of: workers, listen, "
            "limits, timeouts, trusted_proxies, path_normalization, http2)");
}

TEST(ConfigTest, PathNormalization) {
  auto c = load(R"(server:
  listen: [ { address: 127.0.0.1:8080 } ]
  path_normalization: { merge_slashes: true, encoded_slashes: keep }
upstreams:
  app: { targets: [ { address: 127.0.0.1:9001 } ] }
routes:
  - { match: { path: /a }, to: app }
)");
  EXPECT_TRUE(c.server.path_normalization.merge_slashes);
  EXPECT_FALSE(c.server.path_normalization.reject_encoded_slashes);
  EXPECT_FALSE(load(kMinimal).server.path_normalization.merge_slashes);
  EXPECT_TRUE(load(kMinimal).server.path_normalization.reject_encoded_slashes);

  auto errors = errors_of(R"(server:
  listen: [ { address: 127.0.0.1:8080 } ]
  path_normalization: { merge_slashes: maybe, encoded_slashes: decode }
upstreams:
  app: { targets: [ { address: 127.0.0.1:9001 } ] }
routes:
  - { match: { path: /a }, to: app }
)");
  EXPECT_HAS_ERROR(errors, "server.path_normalization.merge_slashes", "");
  EXPECT_HAS_ERROR(errors, "server.path_normalization.encoded_slashes", "expected reject or keep");
}

TEST(ConfigTest, BadDurationIsReportedAtTheValue) {
  auto errors = errors_of(R"(server:
  listen:
    - address: 127.0.0.1:8080
  timeouts:
    idle: 5 parsecs
upstreams:
  app:
    targets: [ { address: 127.0.0.1:9001 } ]
routes:
  - match: { path: /a }
    to: app
)");
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].to_string(),
            "test.yaml:5:11: server.timeouts.idle: invalid duration '5 parsecs' (expected e.g. "
            "250ms, 2s, 5m, 1h)");
}

TEST(ConfigTest, DanglingUpstreamIsReportedAtTheName) {
  auto errors = errors_of(with_routes(R"(  - match: { path: /a }
    to: app
  - match: { path: /b }
    to: nope
)"));
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  // kHead has 10 lines, "routes:" is line 11, the second route's `to` is line 15.
  EXPECT_EQ(errors[0].to_string(), "test.yaml:15:9: routes[1].to: unknown upstream 'nope'");
}

TEST(ConfigTest, DanglingUpstreamInWeightedList) {
  auto errors = errors_of(with_routes(R"(  - match: { path: /a }
    to:
      - { upstream: app, weight: 1 }
      - { upstream: ghost, weight: 1 }
)"));
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].line, 15);
  EXPECT_EQ(errors[0].column, 21);
  EXPECT_EQ(errors[0].path, "routes[0].to[1].upstream");
  EXPECT_EQ(errors[0].message, "unknown upstream 'ghost'");
}

TEST(ConfigTest, ReportsEveryErrorNotOnlyTheFirst) {
  auto errors = errors_of(R"(server:
  listen:
    - address: 127.0.0.1:8080
  limits:
    max_body_bytes: huge
upstreams:
  app:
    targets: [ { address: 127.0.0.1:9001 } ]
routes:
  - match: { path: /a }
    to: missing
colour: blue
)");
  ASSERT_EQ(errors.size(), 3u) << dump(errors);
  EXPECT_HAS_ERROR(errors, "server.limits.max_body_bytes", "invalid size 'huge'");
  EXPECT_HAS_ERROR(errors, "routes[0].to", "unknown upstream 'missing'");
  EXPECT_HAS_ERROR(errors, "colour", "unknown key 'colour'");
  for (const auto& e : errors) {
    EXPECT_EQ(e.file, "test.yaml");
    EXPECT_GT(e.line, 0) << e.to_string();
    EXPECT_GT(e.column, 0) << e.to_string();
  }
}

TEST(ConfigTest, UnknownKeysAtEveryLevel) {
  auto errors = errors_of(R"(server:
  listen:
    - address: 127.0.0.1:8080
      port: 80
upstreams:
  app:
    targets: [ { address: 127.0.0.1:9001, wieght: 2 } ]
    balanse: random
routes:
  - match: { path: /a, verb: GET }
    to: app
    extra: 1
)");
  EXPECT_EQ(errors.size(), 5u) << dump(errors);
  EXPECT_HAS_ERROR(errors, "server.listen[0].port", "unknown key 'port'");
  EXPECT_HAS_ERROR(errors, "upstreams.app.targets[0].wieght", "unknown key 'wieght'");
  EXPECT_HAS_ERROR(errors, "upstreams.app.balanse", "unknown key 'balanse'");
  EXPECT_HAS_ERROR(errors, "routes[0].match.verb", "unknown key 'verb'");
  EXPECT_HAS_ERROR(errors, "routes[0].extra", "unknown key 'extra'");
}

TEST(ConfigTest, DuplicateKeys) {
  auto errors = errors_of(R"(server:
  listen:
    - address: 127.0.0.1:8080
  workers: 2
  workers: 3
upstreams:
  app:
    targets: [ { address: 127.0.0.1:9001 } ]
routes:
  - match: { path: /a }
    to: app
)");
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].to_string(), "test.yaml:5:3: server.workers: duplicate key 'workers'");
}

TEST(ConfigTest, DuplicateUpstreamsRoutesAndPlugins) {
  auto errors = errors_of(R"(server:
  listen:
    - address: 127.0.0.1:8080
upstreams:
  app:
    targets: [ { address: 127.0.0.1:9001 } ]
  app:
    targets: [ { address: 127.0.0.1:9002 } ]
routes:
  - name: r
    match: { path: /a }
    to: app
  - name: r
    match: { path: /b }
    to: app
    plugins:
      request_size: { max_body_bytes: 1KiB }
      request_size: { max_body_bytes: 2KiB }
)");
  EXPECT_EQ(errors.size(), 3u) << dump(errors);
  EXPECT_HAS_ERROR(errors, "upstreams.app", "duplicate upstream 'app'");
  EXPECT_HAS_ERROR(errors, "routes[1].name", "duplicate route name 'r'");
  EXPECT_HAS_ERROR(errors, "routes[1].plugins.request_size", "duplicate plugin 'request_size'");
}

TEST(ConfigTest, BadDurationsAndSizes) {
  auto errors = errors_of(R"(server:
  listen:
    - address: 127.0.0.1:8080
  limits:
    max_header_bytes: 32TB
    max_uri_bytes: 10
  timeouts:
    header_read: 10
    drain: 1d
upstreams:
  app:
    targets: [ { address: 127.0.0.1:9001 } ]
    timeouts: { connect: fast }
routes:
  - match: { path: /a }
    to: app
)");
  EXPECT_EQ(errors.size(), 5u) << dump(errors);
  EXPECT_HAS_ERROR(errors, "server.limits.max_header_bytes", "invalid size '32TB'");
  EXPECT_HAS_ERROR(errors, "server.limits.max_uri_bytes", "must be at least 64");
  EXPECT_HAS_ERROR(errors, "server.timeouts.header_read", "invalid duration '10'");
  EXPECT_HAS_ERROR(errors, "server.timeouts.drain", "invalid duration '1d'");
  EXPECT_HAS_ERROR(errors, "upstreams.app.timeouts.connect", "invalid duration 'fast'");
}

TEST(ConfigTest, BodyReadAndSendTimeouts) {
  Config defaults = load(R"(server:
  listen: [ { address: 127.0.0.1:8080 } ]
upstreams:
  app: { targets: [ { address: 127.0.0.1:9001 } ] }
routes:
  - { match: { path: /a }, to: app }
)");
  EXPECT_EQ(defaults.server.timeouts.body_read, Duration(60'000));
  EXPECT_EQ(defaults.server.timeouts.send, Duration(60'000));
  Config c = load(R"(server:
  listen: [ { address: 127.0.0.1:8080 } ]
  timeouts: { body_read: 1.5s, send: 250ms }
upstreams:
  app: { targets: [ { address: 127.0.0.1:9001 } ] }
routes:
  - { match: { path: /a }, to: app }
)");
  EXPECT_EQ(c.server.timeouts.body_read, Duration(1'500));
  EXPECT_EQ(c.server.timeouts.send, Duration(250));
}

TEST(ConfigTest, BadBodyReadAndSendTimeoutsAreReportedAtTheValue) {
  auto errors = errors_of(R"(server:
  listen:
    - address: 127.0.0.1:8080
  timeouts:
    body_read: 0s
    send: slowly
    idle: 0ms
upstreams:
  app:
    targets: [ { address: 127.0.0.1:9001 } ]
routes:
  - match: { path: /a }
    to: app
)");
  ASSERT_EQ(errors.size(), 3u) << dump(errors);
  EXPECT_EQ(errors[0].to_string(),
            "test.yaml:5:16: server.timeouts.body_read: must be at least 1ms");
  EXPECT_EQ(errors[1].to_string(),
            "test.yaml:6:11: server.timeouts.send: invalid duration 'slowly' (expected e.g. "
            "250ms, 2s, 5m, 1h)");
  EXPECT_EQ(errors[2].to_string(), "test.yaml:7:11: server.timeouts.idle: must be at least 1ms");
}

TEST(ConfigTest, BadAddresses) {
  auto errors = errors_of(R"(server:
  listen:
    - address: 127.0.0.1:8080
    - address: 0.0.0.0
    - address: localhost:8081
    - address: 127.0.0.1:70000
  trusted_proxies: [10.0.0.0/8, 10.0.0.0/40]
upstreams:
  app:
    targets:
      - address: "[::1]"
      - address: 127.0.0.1:http
routes:
  - match: { path: /a }
    to: app
)");
  EXPECT_EQ(errors.size(), 6u) << dump(errors);
  EXPECT_HAS_ERROR(errors, "server.listen[1].address", "invalid address '0.0.0.0'");
  // Listeners take IP literals only.
  EXPECT_HAS_ERROR(errors, "server.listen[2].address", "'localhost' is not an IP address");
  EXPECT_HAS_ERROR(errors, "server.listen[3].address", "invalid port '70000'");
  EXPECT_HAS_ERROR(errors, "server.trusted_proxies[1]", "invalid CIDR '10.0.0.0/40'");
  EXPECT_HAS_ERROR(errors, "upstreams.app.targets[0].address", "invalid address '[::1]'");
  EXPECT_HAS_ERROR(errors, "upstreams.app.targets[1].address", "invalid port 'http'");
}

TEST(ConfigTest, MissingListenerAndRoutes) {
  auto errors = errors_of("server:\n  workers: 2\n");
  EXPECT_EQ(errors.size(), 2u) << dump(errors);
  EXPECT_HAS_ERROR(errors, "server.listen", "at least one listener is required");
  EXPECT_HAS_ERROR(errors, "routes", "at least one route is required");
}

TEST(ConfigTest, EmptyFileAndSyntaxError) {
  auto empty = errors_of("");
  ASSERT_EQ(empty.size(), 1u);
  EXPECT_EQ(empty[0].message, "the config file is empty");

  auto syntax = errors_of("server:\n  listen: [\n");
  ASSERT_EQ(syntax.size(), 1u);
  EXPECT_EQ(syntax[0].path, "(syntax)");
  EXPECT_GT(syntax[0].line, 0);
}

TEST(ConfigTest, BadRegexes) {
  auto errors = errors_of(with_routes(R"(  - match: { path_regex: "^/orders/([0-9]+$" }
    to: app
  - match:
      path: /h
      headers: { x-version: { regex: "[" } }
    to: app
)"));
  EXPECT_EQ(errors.size(), 2u) << dump(errors);
  EXPECT_HAS_ERROR(errors, "routes[0].match.path_regex", "invalid regex");
  EXPECT_HAS_ERROR(errors, "routes[1].match.headers.x-version.regex", "invalid regex");
}

TEST(ConfigTest, BadPaths) {
  auto errors = errors_of(with_routes(R"(  - match: { path: api }
    to: app
  - match: { path: /a/*/b }
    to: app
  - match: { path: "/a/{1x}" }
    to: app
  - match: { path: "/a/{id}/{id}" }
    to: app
  - match: { path: /a, path_regex: "^/a$" }
    to: app
)"));
  EXPECT_EQ(errors.size(), 5u) << dump(errors);
  EXPECT_HAS_ERROR(errors, "routes[0].match.path", "must start with '/'");
  EXPECT_HAS_ERROR(errors, "routes[1].match.path", "'*' may only end a path");
  EXPECT_HAS_ERROR(errors, "routes[2].match.path", "invalid template segment '{1x}'");
  EXPECT_HAS_ERROR(errors, "routes[3].match.path", "parameter '{id}' appears twice");
  EXPECT_HAS_ERROR(errors, "routes[4].match.path_regex", "either path or path_regex");
}

TEST(ConfigTest, RouteNeedsMatchAndTo) {
  auto errors = errors_of(with_routes("  - name: lonely\n"));
  EXPECT_EQ(errors.size(), 2u) << dump(errors);
  EXPECT_HAS_ERROR(errors, "routes[0].match", "'match' is required");
  EXPECT_HAS_ERROR(errors, "routes[0].to", "'to' is required");
}

TEST(ConfigTest, MatchConditionsAreParsed) {
  Config c = load(with_routes(R"(  - match:
      host: ["API.Example.com", "*.Example.org"]
      path: "/users/{id}/posts/{post}"
      methods: [get, POST]
      headers: { X-Client: mobile, x-v: { regex: "v[0-9]+" }, x-a: { present: true }, x-b: { present: false } }
      query: { debug: "1" }
    to: app
)"));
  const Route& r = c.routes[0];
  ASSERT_EQ(r.hosts.size(), 2u);
  EXPECT_EQ(r.hosts[0].host, "api.example.com");
  EXPECT_FALSE(r.hosts[0].wildcard);
  EXPECT_EQ(r.hosts[1].host, ".example.org");
  EXPECT_TRUE(r.hosts[1].wildcard);
  EXPECT_EQ(r.path.kind, PathMatch::Kind::kTemplate);
  EXPECT_EQ(r.path.segments, (std::vector<std::string>{"users", "{id}", "posts", "{post}"}));
  EXPECT_EQ(r.methods, (std::vector<std::string>{"GET", "POST"}));
  ASSERT_EQ(r.headers.size(), 4u);
  EXPECT_EQ(r.headers[0].name, "x-client");
  EXPECT_EQ(r.headers[0].kind, ValueMatch::Kind::kExact);
  EXPECT_EQ(r.headers[0].value, "mobile");
  EXPECT_EQ(r.headers[1].kind, ValueMatch::Kind::kRegex);
  EXPECT_EQ(r.headers[2].kind, ValueMatch::Kind::kPresent);
  EXPECT_EQ(r.headers[3].kind, ValueMatch::Kind::kAbsent);
  ASSERT_EQ(r.query.size(), 1u);
  EXPECT_EQ(r.query[0].name, "debug");
  EXPECT_EQ(r.query[0].value, "1");
}

TEST(ConfigTest, BadMatchValues) {
  auto errors = errors_of(with_routes(R"(  - match:
      path: /a
      methods: ["GE T"]
      host: "a/b"
      headers: { "bad header": x, x-a: { present: maybe }, x-b: { regex: a, present: true } }
      query: [debug]
    to: app
)"));
  EXPECT_EQ(errors.size(), 6u) << dump(errors);
  EXPECT_HAS_ERROR(errors, "routes[0].match.methods", "invalid method 'GE T'");
  EXPECT_HAS_ERROR(errors, "routes[0].match.host", "invalid host 'a/b'");
  EXPECT_HAS_ERROR(errors, "routes[0].match.headers.bad header", "invalid header name");
  EXPECT_HAS_ERROR(errors, "routes[0].match.headers.x-a.present", "expected true or false");
  EXPECT_HAS_ERROR(errors, "routes[0].match.headers.x-b", "expected a value");
  EXPECT_HAS_ERROR(errors, "routes[0].match.query", "expected a mapping");
}

TEST(ConfigTest, RedisSection) {
  Config c = load(kMinimal +
                  "redis:\n  url: redis://:pw@10.0.0.1:6380/2\n  timeout: 20ms\n"
                  "  on_error: deny\n  connections: 4\n");
  EXPECT_TRUE(c.redis.enabled);
  EXPECT_EQ(c.redis.url, "redis://:pw@10.0.0.1:6380/2");
  EXPECT_EQ(c.redis.timeout.count(), 20);
  EXPECT_EQ(c.redis.on_error, Redis::OnError::kDeny);
  EXPECT_EQ(c.redis.connections, 4);
  EXPECT_FALSE(load(kMinimal).redis.enabled);
  auto errors =
      errors_of(kMinimal + "redis:\n  url: http://x\n  on_error: panic\n  connections: 99\n");
  EXPECT_HAS_ERROR(errors, "redis.url", "expected redis://");
  EXPECT_HAS_ERROR(errors, "redis.on_error", "expected local, deny or allow");
  EXPECT_HAS_ERROR(errors, "redis.connections", "");
  EXPECT_HAS_ERROR(errors_of(kMinimal + "redis:\n  timeout: 1s\n"), "redis.url",
                   "'url' is required");
  EXPECT_FALSE(c.redis.tls);
  EXPECT_FALSE(c.redis.cluster);
  EXPECT_TRUE(load(kMinimal + "redis:\n  url: redis://10.0.0.7\n  cluster: true\n").redis.cluster);
  Config sentinel =
      load(kMinimal +
           "redis:\n  url: redis://mymaster/1\n  sentinels: [10.0.0.1:26379, \"[::1]:26380\"]\n");
  EXPECT_EQ(sentinel.redis.sentinels,
            (std::vector<std::pair<std::string, uint16_t>>{{"10.0.0.1", 26379}, {"::1", 26380}}));
  auto bad_sentinels = errors_of(
      kMinimal + "redis:\n  url: redis://m\n  cluster: true\n  sentinels: [x, \"h:0\"]\n");
  EXPECT_HAS_ERROR(bad_sentinels, "redis.sentinels[0]", "expected host:port");
  EXPECT_HAS_ERROR(bad_sentinels, "redis.sentinels[1]", "expected host:port");
  EXPECT_HAS_ERROR(bad_sentinels, "redis.sentinels", "needs no sentinels");
  // rediss://: TLS, with the system CA store unless `tls` says otherwise.
  EXPECT_TRUE(load(kMinimal + "redis:\n  url: rediss://cache.example:6380\n").redis.tls);
  Config verified =
      load(kMinimal + "redis:\n  url: rediss://10.0.0.1\n  tls: { server_name: cache.example }\n");
  ASSERT_TRUE(verified.redis.tls);
  EXPECT_EQ(verified.redis.tls->server_name_for("10.0.0.1"), "cache.example");
  EXPECT_HAS_ERROR(errors_of(kMinimal + "redis:\n  url: redis://x\n  tls: {}\n"), "redis.tls",
                   "needs a rediss:// url");
}

TEST(ConfigTest, AdminSection) {
  std::vector<ConfigError> admin_errors;
  auto cfg = parse_config(kMinimal + "admin:\n  listen: 127.0.0.1:9911\n  token_env: GH_TOKEN\n",
                          "test.yaml", &admin_errors);
  ASSERT_TRUE(cfg);
  EXPECT_TRUE(cfg->admin.enabled);
  EXPECT_EQ(cfg->admin.listen.to_string(), "127.0.0.1:9911");
  EXPECT_EQ(cfg->admin.token_env, "GH_TOKEN");

  std::vector<ConfigError> none;
  auto defaults = parse_config(kMinimal + "admin: {}\n", "test.yaml", &none);
  ASSERT_TRUE(defaults) << dump(none);
  EXPECT_EQ(defaults->admin.listen.to_string(), "127.0.0.1:9901");
  auto off = parse_config(kMinimal, "test.yaml", &none);
  ASSERT_TRUE(off);
  EXPECT_FALSE(off->admin.enabled);
}

TEST(ConfigTest, AdminNeverSharesATrafficPort) {
  auto errors = errors_of(kMinimal + "admin:\n  listen: 127.0.0.1:8080\n  bogus: 1\n");
  EXPECT_HAS_ERROR(errors, "admin.listen", "port 8080 is already a traffic listener");
  EXPECT_HAS_ERROR(errors, "admin.bogus", "unknown key 'bogus'");
}

TEST(ConfigTest, ListenerTlsErrors) {
  auto errors = errors_of(R"(server:
  listen:
    - address: 127.0.0.1:8443
      tls: { certificates: [] }
    - address: 127.0.0.1:8444
      tls: { certificates: [ { cert: /nonexistent/c.pem, key: /nonexistent/k.pem } ], min_version: "1.1" }
    - address: 127.0.0.1:8445
      tls: { certificates: [ { cert: c.pem } ], alpn: [h2, spdy/3] }
upstreams:
  app:
    targets: [ { address: 127.0.0.1:9001 } ]
routes:
  - match: { path: /a }
    to: app
)");
  EXPECT_HAS_ERROR(errors, "server.listen[0].tls.certificates",
                   "expected a list of { cert: FILE, key: FILE }");
  EXPECT_HAS_ERROR(errors, "server.listen[1].tls.min_version",
                   "TLS 1.0 and 1.1 are broken and refused");
  EXPECT_HAS_ERROR(errors, "server.listen[2].tls.certificates[0]", "'cert' and 'key' are required");
  EXPECT_HAS_ERROR(errors, "server.listen[2].tls.alpn[1]", "unknown protocol 'spdy/3'");
  for (const auto& e : errors)
    EXPECT_EQ(e.path.find("tls.alpn[0]"), std::string::npos) << "h2 is offered: " << e.to_string();
}

TEST(ConfigTest, ListenerProtocols) {
  auto c = load(R"(server:
  listen:
    - { address: 127.0.0.1:8080 }
    - { address: 127.0.0.1:8081, protocols: [http1, h2c] }
    - { address: 127.0.0.1:8082, protocols: [h2c] }
upstreams:
  app:
    targets: [ { address: 127.0.0.1:9001 } ]
routes:
  - match: { path: /a }
    to: app
)");
  ASSERT_EQ(c.server.listen.size(), 3u);
  EXPECT_TRUE(c.server.listen[0].http1);
  EXPECT_FALSE(c.server.listen[0].h2c) << "HTTP/1.1 alone by default";
  EXPECT_TRUE(c.server.listen[1].http1 && c.server.listen[1].h2c);
  EXPECT_FALSE(c.server.listen[2].http1);
  EXPECT_TRUE(c.server.listen[2].h2c);
}

TEST(ConfigTest, Http2Settings) {
  auto c = load(R"(server:
  listen: [ { address: 127.0.0.1:8080, protocols: [http1, h2c] } ]
  http2: { max_concurrent_streams: 10, stream_window: 1MiB, connection_window: 8MiB, max_frame_size: 64KiB }
upstreams:
  app:
    targets: [ { address: 127.0.0.1:9001 } ]
routes:
  - match: { path: /a }
    to: app
)");
  EXPECT_EQ(c.server.http2.max_concurrent_streams, 10u);
  EXPECT_EQ(c.server.http2.stream_window, 1024u * 1024);
  EXPECT_EQ(c.server.http2.connection_window, 8u * 1024 * 1024);
  EXPECT_EQ(c.server.http2.max_frame_size, 64u * 1024);
  EXPECT_EQ(load(kMinimal).server.http2.max_concurrent_streams, 100u) << "the default";

  auto errors = errors_of(R"(server:
  listen: [ { address: 127.0.0.1:8080 } ]
  http2: { max_concurrent_streams: 0, stream_window: 2GiB, max_frame_size: 1KiB, push: true }
upstreams:
  app:
    targets: [ { address: 127.0.0.1:9001 } ]
routes:
  - match: { path: /a }
    to: app
)");
  EXPECT_HAS_ERROR(errors, "server.http2.push", "unknown key 'push'");
  EXPECT_HAS_ERROR(errors, "server.http2.max_concurrent_streams", "");
  EXPECT_HAS_ERROR(errors, "server.http2.stream_window", "must be within 1024 and 2147483647");
  EXPECT_HAS_ERROR(errors, "server.http2.max_frame_size", "must be within 16384 and 16777215");
}

TEST(ConfigTest, RouteWebSocket) {
  auto c = load(with_routes(R"(  - match: { path: /ws }
    to: app
    websocket: { idle_timeout: 5s, max_frame_bytes: 64KiB, max_message_bytes: 1MiB }
  - match: { path: /defaults }
    to: app
    websocket: {}
  - match: { path: /plain }
    to: app
)"));
  ASSERT_EQ(c.routes.size(), 3u);
  ASSERT_TRUE(c.routes[0].websocket);
  EXPECT_EQ(c.routes[0].websocket->idle_timeout, std::chrono::seconds(5));
  EXPECT_EQ(c.routes[0].websocket->max_frame_bytes, 64u * 1024);
  EXPECT_EQ(c.routes[0].websocket->max_message_bytes, 1024u * 1024);
  ASSERT_TRUE(c.routes[1].websocket);
  EXPECT_EQ(c.routes[1].websocket->max_message_bytes, 4u * 1024 * 1024);
  EXPECT_FALSE(c.routes[2].websocket) << "no upgrades unless the route says so";

  auto errors = errors_of(with_routes(R"(  - match: { path: /ws }
    to: app
    websocket: { max_frame_bytes: 100, idle_timeout: 0s, subprotocols: [chat] }
)"));
  EXPECT_HAS_ERROR(errors, "routes[0].websocket.max_frame_bytes", "must be at least 125 bytes");
  EXPECT_HAS_ERROR(errors, "routes[0].websocket.idle_timeout", "must be at least 1ms");
  EXPECT_HAS_ERROR(errors, "routes[0].websocket.subprotocols", "unknown key 'subprotocols'");
}

TEST(ConfigTest, ListenerProtocolErrors) {
  auto errors = errors_of(R"(server:
  listen:
    - { address: 127.0.0.1:8080, protocols: [http1] }
    - { address: 127.0.0.1:8081, protocols: [http1, h2] }
    - { address: 127.0.0.1:8082, protocols: [spdy] }
    - address: 127.0.0.1:8083
      protocols: [h2c]
      tls: { certificates: [ { cert: c.pem, key: k.pem } ] }
upstreams:
  app:
    targets: [ { address: 127.0.0.1:9001 } ]
routes:
  - match: { path: /a }
    to: app
)");
  EXPECT_HAS_ERROR(errors, "server.listen[1].protocols[1]", "'h2' is chosen by ALPN");
  EXPECT_HAS_ERROR(errors, "server.listen[2].protocols[0]", "unknown protocol 'spdy'");
  EXPECT_HAS_ERROR(errors, "server.listen[3].protocols", "h2c is cleartext HTTP/2");
  for (const auto& e : errors)
    EXPECT_EQ(e.path.find("server.listen[0]"), std::string::npos) << e.to_string();
}

// An upstream "billing" with the given lines under `tls:` (indented by 6), routed from /b.
std::string with_upstream_tls(const std::string& tls_lines,
                              const std::string& address = "10.0.0.5:8443") {
  return R"(server:
  listen:
    - address: 127.0.0.1:8080
upstreams:
  billing:
    targets: [ { address: )" +
         address + R"( } ]
    tls:
)" + tls_lines +
         R"(
routes:
  - match: { path: /b }
    to: billing
)";
}

TEST(ConfigTest, UpstreamTls) {
  // No tls: plain HTTP; the target's host is kept as written.
  auto plain = load(kMinimal);
  EXPECT_EQ(plain.upstreams[0].tls, nullptr);
  EXPECT_EQ(plain.upstreams[0].targets[0].host, "127.0.0.1");

  auto c =
      load(with_upstream_tls("      server_name: Billing.Internal\n      min_version: \"1.3\""));
  ASSERT_NE(c.upstreams[0].tls, nullptr);
  const auto& s = c.upstreams[0].tls->settings();
  EXPECT_EQ(s.server_name, "billing.internal");
  EXPECT_EQ(s.min_version, 13);
  EXPECT_TRUE(s.verify);
  EXPECT_EQ(s.ca_file, "");  // the system store
  EXPECT_EQ(c.upstreams[0].tls->server_name_for(c.upstreams[0].targets[0].host),
            "billing.internal");

  // `tls: {}` and a bare `tls:` take every default; the name is then the target's host.
  for (const char* empty : {"      {}", ""}) {
    auto d = load(with_upstream_tls(empty, "\"[::1]:8443\""));
    ASSERT_NE(d.upstreams[0].tls, nullptr) << empty;
    EXPECT_EQ(d.upstreams[0].tls->settings().min_version, 12);
    EXPECT_EQ(d.upstreams[0].targets[0].host, "::1");
    EXPECT_EQ(d.upstreams[0].tls->server_name_for(d.upstreams[0].targets[0].host), "::1");
  }
  auto lax = load(with_upstream_tls("      verify: false"));
  EXPECT_FALSE(lax.upstreams[0].tls->settings().verify);
}

TEST(ConfigTest, UpstreamTlsErrors) {
  std::vector<ConfigError> errors;
  parse_config(with_upstream_tls("      ca_file: certs/none.pem"), "/etc/gh/gatehouse.yaml",
               &errors);
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].to_string(),
            "/etc/gh/gatehouse.yaml:8:16: upstreams.billing.tls.ca_file: cannot read the CA file "
            "/etc/gh/certs/none.pem: No such file or directory");

  auto bad = errors_of(with_upstream_tls(
      "      min_version: \"1.1\"\n      server_name: \"a b\"\n      verify: maybe\n"
      "      ca_file: \"\"\n      alpn: [h2]"));
  EXPECT_EQ(bad.size(), 5u) << dump(bad);
  EXPECT_HAS_ERROR(bad, "upstreams.billing.tls.min_version", "expected \"1.2\" or \"1.3\"");
  EXPECT_HAS_ERROR(bad, "upstreams.billing.tls.server_name",
                   "'a b' is not a DNS name or an IP address");
  EXPECT_HAS_ERROR(bad, "upstreams.billing.tls.verify", "expected true or false");
  EXPECT_HAS_ERROR(bad, "upstreams.billing.tls.ca_file", "must not be empty");
  EXPECT_HAS_ERROR(bad, "upstreams.billing.tls.alpn", "unknown key 'alpn'");

  auto scalar = errors_of(with_upstream_tls("      yes"));
  EXPECT_HAS_ERROR(scalar, "upstreams.billing.tls", "expected a mapping");
}

TEST(ConfigTest, BulkheadQueue) {
  Config c = load(R"(server:
  listen: [ { address: 127.0.0.1:8080 } ]
upstreams:
  app:
    targets: [ { address: 127.0.0.1:9001 } ]
    max_concurrent_requests: 10
    max_pending: 5
    timeouts: { connect: 300ms, queue: 1s }
  other:
    targets: [ { address: 127.0.0.1:9002 } ]
    timeouts: { connect: 300ms }
routes:
  - { match: { path: /a }, to: app }
)");
  EXPECT_EQ(c.upstreams[0].max_pending, 5u);
  EXPECT_EQ(c.upstreams[0].queue_timeout.count(), 1000);
  EXPECT_EQ(c.upstreams[1].max_pending, 0u);
  EXPECT_EQ(c.upstreams[1].queue_timeout.count(), 300) << "the connect timeout, as HAProxy";
  auto errors = errors_of(R"(server:
  listen: [ { address: 127.0.0.1:8080 } ]
upstreams:
  app:
    targets: [ { address: 127.0.0.1:9001 } ]
    max_pending: 5
routes:
  - { match: { path: /a }, to: app }
)");
  EXPECT_HAS_ERROR(errors, "upstreams.app.max_pending", "needs max_concurrent_requests");
}

TEST(ConfigTest, HealthCheckSettings) {
  Config c = load(R"(server:
  listen: [ { address: 127.0.0.1:8080 } ]
upstreams:
  app:
    targets: [ { address: 127.0.0.1:9001 } ]
    health_check: { path: /ready, interval: 2s, timeout: 500ms, unhealthy_after: 4, healthy_after: 1,
                    expected_statuses: [2xx, 418], initial_state: unhealthy }
  other:
    targets: [ { address: 127.0.0.1:9002 } ]
    health_check: {}
routes:
  - { match: { path: /a }, to: app }
)");
  const auto& h = *c.upstreams[0].health_check;
  EXPECT_EQ(h.path, "/ready");
  EXPECT_EQ(h.interval.count(), 2000);
  EXPECT_EQ(h.timeout.count(), 500);
  EXPECT_EQ(h.unhealthy_after, 4u);
  EXPECT_EQ(h.healthy_after, 1u);
  EXPECT_EQ(h.expected_statuses, (std::vector<std::pair<int, int>>{{200, 299}, {418, 418}}));
  EXPECT_FALSE(h.initially_healthy);
  const auto& defaults = *c.upstreams[1].health_check;
  EXPECT_EQ(defaults.expected_statuses, (std::vector<std::pair<int, int>>{{200, 399}}));
  EXPECT_TRUE(defaults.initially_healthy);
  auto bad_values = errors_of(R"(server:
  listen: [ { address: 127.0.0.1:8080 } ]
upstreams:
  app:
    targets: [ { address: 127.0.0.1:9001 } ]
    health_check: { expected_statuses: [200, 6xx, 20], initial_state: maybe }
routes:
  - { match: { path: /a }, to: app }
)");
  EXPECT_HAS_ERROR(bad_values, "upstreams.app.health_check.expected_statuses[1]",
                   "a class such as 2xx");
  EXPECT_HAS_ERROR(bad_values, "upstreams.app.health_check.expected_statuses[2]", "a status code");
  EXPECT_HAS_ERROR(bad_values, "upstreams.app.health_check.initial_state", "healthy or unhealthy");
  auto errors = errors_of(R"(server:
  listen: [ { address: 127.0.0.1:8080 } ]
upstreams:
  app:
    targets: [ { address: 127.0.0.1:9001 } ]
    health_check: { path: "no slash", interval: 1ms, unhealthy_after: 0, x: 1 }
routes:
  - { match: { path: /a }, to: app }
)");
  EXPECT_HAS_ERROR(errors, "upstreams.app.health_check.x", "unknown key");
}

// A composite route: its legs, their templates, and the graph of what they wait for.
TEST(ConfigTest, AggregateLegsAndTheirGraph) {
  Config c = load(with_routes(R"(  - name: page
    match: { path: "/page/{id}" }
    aggregate:
      timeout: 800ms
      partial_status: 206
      calls:
        product: { upstream: app, path: "/products/{id}?lang={query.lang}" }
        seller: { upstream: app, path: "/sellers/{product.seller.id}", optional: true, timeout: 300ms }
        who: { upstream: app, path: "/u/{header.X-User}", method: POST, credentials: true,
               headers: [Accept-Language], add_headers: { x-leg: who }, pass_status: [404] }
)"));
  ASSERT_TRUE(c.routes[0].aggregate);
  const Aggregate& a = *c.routes[0].aggregate;
  EXPECT_EQ(a.timeout, std::chrono::milliseconds(800));
  EXPECT_EQ(a.partial_status, 206);
  ASSERT_EQ(a.legs.size(), 3u);
  EXPECT_EQ(a.legs[0].route->name, "page.product");
  EXPECT_TRUE(a.legs[0].needs.empty());
  ASSERT_EQ(a.legs[0].path.size(), 4u);
  EXPECT_EQ(a.legs[0].path[1].kind, TemplatePart::Kind::kCapture);
  EXPECT_EQ(a.legs[0].path[3].kind, TemplatePart::Kind::kQuery);
  EXPECT_EQ(a.legs[1].needs, std::vector<size_t>{0});
  EXPECT_EQ(a.legs[1].path[1].kind, TemplatePart::Kind::kLeg);
  EXPECT_EQ(a.legs[1].path[1].text, "seller.id");
  EXPECT_TRUE(a.legs[1].optional);
  EXPECT_EQ(a.legs[1].route->timeout, std::chrono::milliseconds(300));
  EXPECT_EQ(a.legs[2].path[1].text, "x-user") << "header names in lower case";
  EXPECT_EQ(a.legs[2].method, "POST");
  EXPECT_EQ(a.legs[2].headers, std::vector<std::string>{"accept-language"});
  EXPECT_EQ(a.legs[2].pass_status, std::vector<int>{404});
  EXPECT_TRUE(a.legs[2].credentials);
}

TEST(ConfigTest, AggregateErrorsNameTheLegs) {
  auto errors = errors_of(with_routes(R"(  - match: { path: "/a/{id}" }
    aggregate:
      calls:
        a: { upstream: app, path: "/x/{c.v}" }
        b: { upstream: app, path: "/y/{a.v}" }
        c: { upstream: app, path: "/z/{b.v}" }
  - match: { path: "/b/{id}" }
    to: app
    aggregate:
      calls:
        a: { upstream: nowhere, path: "/x/{nope}/{a.v}/{b}" }
        b: { upstream: app, path: "x" }
  - match: { path: "/c/{id}" }
    aggregate: { calls: {} }
)"));
  EXPECT_HAS_ERROR(errors, "routes[0].aggregate.calls.b.path",
                   "the legs wait for each other's answers: a -> c -> b -> a");
  EXPECT_HAS_ERROR(errors, "routes[1].to", "has no 'to'");
  errors = errors_of(with_routes(R"(  - match: { path: "/b/{id}" }
    aggregate:
      calls:
        a: { upstream: nowhere, path: "/x/{nope}/{a.v}/{b}" }
        b: { upstream: app, path: "x" }
        id: { upstream: app, path: "/{id}" }
)"));
  EXPECT_HAS_ERROR(errors, "routes[0].aggregate.calls.a.upstream", "unknown upstream 'nowhere'");
  EXPECT_HAS_ERROR(errors, "routes[0].aggregate.calls.a.path", "{nope} is not a capture");
  EXPECT_HAS_ERROR(errors, "routes[0].aggregate.calls.a.path", "cannot use its own answer");
  EXPECT_HAS_ERROR(errors, "routes[0].aggregate.calls.a.path", "{b} is a whole answer");
  EXPECT_HAS_ERROR(errors, "routes[0].aggregate.calls.b.path", "starts with '/'");
  EXPECT_HAS_ERROR(errors, "routes[0].aggregate.calls.id", "also a capture");
  std::string many = "  - match: { path: /m }\n    aggregate:\n      calls:\n";
  for (int i = 0; i < 17; ++i)
    many += "        l" + std::to_string(i) + ": { upstream: app, path: /x }\n";
  EXPECT_HAS_ERROR(errors_of(with_routes(many)), "routes[0].aggregate.calls", "at most 16");
}

// grpc_transcode's settings (the descriptor sets themselves: filters/grpc_transcode's tests).
TEST(ConfigTest, GrpcTranscodeSettingsAreChecked) {
  auto errors = errors_of(with_routes(R"(  - match: { path: "/r/{id}" }
    to: app
    grpc_transcode: { method: a.B/C, x: 1 }
  - match: { path: "/s/{id}" }
    to: app
    grpc_transcode: { descriptor_set: /nonexistent/set.pb }
  - match: { path: "/t/{id}" }
    to: app
    plugins: { grpc_transcode: {} }
)"));
  EXPECT_HAS_ERROR(errors, "routes[0].grpc_transcode.x", "unknown key");
  EXPECT_HAS_ERROR(errors, "routes[0].grpc_transcode.descriptor_set",
                   "'descriptor_set' is required");
  EXPECT_HAS_ERROR(errors, "routes[1].grpc_transcode", "upstream 'app' is not protocol: grpc");
  EXPECT_HAS_ERROR(errors, "routes[1].grpc_transcode.descriptor_set",
                   "cannot read descriptor set /nonexistent/set.pb");
  EXPECT_HAS_ERROR(errors, "routes[2].plugins.grpc_transcode", "unknown plugin");
}

TEST(ConfigTest, CacheAndCompressSettingsAreChecked) {
  auto errors = errors_of(with_routes(R"(  - match: { path: /a }
    to: app
    plugins:
      compress: { encodings: [gzip, deflate], level: { gzip: 10 } }
      cache: { ttl: 0s, tier: disk, key: [cookie:x] }
)"));
  EXPECT_HAS_ERROR(errors, "routes[0].plugins.compress.encodings", "unknown encoding 'deflate'");
  EXPECT_HAS_ERROR(errors, "routes[0].plugins.compress.level.gzip", "");
  EXPECT_HAS_ERROR(errors, "routes[0].plugins.cache.ttl", "at least 1s");
  EXPECT_HAS_ERROR(errors, "routes[0].plugins.cache.tier", "expected memory or redis");
  EXPECT_HAS_ERROR(errors, "routes[0].plugins.cache.key", "unknown key part 'cookie:x'");
  auto redis = errors_of(with_routes(R"(  - match: { path: /a }
    to: app
    plugins: { cache: { tier: redis } }
)"));
  EXPECT_HAS_ERROR(redis, "routes[0].plugins.cache.tier", "needs the top-level redis block");
}

TEST(ConfigTest, UnknownPlugin) {
  auto errors = errors_of(with_routes(R"(  - match: { path: /a }
    to: app
    plugins:
      frobnicate: {}
)"));
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].path, "routes[0].plugins.frobnicate");
  EXPECT_EQ(errors[0].message.rfind(
                "unknown plugin 'frobnicate' (known: response_headers, cors, ip_rules", 0),
            0u)
      << errors[0].message;
}

TEST(ConfigTest, RequestSizePluginParsesAndApplies) {
  Config c = load(with_routes(R"(  - match: { path: /upload }
    to: app
    plugins:
      request_size: { max_body_bytes: 64KiB }
)"));
  ASSERT_EQ(c.routes[0].filters.size(), 1u);
  const auto& f = *c.routes[0].filters[0];
  EXPECT_EQ(f.name(), "request_size");

  http::RequestHead req;
  req.framing = http::Framing::kContentLength;
  filters::RequestContext ctx;
  ctx.request = &req;

  req.content_length = 64 * 1024;  // exactly the limit: allowed
  ctx.max_body_bytes = 10 * 1024 * 1024;
  EXPECT_EQ(f.on_request(ctx), filters::FilterStatus::kContinue);
  EXPECT_EQ(ctx.max_body_bytes, 64u * 1024);  // lowered for a chunked body, too

  req.content_length = 64 * 1024 + 1;
  ctx.reset();
  ctx.max_body_bytes = 10 * 1024 * 1024;
  EXPECT_EQ(f.on_request(ctx), filters::FilterStatus::kRespond);
  EXPECT_EQ(ctx.reply.status, 413);
  EXPECT_EQ(ctx.reply.code, "body_too_large");
}

TEST(ConfigTest, RequestSizePluginErrors) {
  auto errors = errors_of(with_routes(R"(  - match: { path: /a }
    to: app
    plugins:
      request_size: { max_body_bytes: lots }
  - match: { path: /b }
    to: app
    plugins:
      request_size: {}
  - match: { path: /c }
    to: app
    plugins:
      request_size: { max_body_bytes: 1KiB, min: 1 }
)"));
  EXPECT_EQ(errors.size(), 3u) << dump(errors);
  EXPECT_HAS_ERROR(errors, "routes[0].plugins.request_size.max_body_bytes", "invalid size 'lots'");
  EXPECT_HAS_ERROR(errors, "routes[1].plugins.request_size", "'max_body_bytes' is required");
  EXPECT_HAS_ERROR(errors, "routes[2].plugins.request_size.min", "unknown key 'min'");
}

TEST(ConfigTest, RewritePathMustUseCapturedParams) {
  auto errors = errors_of(with_routes(R"(  - match: { path: "/items/{id}" }
    rewrite: { path: "/v2/{name}" }
    to: app
)"));
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].path, "routes[0].rewrite.path");
  EXPECT_EQ(errors[0].message, "'{name}' is not captured by this route's path (captures: id)");

  auto none = errors_of(with_routes(R"(  - match: { path: /items }
    rewrite: { path: "/v2/{id}" }
    to: app
)"));
  ASSERT_EQ(none.size(), 1u) << dump(none);
  EXPECT_HAS_ERROR(none, "routes[0].rewrite.path", "(captures: none)");
}

TEST(ConfigTest, RewritePathFromTemplateAndRegexCaptures) {
  Config c = load(with_routes(R"(  - match: { path: "/items/{id}" }
    rewrite: { path: "/v2/items/{id}" }
    to: app
  - match: { path_regex: "^/o/(?P<oid>[0-9]+)$" }
    rewrite: { path: "/orders/{oid}", host: backend.internal }
    to: app
  - match: { path: /api/* }
    rewrite: { strip_prefix: /api }
    to: app
  - match: { path: /v1/* }
    rewrite: { replace_prefix: { from: /v1, to: /v2 } }
    to: app
)"));
  EXPECT_EQ(c.routes[0].rewrite.path_template, "/v2/items/{id}");
  EXPECT_EQ(c.routes[1].rewrite.path_template, "/orders/{oid}");
  EXPECT_EQ(c.routes[1].rewrite.host, "backend.internal");
  EXPECT_EQ(c.routes[2].rewrite.strip_prefix, "/api");
  ASSERT_TRUE(c.routes[3].rewrite.replace_prefix.has_value());
  EXPECT_EQ(c.routes[3].rewrite.replace_prefix->first, "/v1");
  EXPECT_EQ(c.routes[3].rewrite.replace_prefix->second, "/v2");
}

TEST(ConfigTest, RewriteRulesAreExclusive) {
  auto errors = errors_of(with_routes(R"(  - match: { path: /api/* }
    rewrite: { strip_prefix: /api, replace_prefix: { from: /api, to: /v2 } }
    to: app
  - match: { path: /b/* }
    rewrite: { strip_prefix: b }
    to: app
)"));
  EXPECT_EQ(errors.size(), 2u) << dump(errors);
  EXPECT_HAS_ERROR(errors, "routes[0].rewrite", "use only one of");
  EXPECT_HAS_ERROR(errors, "routes[1].rewrite.strip_prefix", "must start with '/'");
}

TEST(ConfigTest, HashOnNeedsConsistentHash) {
  auto errors = errors_of(R"(server:
  listen:
    - address: 127.0.0.1:8080
upstreams:
  app:
    targets: [ { address: 127.0.0.1:9001 } ]
    hash_on: "header:x-user-id"
routes:
  - match: { path: /a }
    to: app
)");
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].to_string(),
            "test.yaml:7:14: upstreams.app.hash_on: hash_on needs balance: consistent_hash");
}

TEST(ConfigTest, HashOnKinds) {
  Config c = load(R"(server:
  listen:
    - address: 127.0.0.1:8080
upstreams:
  h:
    targets: [ { address: 127.0.0.1:9001 } ]
    hash_on: "header:X-User-Id"
    balance: consistent_hash
  c:
    targets: [ { address: 127.0.0.1:9001 } ]
    balance: consistent_hash
    hash_on: "cookie:Session"
  i:
    targets: [ { address: 127.0.0.1:9001 } ]
    balance: consistent_hash
    hash_on: ip
routes:
  - match: { path: /a }
    to: h
)");
  ASSERT_EQ(c.upstreams.size(), 3u);
  EXPECT_EQ(c.upstreams[0].balance, Balance::kConsistentHash);
  EXPECT_EQ(c.upstreams[0].hash_on.kind, HashOn::Kind::kHeader);
  EXPECT_EQ(c.upstreams[0].hash_on.name, "x-user-id");
  EXPECT_EQ(c.upstreams[1].hash_on.kind, HashOn::Kind::kCookie);
  EXPECT_EQ(c.upstreams[1].hash_on.name, "Session");  // cookie names are case-sensitive
  EXPECT_EQ(c.upstreams[2].hash_on.kind, HashOn::Kind::kClientIp);

  auto errors = errors_of(R"(server:
  listen:
    - address: 127.0.0.1:8080
upstreams:
  h:
    targets: [ { address: 127.0.0.1:9001 } ]
    balance: fastest
  i:
    targets: [ { address: 127.0.0.1:9001 } ]
    balance: consistent_hash
    hash_on: "query:x"
routes:
  - match: { path: /a }
    to: h
)");
  EXPECT_EQ(errors.size(), 2u) << dump(errors);
  EXPECT_HAS_ERROR(errors, "upstreams.h.balance", "unknown balance 'fastest'");
  EXPECT_HAS_ERROR(errors, "upstreams.i.hash_on", "invalid hash_on 'query:x'");
}

TEST(ConfigTest, WeightedSplitResolvesUpstreams) {
  Config c = load(with_routes(R"(  - match: { path: /a }
    to:
      - { upstream: other, weight: 5 }
      - { upstream: app, weight: 95 }
)"));
  const auto& to = c.routes[0].to;
  ASSERT_EQ(to.size(), 2u);
  EXPECT_EQ(to[0].upstream, "other");
  EXPECT_EQ(to[0].upstream_index, 1u);
  EXPECT_EQ(to[0].weight, 5u);
  EXPECT_EQ(to[1].upstream_index, 0u);
  EXPECT_EQ(to[1].weight, 95u);
}

TEST(ConfigTest, WeightsSummingToZeroAreAnError) {
  auto errors = errors_of(with_routes(R"(  - match: { path: /a }
    to:
      - { upstream: app, weight: 0 }
      - { upstream: other, weight: 0 }
)"));
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].path, "routes[0].to");
  EXPECT_EQ(errors[0].message, "the weights add up to 0");
  EXPECT_EQ(errors[0].line, 14);

  // One zero weight next to a positive one is fine (a drained canary).
  Config c = load(with_routes(R"(  - match: { path: /a }
    to:
      - { upstream: app, weight: 0 }
      - { upstream: other, weight: 1 }
)"));
  EXPECT_EQ(c.routes[0].to[0].weight, 0u);
}

TEST(ConfigTest, UpstreamNeedsTargetsAndValidWeights) {
  auto errors = errors_of(R"(server:
  listen:
    - address: 127.0.0.1:8080
upstreams:
  empty:
    balance: random
  heavy:
    targets: [ { address: 127.0.0.1:9001, weight: 0 } ]
  proto:
    targets: [ { address: 127.0.0.1:9001 } ]
    protocol: spdy
routes:
  - match: { path: /a }
    to: heavy
)");
  EXPECT_EQ(errors.size(), 3u) << dump(errors);
  EXPECT_HAS_ERROR(errors, "upstreams.empty.targets", "at least one target is required");
  EXPECT_HAS_ERROR(errors, "upstreams.heavy.targets[0].weight", "must be between 1 and 10000");
  EXPECT_HAS_ERROR(errors, "upstreams.proto.protocol", "unknown protocol 'spdy'");
}

// protocol: http2 (h2c, or h2 by ALPN with tls); a WebSocket route needs an HTTP/1.1 upstream.
TEST(ConfigTest, UpstreamProtocolHttp2) {
  auto c = load(R"(server:
  listen: [ { address: 127.0.0.1:8080 } ]
upstreams:
  h2c: { protocol: http2, targets: [ { address: 127.0.0.1:9001 } ] }
  h2: { protocol: http2, tls: { verify: false }, targets: [ { address: 127.0.0.1:9002 } ] }
  h1: { protocol: http1, tls: { verify: false }, targets: [ { address: 127.0.0.1:9003 } ] }
  g: { protocol: grpc, tls: { verify: false }, targets: [ { address: 127.0.0.1:9004 } ] }
routes:
  - { match: { path: /a }, to: h2c }
)");
  EXPECT_EQ(c.upstreams[0].protocol, Upstream::Protocol::kHttp2);
  EXPECT_EQ(c.upstreams[1].protocol, Upstream::Protocol::kHttp2);
  EXPECT_EQ(c.upstreams[2].protocol, Upstream::Protocol::kHttp1);
  EXPECT_EQ(c.upstreams[3].protocol, Upstream::Protocol::kGrpc);
  EXPECT_TRUE(c.upstreams[3].http2() && c.upstreams[3].tls->settings().http2)
      << "gRPC is HTTP/2: ALPN offers h2";
  EXPECT_TRUE(c.upstreams[1].tls->settings().http2) << "ALPN offers h2";
  EXPECT_FALSE(c.upstreams[2].tls->settings().http2);
  EXPECT_NE(c.upstreams[1].tls->identity(), c.upstreams[2].tls->identity())
      << "pools never share a connection made for the other protocol";

  auto errors = errors_of(R"(server:
  listen: [ { address: 127.0.0.1:8080 } ]
upstreams:
  h2c: { protocol: http2, targets: [ { address: 127.0.0.1:9001 } ] }
  odd: { protocol: spdy, targets: [ { address: 127.0.0.1:9002 } ] }
  g: { protocol: grpc, targets: [ { address: 127.0.0.1:9003 } ] }
routes:
  - { match: { path: /ws }, to: h2c, websocket: {} }
  - { match: { path: /ws2 }, to: g, websocket: {} }
)");
  EXPECT_EQ(errors.size(), 3u) << dump(errors);
  EXPECT_HAS_ERROR(errors, "upstreams.odd.protocol", "unknown protocol 'spdy'");
  EXPECT_HAS_ERROR(errors, "routes[0].websocket", "speaks HTTP/2");
  EXPECT_HAS_ERROR(errors, "routes[1].websocket", "speaks HTTP/2");
}

TEST(ConfigTest, ObservabilityErrors) {
  auto errors = errors_of(kMinimal + R"(observability:
  request_id_header: "x id"
  access_log: { path: "", format: text }
  tracing: { sample_ratio: 0.1, sampling: all }
)");
  EXPECT_EQ(errors.size(), 4u) << dump(errors);
  EXPECT_HAS_ERROR(errors, "observability.request_id_header", "not a valid header name");
  EXPECT_HAS_ERROR(errors, "observability.access_log.path", "must not be empty");
  EXPECT_HAS_ERROR(errors, "observability.access_log.format", "unknown format 'text'");
  EXPECT_HAS_ERROR(errors, "observability.tracing.sampling", "unknown key");
}

TEST(ConfigTest, AccessLogFields) {
  EXPECT_TRUE(load(kMinimal).observability.access_log.has(AccessLog::kRetries));  // all by default
  Config c = load(kMinimal + R"(observability:
  access_log: { fields: [time, status, upstream_connect_ms, grpc] }
)");
  const AccessLog& log = c.observability.access_log;
  EXPECT_EQ(log.fields, 1u << AccessLog::kTime | 1u << AccessLog::kStatus |
                            1u << AccessLog::kUpstreamConnectMs | 1u << AccessLog::kGrpc);
  auto errors = errors_of(kMinimal + R"(observability:
  access_log: { fields: [time, latency] }
)");
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_HAS_ERROR(errors, "observability.access_log.fields", "unknown field 'latency'");
}

TEST(ConfigTest, Tracing) {
  Config off = load(kMinimal);
  EXPECT_FALSE(off.observability.tracing);
  Config c = load(kMinimal + R"(observability:
  tracing:
    otlp_endpoint: https://collector.example:4318/v1/traces
    sample_ratio: 25%
    always_sample_errors: true
    propagation: [b3multi, tracecontext, b3]
    service_name: edge
    resource: { deployment.environment: prod }
    export: { max_queue: 100, max_batch: 10, interval: 200ms, timeout: 2s, max_retries: 0,
              compression: gzip, headers: { x-api-key: k } }
)");
  ASSERT_TRUE(c.observability.tracing);
  const Tracing& t = *c.observability.tracing;
  EXPECT_EQ(t.otlp_endpoint, "https://collector.example:4318/v1/traces");
  EXPECT_DOUBLE_EQ(t.sample_ratio, 0.25);
  EXPECT_TRUE(t.always_sample_errors);
  using P = Tracing::Propagator;
  EXPECT_EQ(t.propagation, (std::vector<P>{P::kB3Multi, P::kTraceContext, P::kB3}));
  EXPECT_EQ(t.resource, (std::vector<std::pair<std::string, std::string>>{
                            {"service.name", "edge"}, {"deployment.environment", "prod"}}));
  EXPECT_EQ(t.max_queue, 100u);
  EXPECT_EQ(t.max_batch, 10u);
  EXPECT_EQ(t.interval, Duration(200));
  EXPECT_EQ(t.timeout, Duration(2000));
  EXPECT_EQ(t.max_retries, 0);
  EXPECT_TRUE(t.gzip);
  EXPECT_EQ(t.headers.at(0).first, "x-api-key");
  // The defaults: W3C trace context alone, every new trace sampled, no compression.
  Tracing d = *load(kMinimal + "observability: { tracing: {} }\n").observability.tracing;
  EXPECT_EQ(d.propagation, std::vector<P>{P::kTraceContext});
  EXPECT_DOUBLE_EQ(d.sample_ratio, 1.0);
  EXPECT_FALSE(d.gzip);
  EXPECT_TRUE(d.otlp_endpoint.empty());
}

TEST(ConfigTest, TracingErrors) {
  auto errors = errors_of(kMinimal + R"(observability:
  tracing:
    otlp_endpoint: ftp://collector/v1/traces
    sample_ratio: 2
    propagation: [zipkin]
    export: { compression: zstd, headers: { "bad header": x }, max_batch: 0 }
)");
  EXPECT_EQ(errors.size(), 6u) << dump(errors);
  EXPECT_HAS_ERROR(errors, "observability.tracing.otlp_endpoint", "http:// or https://");
  EXPECT_HAS_ERROR(errors, "observability.tracing.sample_ratio", "from 0 to 1");
  EXPECT_HAS_ERROR(errors, "observability.tracing.propagation", "unknown propagator 'zipkin'");
  EXPECT_HAS_ERROR(errors, "observability.tracing.export.compression", "gzip or none");
  EXPECT_HAS_ERROR(errors, "observability.tracing.export.headers", "not a header name");
  EXPECT_HAS_ERROR(errors, "observability.tracing.export.max_batch", "");
}

TEST(ConfigTest, LoadConfigReportsUnreadableFile) {
  std::vector<ConfigError> errors;
  EXPECT_FALSE(load_config("/nonexistent/gatehouse.yaml", &errors).has_value());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].to_string(),
            "/nonexistent/gatehouse.yaml:0:0: (file): cannot read the config file");
}

TEST(ConfigTest, ConsumersWithKeyDigestsAndEnvironmentKeys) {
  setenv("GH_TEST_PARTNER_KEY", "partner-secret", 1);
  Config c = load(kMinimal + R"(consumers:
  - name: mobile-app
    groups: [clients, beta]
    api_keys: [ { sha256: 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08 } ]
  - name: partner
    api_keys: [ { env: GH_TEST_PARTNER_KEY } ]
)");
  ASSERT_EQ(c.consumers.size(), 2u);
  EXPECT_EQ(c.consumers[0].groups, (std::vector<std::string>{"clients", "beta"}));
  EXPECT_EQ(c.consumers[0].api_key_sha256.at(0), crypto::sha256("test"));
  EXPECT_EQ(c.consumers[1].api_key_sha256.at(0), crypto::sha256("partner-secret"));
}

TEST(ConfigTest, ConsumerErrors) {
  setenv("GH_TEST_SAME_KEY", "test", 1);
  unsetenv("GH_TEST_UNSET_KEY");
  auto errors = errors_of(kMinimal + R"(consumers:
  - name: a
    api_keys: [ { sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 } ]
  - name: a
    api_keys: [ { env: GH_TEST_UNSET_KEY }, { sha256: abc }, { env: X, sha256: y } ]
  - name: "bad name"
    groups: ["a,b"]
    api_keys: [ { env: GH_TEST_SAME_KEY } ]
)");
  EXPECT_HAS_ERROR(errors, "consumers[1].name", "duplicate consumer 'a'");
  EXPECT_HAS_ERROR(errors, "consumers[1].api_keys[0].env",
                   "environment variable GH_TEST_UNSET_KEY is not set");
  EXPECT_HAS_ERROR(errors, "consumers[1].api_keys[1].sha256", "64 hexadecimal digits");
  EXPECT_HAS_ERROR(errors, "consumers[1].api_keys[2]", "exactly one of");
  EXPECT_HAS_ERROR(errors, "consumers[2].name", "HTTP token");
  EXPECT_HAS_ERROR(errors, "consumers[2].groups[0]", "HTTP token");
  EXPECT_HAS_ERROR(errors, "consumers[2].api_keys[0]", "already given to consumer 'a'");
}

TEST(ConfigTest, PluginsRunInPhaseOrderAndAclNeedsAuth) {
  Config c = load(R"(server:
  listen: [ { address: 127.0.0.1:8080 } ]
consumers:
  - { name: a, api_keys: [ { sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 } ] }
upstreams:
  app: { targets: [ { address: 127.0.0.1:9001 } ] }
routes:
  - match: { path: /a }
    to: app
    plugins:
      request_size: { max_body_bytes: 1KiB }
      acl: { allow_consumers: [a] }
      key_auth: {}
      ip_rules: { allow: [127.0.0.1] }
)");
  std::vector<std::string> order;
  for (auto& f : c.routes.at(0).filters) order.emplace_back(f->name());
  EXPECT_EQ(order, (std::vector<std::string>{"ip_rules", "key_auth", "acl", "request_size"}));

  auto errors = errors_of(with_routes(R"(  - match: { path: /a }
    to: app
    plugins:
      acl: { allow_groups: [x] }
)"));
  EXPECT_HAS_ERROR(errors, "routes[0].plugins.acl", "needs key_auth or jwt_auth");
  auto no_keys = errors_of(with_routes(R"(  - match: { path: /a }
    to: app
    plugins:
      key_auth: { header: x-key }
)"));
  EXPECT_HAS_ERROR(no_keys, "routes[0].plugins.key_auth", "no consumer has an API key");
  auto bad_ip = errors_of(with_routes(R"(  - match: { path: /a }
    to: app
    plugins:
      ip_rules: { deny: [10.0.0.0/33] }
)"));
  EXPECT_HAS_ERROR(bad_ip, "routes[0].plugins.ip_rules.deny[0]", "invalid CIDR");
}

TEST(ConfigTest, CorsSettingsAreChecked) {
  auto errors = errors_of(with_routes(R"(  - match: { path: /a }
    to: app
    plugins:
      cors: { origins: ["*"], credentials: true }
  - match: { path: /b }
    to: app
    plugins:
      cors: { origins: ["app.example.com", "https://ok.example.com/path"] }
  - match: { path: /c }
    to: app
    plugins:
      cors: { methods: [GET] }
)"));
  EXPECT_HAS_ERROR(errors, "routes[0].plugins.cors.credentials", "cannot be combined");
  EXPECT_HAS_ERROR(errors, "routes[1].plugins.cors.origins[0]", "scheme://host");
  EXPECT_HAS_ERROR(errors, "routes[1].plugins.cors.origins[1]", "scheme://host");
  EXPECT_HAS_ERROR(errors, "routes[2].plugins.cors.origins", "required");
}

TEST(ConfigTest, RateLimitSettingsAreChecked) {
  Config c = load(with_routes(R"(  - match: { path: /a }
    to: app
    plugins:
      rate_limit: { limits: ["100/s", { rate: "5000/h", burst: 50 }], key: "header:X-Client" }
)"));
  EXPECT_EQ(c.routes.at(0).filters.at(0)->name(), "rate_limit");
  auto errors = errors_of(with_routes(R"(  - match: { path: /a }
    to: app
    plugins:
      rate_limit: { limits: ["100/w", "0/s", "x"], key: everyone, scope: cluster }
  - match: { path: /b }
    to: app
    plugins:
      rate_limit: { limits: [] }
)"));
  EXPECT_HAS_ERROR(errors, "routes[0].plugins.rate_limit.limits[0]", "COUNT/UNIT");
  EXPECT_HAS_ERROR(errors, "routes[0].plugins.rate_limit.limits[1]", "COUNT/UNIT");
  EXPECT_HAS_ERROR(errors, "routes[0].plugins.rate_limit.limits[2]", "COUNT/UNIT");
  EXPECT_HAS_ERROR(errors, "routes[0].plugins.rate_limit.key", "expected consumer, ip, route");
  EXPECT_HAS_ERROR(errors, "routes[0].plugins.rate_limit.scope", "needs the redis section");
  EXPECT_HAS_ERROR(errors, "routes[1].plugins.rate_limit.limits", "expected a list of limits");
  // A Redis Cluster has database 0 only.
  auto cluster_db = errors_of("redis: { url: redis://10.0.0.7:6379/3, cluster: true }\n" +
                              with_routes(R"(  - match: { path: /a }
    to: app
    plugins:
      rate_limit: { limits: ["10/s"], scope: cluster }
)"));
  EXPECT_HAS_ERROR(cluster_db, "routes[0].plugins.rate_limit.scope", "Redis Cluster has only 0");
}

// A jwks_url is read at load by the one URL parser (http/url.h), as the fetcher will read it, so
// a URL it could never fetch fails the load instead.
TEST(ConfigTest, JwksUrlIsReadAtLoad) {
  auto with_provider = [](const std::string& url) {
    return "jwt_providers:\n  idp: { algorithms: [RS256], jwks_url: \"" + url + "\" }\n" + kMinimal;
  };
  EXPECT_TRUE(
      load(with_provider("https://id.example.com/.well-known/jwks.json")).jwt_providers.at("idp"));
  EXPECT_TRUE(load(with_provider("http://[::1]:8080/jwks")).jwt_providers.at("idp"));
  EXPECT_HAS_ERROR(errors_of(with_provider("ftp://id.example.com/jwks")),
                   "jwt_providers.idp.jwks_url", "expected an http:// or https:// URL");
  EXPECT_HAS_ERROR(errors_of(with_provider("https://id.example.com:99999/jwks")),
                   "jwt_providers.idp.jwks_url", "invalid URL: bad port '99999'");
  EXPECT_HAS_ERROR(errors_of(with_provider("https:///jwks")), "jwt_providers.idp.jwks_url",
                   "invalid URL: missing host");
  EXPECT_HAS_ERROR(errors_of(with_provider("https://u:p@id.example.com/jwks")),
                   "jwt_providers.idp.jwks_url", "user info (user:password@) is not supported");
}

TEST(ConfigTest, RetryAndBreakerSettings) {
  Config c = load(R"(server:
  listen: [ { address: 127.0.0.1:8080 } ]
upstreams:
  app:
    targets: [ { address: 127.0.0.1:9001 } ]
    retry: { attempts: 2, backoff: 25ms, max_backoff: 250ms, on: [connect_failure, reset, 502, 503], budget: 20% }
    circuit_breaker: { failure_rate: 50%, min_requests: 20, window: 10s, open_for: 30s, half_open_requests: 3 }
routes:
  - { match: { path: /a }, to: app, timeout: 2s, retry: { attempts: 0, max_replay_body: 1MiB } }
)");
  const auto& r = *c.upstreams[0].retry;
  EXPECT_EQ(r.attempts, 2u);
  EXPECT_TRUE(r.on_connect_failure && r.on_reset && !r.on_timeout);
  EXPECT_EQ(r.on_status, (std::vector<int>{502, 503}));
  EXPECT_DOUBLE_EQ(r.budget, 0.2);
  EXPECT_EQ(r.max_replay_body, 64u * 1024);  // the default
  EXPECT_EQ(c.routes[0].retry->max_replay_body, 1024u * 1024);
  EXPECT_DOUBLE_EQ(c.upstreams[0].breaker->failure_rate, 0.5);
  EXPECT_EQ(c.routes[0].retry->attempts, 0u);
  EXPECT_EQ(c.routes[0].timeout.count(), 2000);
  auto errors = errors_of(R"(server:
  listen: [ { address: 127.0.0.1:8080 } ]
upstreams:
  app:
    targets: [ { address: 127.0.0.1:9001 } ]
    retry: { attempts: 99, on: [teapot, 418], budget: 150%, max_replay_body: 65MiB }
    circuit_breaker: { failure_rate: 0%, min_requests: 0 }
routes:
  - { match: { path: /a }, to: app, timeout: 0s }
)");
  EXPECT_HAS_ERROR(errors, "upstreams.app.retry.attempts", "");
  EXPECT_HAS_ERROR(errors, "upstreams.app.retry.on[0]", "expected connect_failure, reset, timeout");
  EXPECT_HAS_ERROR(errors, "upstreams.app.retry.on[1]", "expected connect_failure, reset, timeout");
  EXPECT_HAS_ERROR(errors, "upstreams.app.retry.budget", "expected a share");
  EXPECT_HAS_ERROR(errors, "upstreams.app.retry.max_replay_body", "at most 64MiB");
  EXPECT_HAS_ERROR(errors, "upstreams.app.circuit_breaker.failure_rate", "expected a share");
  EXPECT_HAS_ERROR(errors, "upstreams.app.circuit_breaker.min_requests", "");
  EXPECT_HAS_ERROR(errors, "routes[0].timeout", "at least 1ms");
}

}  // namespace
}  // namespace gatehouse::config
