#include "http/proxy_headers.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "http/error_response.h"
#include "http/parser.h"

namespace gatehouse::http {
namespace {

// A head built by the proxy, split back into its start line and fields.
struct Built {
  std::string start_line;
  std::vector<std::pair<std::string, std::string>> fields;
  std::string body;  // whatever follows the empty line
  // An upstream request's: the names of its unique fields, and the body's framing.
  std::vector<std::string> unique;
  Framing framing = Framing::kNone;
  uint64_t content_length = 0;

  // Values of every field with this name (case-insensitive), in order.
  std::vector<std::string> all(std::string_view name) const {
    std::vector<std::string> out;
    for (const auto& [n, v] : fields) {
      if (iequals(n, name)) out.push_back(v);
    }
    return out;
  }
  bool has(std::string_view name) const { return !all(name).empty(); }
  // The single value of a field; fails the test when it is absent or repeated.
  std::string one(std::string_view name) const {
    auto v = all(name);
    EXPECT_EQ(v.size(), 1u) << "field " << name;
    return v.empty() ? "<absent>" : v[0];
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& f : fields) out.push_back(f.first);
    return out;
  }
};

Built split(const std::string& text) {
  Built b;
  auto end = text.find("\r\n\r\n");
  EXPECT_NE(end, std::string::npos) << "no end of head in: " << text;
  if (end == std::string::npos) return b;
  b.body = text.substr(end + 4);
  std::string_view head(text.data(), end + 2);
  size_t pos = head.find("\r\n");
  b.start_line = std::string(head.substr(0, pos));
  pos += 2;
  while (pos < head.size()) {
    auto eol = head.find("\r\n", pos);
    std::string_view line = head.substr(pos, eol - pos);
    auto colon = line.find(": ");
    EXPECT_NE(colon, std::string_view::npos) << "bad field line: " << line;
    b.fields.emplace_back(std::string(line.substr(0, colon)), std::string(line.substr(colon + 2)));
    pos = eol + 2;
  }
  return b;
}

// A parsed request head that owns its bytes.
struct Request {
  std::string data;
  RequestHead head;
};
std::unique_ptr<Request> parse_req(std::string data) {
  auto r = std::make_unique<Request>();
  r->data = std::move(data);
  ParseError err;
  EXPECT_EQ(parse_request_head(r->data, ParseLimits{}, &r->head, &err), ParseStatus::kComplete)
      << err.message;
  return r;
}

struct Response {
  std::string data;
  ResponseHead head;
};
std::unique_ptr<Response> parse_resp(std::string data) {
  auto r = std::make_unique<Response>();
  r->data = std::move(data);
  ParseError err;
  EXPECT_EQ(parse_response_head(r->data, ParseLimits{}, "GET", &r->head, &err),
            ParseStatus::kComplete)
      << err.message;
  return r;
}

ForwardInfo default_info() {
  ForwardInfo info;
  info.client_ip = "203.0.113.7";
  info.proto = "http";
  info.request_id_header = "x-request-id";
  info.request_id = "rid-1";
  info.path_and_query = "/up/path?x=1";
  info.host = "backend.internal:9001";
  return info;
}

Built upstream(const RequestHead& req, const ForwardInfo& info) {
  OutgoingRequest out;
  build_upstream_request(req, info, &out);
  std::string text(out.text());
  EXPECT_EQ(text.substr(text.size() - 4), "\r\n\r\n");
  Built b = split(text);
  // What an HTTP/2 stream takes instead of the text says the same.
  EXPECT_EQ(std::string(out.method()) + " " + std::string(out.target()) + " HTTP/1.1",
            b.start_line);
  EXPECT_EQ(out.fields(), b.fields.size());
  for (size_t i = 0; i < out.fields() && i < b.fields.size(); ++i) {
    EXPECT_EQ(out.field(i).name, b.fields[i].first);
    EXPECT_EQ(out.field(i).value, b.fields[i].second);
    if (out.field(i).unique) b.unique.emplace_back(out.field(i).name);
  }
  b.framing = out.framing();
  b.content_length = out.content_length();
  return b;
}

TEST(UpstreamRequestTest, RequestLineUsesRewrittenTargetAndHttp11) {
  auto r = parse_req("GET /orig?y=2 HTTP/1.0\r\nHost: example.com\r\n\r\n");
  auto b = upstream(r->head, default_info());
  EXPECT_EQ(b.start_line, "GET /up/path?x=1 HTTP/1.1");
  EXPECT_EQ(b.one("via"), "1.0 gatehouse");
  EXPECT_TRUE(b.body.empty());
}

TEST(UpstreamRequestTest, DropsHopByHopHeaders) {
  auto r = parse_req(
      "GET / HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, X-Session-Secret\r\n"
      "Keep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: websocket\r\n"
      "Proxy-Connection: keep-alive\r\nX-Session-Secret: s3cr3t\r\nX-Kept: yes\r\n"
      "Expect: 100-continue\r\n\r\n");
  auto b = upstream(r->head, default_info());
  for (const char* name : {"connection", "keep-alive", "te", "upgrade", "proxy-connection",
                           "x-session-secret", "expect"}) {
    EXPECT_FALSE(b.has(name)) << name;
  }
  EXPECT_EQ(b.one("x-kept"), "yes");
}

TEST(UpstreamRequestTest, KeepsOrderCaseAndRepeatedHeaders) {
  auto r = parse_req(
      "GET / HTTP/1.1\r\nX-A: 1\r\nHost: example.com\r\naccept: text/html\r\nX-A: 2\r\n"
      "Cookie: a=1\r\nCookie: b=2\r\n\r\n");
  auto b = upstream(r->head, default_info());
  auto names = b.names();
  ASSERT_GE(names.size(), 6u);
  EXPECT_EQ(std::vector<std::string>(names.begin(), names.begin() + 6),
            (std::vector<std::string>{"X-A", "Host", "accept", "X-A", "Cookie", "Cookie"}));
  EXPECT_EQ(b.all("x-a"), (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(b.all("cookie"), (std::vector<std::string>{"a=1", "b=2"}));
}

TEST(UpstreamRequestTest, RewritesHost) {
  auto r = parse_req("GET / HTTP/1.1\r\nhost: example.com\r\n\r\n");
  auto b = upstream(r->head, default_info());
  EXPECT_EQ(b.one("host"), "backend.internal:9001");
  EXPECT_EQ(b.fields[0].first, "host");  // in place, with the client's spelling
  EXPECT_EQ(b.one("x-forwarded-host"), "example.com");
}

TEST(UpstreamRequestTest, AddsHostWhenTheClientSentNone) {
  auto r = parse_req("GET / HTTP/1.0\r\n\r\n");
  auto b = upstream(r->head, default_info());
  EXPECT_EQ(b.one("host"), "backend.internal:9001");
  EXPECT_FALSE(b.has("x-forwarded-host"));
}

TEST(UpstreamRequestTest, ReplacesXForwardedForFromUntrustedPeer) {
  auto r = parse_req(
      "GET / HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 6.6.6.6\r\n"
      "X-Forwarded-For: 7.7.7.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: "
      "evil.example\r\n\r\n");
  auto info = default_info();
  info.peer_trusted = false;
  auto b = upstream(r->head, info);
  EXPECT_EQ(b.one("x-forwarded-for"), "203.0.113.7");
  EXPECT_EQ(b.one("x-forwarded-proto"), "http");
  EXPECT_EQ(b.one("x-forwarded-host"), "example.com");
}

TEST(UpstreamRequestTest, AppendsToXForwardedForFromTrustedPeer) {
  auto r = parse_req(
      "GET / HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 198.51.100.1, 10.0.0.2\r\n"
      "X-Forwarded-For: 10.0.0.3\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: "
      "public.example\r\n\r\n");
  auto info = default_info();
  info.peer_trusted = true;
  auto b = upstream(r->head, info);
  EXPECT_EQ(b.one("x-forwarded-for"), "198.51.100.1, 10.0.0.2, 10.0.0.3, 203.0.113.7");
  EXPECT_EQ(b.one("x-forwarded-proto"), "https");  // the trusted proxy saw the client's scheme
  EXPECT_EQ(b.one("x-forwarded-host"), "public.example");
}

TEST(UpstreamRequestTest, SetsXForwardedProtoAndHost) {
  auto r = parse_req("GET / HTTP/1.1\r\nHost: shop.example.com:8443\r\n\r\n");
  auto info = default_info();
  info.proto = "https";
  auto b = upstream(r->head, info);
  EXPECT_EQ(b.one("x-forwarded-proto"), "https");
  EXPECT_EQ(b.one("x-forwarded-host"), "shop.example.com:8443");
  EXPECT_EQ(b.one("x-forwarded-for"), "203.0.113.7");
}

TEST(UpstreamRequestTest, AddsVia) {
  auto r = parse_req("GET / HTTP/1.1\r\nHost: example.com\r\nVia: 1.1 edge\r\n\r\n");
  auto b = upstream(r->head, default_info());
  EXPECT_EQ(b.all("via"), (std::vector<std::string>{"1.1 edge", "1.1 gatehouse"}));
}

TEST(UpstreamRequestTest, SetsRequestIdAndDropsTheClientsOne) {
  auto r = parse_req("GET / HTTP/1.1\r\nHost: example.com\r\nX-Request-ID: forged\r\n\r\n");
  auto info = default_info();
  info.request_id = "generated-42";
  auto b = upstream(r->head, info);
  EXPECT_EQ(b.one("x-request-id"), "generated-42");
  EXPECT_EQ(b.unique, std::vector<std::string>{"x-request-id"}) << "only the request id";

  info.request_id_header = "x-trace";
  auto r2 = parse_req("GET / HTTP/1.1\r\nHost: example.com\r\nX-Trace: forged\r\n\r\n");
  auto b2 = upstream(r2->head, info);
  EXPECT_EQ(b2.one("x-trace"), "generated-42");
}

TEST(UpstreamRequestTest, BodyFraming) {
  auto chunked =
      parse_req("POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n");
  auto b = upstream(chunked->head, default_info());
  EXPECT_EQ(b.one("transfer-encoding"), "chunked");
  EXPECT_FALSE(b.has("content-length"));
  EXPECT_EQ(b.framing, Framing::kChunked);

  auto sized = parse_req("POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 11\r\n\r\n");
  auto s = upstream(sized->head, default_info());
  EXPECT_EQ(s.one("content-length"), "11");
  EXPECT_FALSE(s.has("transfer-encoding"));
  EXPECT_EQ(s.framing, Framing::kContentLength);
  EXPECT_EQ(s.content_length, 11u);

  auto info = default_info();
  info.body_rechunked = true;  // a filter rewrites the body: its length is not known
  auto rechunked = upstream(sized->head, info);
  EXPECT_FALSE(rechunked.has("content-length"));
  EXPECT_EQ(rechunked.one("transfer-encoding"), "chunked");
  EXPECT_EQ(rechunked.framing, Framing::kChunked);

  auto none =
      upstream(parse_req("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")->head, default_info());
  EXPECT_FALSE(none.has("transfer-encoding"));
  EXPECT_EQ(none.framing, Framing::kNone);
  // A request without a body that a filter makes one for (a transcoded call's message).
  auto made = upstream(parse_req("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")->head, info);
  EXPECT_EQ(made.one("transfer-encoding"), "chunked");
  EXPECT_EQ(made.framing, Framing::kChunked);
}

TEST(UpstreamRequestTest, KeepsContentLengthNamedInConnection) {
  auto r = parse_req(
      "POST / HTTP/1.1\r\nHost: example.com\r\nConnection: Content-Length\r\n"
      "Content-Length: 5\r\n\r\n");
  ASSERT_EQ(r->head.framing, Framing::kContentLength);
  auto b = upstream(r->head, default_info());
  EXPECT_EQ(b.one("content-length"), "5");
}

TEST(UpstreamRequestTest, FilterAddsAndRemovesHeaders) {
  auto r =
      parse_req("GET / HTTP/1.1\r\nHost: example.com\r\nX-Api-Key: secret\r\nX-Keep: 1\r\n\r\n");
  HeaderList add = {{"X-Consumer", "acme"}, {"X-Scope", "read"}};
  std::vector<std::string> remove = {"x-api-key"};
  auto info = default_info();
  info.add = &add;
  info.remove = &remove;
  auto b = upstream(r->head, info);
  EXPECT_FALSE(b.has("x-api-key"));
  EXPECT_EQ(b.one("x-keep"), "1");
  EXPECT_EQ(b.one("x-consumer"), "acme");
  EXPECT_EQ(b.one("x-scope"), "read");
}

// ---- client responses ----

ResponseInfo default_rinfo() {
  ResponseInfo info;
  info.request_id_header = "x-request-id";
  info.request_id = "rid-9";
  return info;
}

Built client(const ResponseHead& resp, const ResponseInfo& info) {
  std::string out;
  build_client_response(resp, info, &out);
  return split(out);
}

TEST(InterimResponseTest, KeepsTheHintsDropsHopByHopAndFramingAddsVia) {
  auto r = parse_resp(
      "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nLink: </b.js>; rel=preload\r\n"
      "Connection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(r);
  std::string out;
  build_interim_response(r->head, &out);
  ASSERT_TRUE(out.ends_with("\r\n\r\n"));
  auto b = split(out);
  EXPECT_EQ(b.start_line, "HTTP/1.1 103 Early Hints");
  EXPECT_EQ(b.all("link"),
            (std::vector<std::string>{"</a.css>; rel=preload", "</b.js>; rel=preload"}));
  for (const char* name : {"connection", "x-hop", "keep-alive", "content-length"})
    EXPECT_FALSE(b.has(name)) << name;
  EXPECT_EQ(b.one("via"), "1.1 gatehouse");
}

TEST(InterimResponseTest, AMissingReasonGetsTheStandardOne) {
  auto r = parse_resp("HTTP/1.1 103\r\nLink: </a.css>\r\n\r\n");
  ASSERT_TRUE(r);
  std::string out;
  build_interim_response(r->head, &out);
  EXPECT_EQ(split(out).start_line, "HTTP/1.1 103 Early Hints");
}

TEST(ClientResponseTest, StatusLine) {
  auto r = parse_resp("HTTP/1.1 201 Made It\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(client(r->head, default_rinfo()).start_line, "HTTP/1.1 201 Made It");
  auto bare = parse_resp("HTTP/1.0 404\r\nContent-Length: 0\r\n\r\n");
  auto b = client(bare->head, default_rinfo());
  EXPECT_EQ(b.start_line, "HTTP/1.1 404 Not Found");
  EXPECT_EQ(b.one("via"), "1.0 gatehouse");
}

TEST(ClientResponseTest, DropsHopByHopKeepsTheRest) {
  auto r = parse_resp(
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive, X-Internal\r\n"
      "Keep-Alive: timeout=5\r\nX-Internal: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
      "Transfer-Encoding: chunked\r\nUpgrade: h2c\r\n\r\n");
  auto b = client(r->head, default_rinfo());
  for (const char* name :
       {"connection", "keep-alive", "x-internal", "transfer-encoding", "upgrade"}) {
    EXPECT_FALSE(b.has(name)) << name;
  }
  EXPECT_EQ(b.one("content-type"), "text/plain");
  EXPECT_EQ(b.all("set-cookie"), (std::vector<std::string>{"a=1", "b=2"}));
  EXPECT_EQ(b.one("via"), "1.1 gatehouse");
  EXPECT_EQ(b.one("x-request-id"), "rid-9");
}

TEST(ClientResponseTest, ReplacesUpstreamRequestId) {
  auto r = parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Request-Id: upstream-own\r\n\r\n");
  EXPECT_EQ(client(r->head, default_rinfo()).one("x-request-id"), "rid-9");
}

TEST(ClientResponseTest, ConnectionAndChunkedOnRequest) {
  auto r = parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  auto info = default_rinfo();
  auto plain = client(r->head, info);
  EXPECT_FALSE(plain.has("connection"));
  EXPECT_FALSE(plain.has("transfer-encoding"));

  info.close = true;
  info.chunked = true;
  auto closing = client(r->head, info);
  EXPECT_EQ(closing.one("connection"), "close");
  EXPECT_EQ(closing.one("transfer-encoding"), "chunked");

  info.close = false;
  info.chunked = false;
  info.client_http10 = true;
  EXPECT_EQ(client(r->head, info).one("connection"), "keep-alive");
  info.close = true;
  EXPECT_EQ(client(r->head, info).one("connection"), "close");
}

TEST(ClientResponseTest, AddsFilterHeaders) {
  auto r = parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
  HeaderList add = {{"Access-Control-Allow-Origin", "*"}};
  auto info = default_rinfo();
  info.add = &add;
  auto b = client(r->head, info);
  EXPECT_EQ(b.one("access-control-allow-origin"), "*");
  EXPECT_EQ(b.one("content-length"), "2");
}

TEST(ClientResponseTest, KeepsContentLengthNamedInConnection) {
  auto r = parse_resp("HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\n");
  ASSERT_EQ(r->head.framing, Framing::kContentLength);
  EXPECT_EQ(client(r->head, default_rinfo()).one("content-length"), "5");
}

TEST(ReasonPhraseTest, KnownAndUnknown) {
  EXPECT_EQ(reason_phrase(200), "OK");
  EXPECT_EQ(reason_phrase(405), "Method Not Allowed");
  EXPECT_EQ(reason_phrase(413), "Content Too Large");
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reason_phrase(504), "Gateway Timeout");
  EXPECT_EQ(reason_phrase(299), "Unknown");
}

// ---- the gateway's own errors ----

TEST(ErrorResponseTest, JsonBodyWithMatchingContentLength) {
  ErrorResponse e;
  e.status = 504;
  e.code = "upstream_timeout";
  e.message = "products did not answer within 2s";
  std::string out;
  build_error_response(e, "x-request-id", "rid-7", "", false, false, &out);
  auto b = split(out);
  EXPECT_EQ(b.start_line, "HTTP/1.1 504 Gateway Timeout");
  EXPECT_EQ(b.one("content-type"), "application/json");
  EXPECT_EQ(b.one("x-request-id"), "rid-7");
  EXPECT_FALSE(b.has("connection"));
  EXPECT_EQ(b.body,
            "{\"error\":\"upstream_timeout\",\"message\":\"products did not answer within 2s\","
            "\"request_id\":\"rid-7\"}\n");
  EXPECT_EQ(b.one("content-length"), std::to_string(b.body.size()));
}

TEST(ErrorResponseTest, ExtraHeadersCloseAndHeadOnly) {
  ErrorResponse e;
  e.status = 405;
  e.code = "method_not_allowed";
  e.message = "use GET";
  e.headers = {{"Allow", "GET, HEAD"}};
  std::string full;
  build_error_response(e, "x-request-id", "r", "", true, false, &full);
  auto b = split(full);
  EXPECT_EQ(b.one("allow"), "GET, HEAD");
  EXPECT_EQ(b.one("connection"), "close");
  ASSERT_FALSE(b.body.empty());

  std::string head;
  build_error_response(e, "x-request-id", "r", "", true, true, &head);
  auto h = split(head);
  EXPECT_TRUE(h.body.empty());
  // A HEAD answer announces the length the GET body would have.
  EXPECT_EQ(h.one("content-length"), std::to_string(b.body.size()));
}

// A filter may answer with any response: its own status, headers, body and content type.
TEST(ErrorResponseTest, AnAnswerWithItsOwnBody) {
  ErrorResponse e;
  e.status = 200;
  e.headers = {{"Age", "12"}};
  e.body = "<p>cached</p>";
  e.content_type = "text/html";
  std::string out;
  build_error_response(e, "x-request-id", "rid-9", "", false, false, &out);
  auto b = split(out);
  EXPECT_EQ(b.start_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(b.one("content-type"), "text/html");
  EXPECT_EQ(b.one("content-length"), "13");
  EXPECT_EQ(b.one("age"), "12");
  EXPECT_EQ(b.one("x-request-id"), "rid-9");
  EXPECT_EQ(b.body, "<p>cached</p>");
}

// A stored response: its own Content-Type among its fields, its body shared and written by the
// codec after the head.
TEST(ErrorResponseTest, AnAnswerWithASharedBodyAndItsOwnFields) {
  ErrorResponse e;
  e.status = 200;
  e.headers = {{"Content-Type", "application/json"}, {"ETag", "\"v1\""}};
  auto stored = std::make_shared<const std::string>("{\"id\":1}");
  e.shared_body = stored;
  e.shared_bytes = *stored;
  std::string out;
  build_error_response(e, "x-request-id", "rid-3", "", false, false, &out);
  auto b = split(out);
  EXPECT_EQ(b.one("content-type"), "application/json") << "once: the answer's own";
  EXPECT_EQ(b.one("content-length"), "8");
  EXPECT_EQ(b.one("etag"), "\"v1\"");
  EXPECT_EQ(b.body, "") << "the head alone: the codec writes the shared body after it";
  e.clear();
  EXPECT_EQ(e.shared_body, nullptr);
}

TEST(ErrorResponseTest, EscapesTheMessage) {
  ErrorResponse e;
  e.status = 400;
  e.code = "bad_request";
  e.message = "bad \"x\"\n";
  std::string out;
  build_error_response(e, "x-request-id", "id\\1", "", false, false, &out);
  auto b = split(out);
  EXPECT_NE(b.body.find("\"message\":\"bad \\\"x\\\"\\n\""), std::string::npos) << b.body;
  EXPECT_NE(b.body.find("\"request_id\":\"id\\\\1\""), std::string::npos) << b.body;
  EXPECT_EQ(b.one("content-length"), std::to_string(b.body.size()));
}

TEST(JsonEscapeTest, EscapesQuotesControlsAndNonAscii) {
  std::string out = "prefix:";
  append_json_escaped(&out, "a\"b\\c");
  EXPECT_EQ(out, "prefix:a\\\"b\\\\c");

  out.clear();
  append_json_escaped(&out, "\n\r\t");
  EXPECT_EQ(out, "\\n\\r\\t");

  out.clear();
  append_json_escaped(&out, std::string("\x01\x1f\x7f", 3) + std::string(1, '\0'));
  EXPECT_EQ(out, "\\u0001\\u001f\\u007f\\u0000");

  out.clear();
  append_json_escaped(&out, "caf\xc3\xa9 \xff");
  EXPECT_EQ(out, "caf\\u00c3\\u00a9 \\u00ff");

  out.clear();
  append_json_escaped(&out, "plain text / ok ~");
  EXPECT_EQ(out, "plain text / ok ~");
}

TEST(ProxyHeadersTest, ClientCannotSetConsumerIdentity) {
  auto r = parse_req(
      "GET / HTTP/1.1\r\nHost: a\r\nX-Consumer-Name: admin\r\n"
      "x-consumer-groups: admins\r\nX-Consumer-Other: kept\r\n\r\n");
  Built b = upstream(r->head, default_info());
  EXPECT_FALSE(b.has("X-Consumer-Name"));
  EXPECT_FALSE(b.has("X-Consumer-Groups"));
  EXPECT_EQ(b.one("X-Consumer-Other"), "kept");
  HeaderList add{{"X-Consumer-Name", "mobile-app"}};
  ForwardInfo info = default_info();
  info.add = &add;
  EXPECT_EQ(upstream(r->head, info).one("X-Consumer-Name"), "mobile-app");
}

TEST(ProxyHeadersTest, RealClientIpWalksTrustedHops) {
  std::vector<config::Cidr> trusted{*config::parse_cidr("10.0.0.0/8"), *config::parse_cidr("::1")};
  auto r = parse_req(
      "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 198.51.100.9, 203.0.113.5\r\n"
      "X-Forwarded-For: 10.1.1.1 , 10.2.2.2\r\n\r\n");
  // An untrusted peer: its X-Forwarded-For is not believed at all.
  EXPECT_EQ(real_client_ip(r->head, "192.0.2.1", false, trusted), "192.0.2.1");
  // A trusted peer: skip the trusted hops from the right; the first untrusted one is the client.
  EXPECT_EQ(real_client_ip(r->head, "10.9.9.9", true, trusted), "203.0.113.5");
  auto all_trusted =
      parse_req("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.3.3.3,10.4.4.4\r\n\r\n");
  EXPECT_EQ(real_client_ip(all_trusted->head, "::1", true, trusted), "10.3.3.3");
  auto none = parse_req("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(real_client_ip(none->head, "10.9.9.9", true, trusted), "10.9.9.9");
  auto junk = parse_req("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4, junk\r\n\r\n");
  EXPECT_EQ(real_client_ip(junk->head, "10.9.9.9", true, trusted), "junk")
      << "an unparsable hop is the client (and then matches no allow rule)";
}

TEST(ProxyHeadersTest, QueryWithoutDroppedParameters) {
  auto q = [](std::string_view query) {
    std::string out;
    append_query_without(query, {"api_key", "k"}, &out);
    return out;
  };
  EXPECT_EQ(q("a=1&api_key=s&b=2"), "a=1&b=2");
  EXPECT_EQ(q("api_key=s"), "");
  EXPECT_EQ(q("api_key=s&api_key=t&k&c"), "c");
  EXPECT_EQ(q("api_keyx=1&x=api_key"), "api_keyx=1&x=api_key");
}

TEST(JsonString, Utf8PassesAndWhatIsNotUtf8IsReplaced) {
  auto quoted = [](std::string_view s) {
    std::string out;
    append_json_string(&out, s);
    return out;
  };
  EXPECT_EQ(quoted("caf\xc3\xa9 \xc2\xab\xe2\x82\xac\xf0\x9f\x93\x9a\xc2\xbb"),
            "\"caf\xc3\xa9 \xc2\xab\xe2\x82\xac\xf0\x9f\x93\x9a\xc2\xbb\"");
  EXPECT_EQ(quoted("a\"b\\c\n\x01"), R"("a\"b\\c\u000a\u0001")");
  const std::string replacement = "\xef\xbf\xbd";
  EXPECT_EQ(quoted("\xff"), "\"" + replacement + "\"");
  EXPECT_EQ(quoted("\xc3"), "\"" + replacement + "\"");                    // cut short
  EXPECT_EQ(quoted("\xc0\xaf"), "\"" + replacement + replacement + "\"");  // overlong '/'
  EXPECT_EQ(quoted("\xed\xa0\x80"),
            "\"" + replacement + replacement + replacement + "\"");  // surrogate
}

}  // namespace
}  // namespace gatehouse::http
