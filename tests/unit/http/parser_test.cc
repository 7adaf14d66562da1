#include "http/parser.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <string_view>

namespace gatehouse::http {
namespace {

struct RequestResult {
  ParseStatus status;
  ParseError err;
};

// Parses a whole request head (it must be complete).
RequestResult parse(std::string_view data, RequestHead* head, const ParseLimits& limits = {}) {
  RequestResult r;
  r.status = parse_request_head(data, limits, head, &r.err);
  return r;
}

// Expects the head to be refused with `status`.
void expect_rejected(std::string_view data, int status, const ParseLimits& limits = {}) {
  RequestHead head;
  auto r = parse(data, &head, limits);
  EXPECT_EQ(r.status, ParseStatus::kError) << "accepted: " << data;
  if (r.status == ParseStatus::kError) {
    EXPECT_EQ(r.err.status, status) << r.err.message << " for: " << data;
  }
}

// The head's views point into `data`: a caller keeps it while it reads the head (never a
// temporary, whose end would leave them dangling).
void expect_accepted(std::string_view data, RequestHead* head) {
  auto r = parse(data, head);
  EXPECT_EQ(r.status, ParseStatus::kComplete) << r.err.message << " for: " << data;
}

std::string req_with(std::string_view header_lines) {
  return "GET / HTTP/1.1\r\nHost: example.com\r\n" + std::string(header_lines) + "\r\n";
}

const Header* find_header(const MessageHead& head, std::string_view name) {
  for (const auto& h : head.headers) {
    if (iequals(h.name, name)) return &h;
  }
  return nullptr;
}

// ---- find_head_end ----

TEST(FindHeadEndTest, FindsTheEmptyLine) {
  std::string_view d = "GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
  EXPECT_EQ(find_head_end(d, 0), d.size() - 4);
  EXPECT_EQ(find_head_end("GET / HTTP/1.1\r\nHost: a\r\n", 0), 0u);
  EXPECT_EQ(find_head_end("", 0), 0u);
}

TEST(FindHeadEndTest, AcceptsBareLfSoTheParserCanRejectIt) {
  std::string_view d = "GET / HTTP/1.1\nHost: a\n\nrest";
  EXPECT_EQ(find_head_end(d, 0), d.size() - 4);
}

TEST(FindHeadEndTest, ByteByByte) {
  const std::string full = "GET /x HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n";
  size_t found_at = 0;
  size_t prev = 0;
  for (size_t n = 1; n <= full.size(); ++n) {
    size_t end = find_head_end(std::string_view(full).substr(0, n), prev);
    if (end) {
      found_at = n;
      EXPECT_EQ(end, full.size());
      break;
    }
    prev = n;
  }
  EXPECT_EQ(found_at, full.size()) << "the end was found too early or never";
}

TEST(FindHeadEndTest, ByteByByteWithBareLf) {
  const std::string full = "GET / HTTP/1.1\nHost: a\n\n";
  size_t prev = 0, found = 0;
  for (size_t n = 1; n <= full.size() && !found; ++n) {
    found = find_head_end(std::string_view(full).substr(0, n), prev);
    prev = n;
  }
  EXPECT_EQ(found, full.size());
}

TEST(FindHeadEndTest, PipelinedStopsAtTheFirstHead) {
  std::string first = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
  std::string both = first + "GET /b HTTP/1.1\r\nHost: a\r\n\r\n";
  EXPECT_EQ(find_head_end(both, 0), first.size());
}

// ---- requests ----

TEST(ParseRequestTest, SimpleGet) {
  std::string data =
      "GET /api/items?id=7&x=1 HTTP/1.1\r\nHost: Example.com:8080\r\nUser-Agent: t\r\n"
      "Accept:  */*  \r\n\r\n";
  RequestHead h;
  expect_accepted(data, &h);
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.target, "/api/items?id=7&x=1");
  EXPECT_EQ(h.path, "/api/items");
  EXPECT_EQ(h.query, "id=7&x=1");
  EXPECT_EQ(h.host, "Example.com:8080");
  EXPECT_EQ(h.minor_version, 1);
  EXPECT_EQ(h.framing, Framing::kNone);
  EXPECT_TRUE(h.keep_alive);
  EXPECT_FALSE(h.expect_continue);
  EXPECT_EQ(h.head_bytes, data.size());
  ASSERT_EQ(h.headers.size(), 3u);
  EXPECT_EQ(h.headers[0].id, HeaderId::kHost);
  EXPECT_EQ(h.headers[1].name, "User-Agent");
  EXPECT_EQ(h.headers[2].value, "*/*");  // surrounding whitespace trimmed
  EXPECT_EQ(h.get("user-agent"), "t");
  EXPECT_EQ(h.get("x-missing"), "");
}

TEST(ParseRequestTest, ContentLengthAndChunkedFraming) {
  RequestHead h;
  expect_accepted("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n", &h);
  EXPECT_EQ(h.framing, Framing::kContentLength);
  EXPECT_EQ(h.content_length, 42u);

  expect_accepted("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", &h);
  EXPECT_EQ(h.framing, Framing::kNone);

  expect_accepted("POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", &h);
  EXPECT_EQ(h.framing, Framing::kChunked);
  EXPECT_TRUE(find_header(h, "transfer-encoding")->hop_by_hop);
}

TEST(ParseRequestTest, KeepAliveRules) {
  RequestHead h;
  expect_accepted("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &h);
  EXPECT_TRUE(h.keep_alive);
  expect_accepted("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &h);
  EXPECT_FALSE(h.keep_alive);
  expect_accepted("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n", &h);
  EXPECT_FALSE(h.keep_alive);
  expect_accepted("GET / HTTP/1.0\r\n\r\n", &h);
  EXPECT_EQ(h.minor_version, 0);
  EXPECT_FALSE(h.keep_alive);
  expect_accepted("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &h);
  EXPECT_TRUE(h.keep_alive);
  expect_accepted("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", &h);
  EXPECT_FALSE(h.keep_alive);
}

TEST(ParseRequestTest, UpgradeNeedsBothHeaders) {
  RequestHead h;
  const std::string head1 = req_with("Connection: Upgrade\r\nUpgrade: websocket\r\n");
  expect_accepted(head1, &h);
  EXPECT_TRUE(h.upgrade);
  const std::string head2 = req_with("Upgrade: websocket\r\n");
  expect_accepted(head2, &h);
  EXPECT_FALSE(h.upgrade);
}

TEST(ParseRequestTest, PipelinedRequestsHeadBytesStopsAtFirstHead) {
  std::string first = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
  std::string second = "GET /b HTTP/1.1\r\nHost: a\r\n\r\n";
  std::string both = first + second;
  size_t end = find_head_end(both, 0);
  ASSERT_EQ(end, first.size());
  RequestHead h;
  expect_accepted(std::string_view(both).substr(0, end), &h);
  EXPECT_EQ(h.path, "/a");
  EXPECT_EQ(h.head_bytes, first.size());

  std::string_view rest = std::string_view(both).substr(h.head_bytes);
  expect_accepted(rest.substr(0, find_head_end(rest, 0)), &h);
  EXPECT_EQ(h.path, "/b");
}

TEST(ParseRequestTest, LeadingEmptyLinesAreSkippedAndCounted) {
  std::string data = "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
  RequestHead h;
  expect_accepted(data, &h);
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.head_bytes, data.size());
}

TEST(ParseRequestTest, RejectsContentLengthWithTransferEncoding) {
  expect_rejected(req_with("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), 400);
  expect_rejected(req_with("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"), 400);
}

TEST(ParseRequestTest, RejectsDifferingContentLengths) {
  expect_rejected(req_with("Content-Length: 5\r\nContent-Length: 6\r\n"), 400);
  expect_rejected(req_with("Content-Length: 5, 6\r\n"), 400);
}

TEST(ParseRequestTest, AcceptsIdenticalContentLengths) {
  RequestHead h;
  const std::string head3 = req_with("Content-Length: 5, 5\r\n");
  expect_accepted(head3, &h);
  EXPECT_EQ(h.framing, Framing::kContentLength);
  EXPECT_EQ(h.content_length, 5u);
  const std::string head4 = req_with("Content-Length: 5\r\nContent-Length: 5\r\n");
  expect_accepted(head4, &h);
  EXPECT_EQ(h.content_length, 5u);
}

TEST(ParseRequestTest, RejectsNonDigitContentLength) {
  for (const char* v : {"abc", "+5", "-1", "5a", "0x10", "5 5", "1.0", "", "1234567890123456789"}) {
    expect_rejected(req_with("Content-Length: " + std::string(v) + "\r\n"), 400);
  }
}

TEST(ParseRequestTest, RejectsContentLengthWithoutAnyNumber) {
  expect_rejected(req_with("Content-Length: ,\r\n"), 400);
  expect_rejected(req_with("Content-Length: , ,\r\n"), 400);
}

TEST(ParseRequestTest, RejectsTransferEncodingOtherThanChunked) {
  expect_rejected(req_with("Transfer-Encoding: gzip\r\n"), 501);
  expect_rejected(req_with("Transfer-Encoding: gzip, chunked\r\n"), 501);
  expect_rejected(req_with("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), 501);
  expect_rejected(req_with("Transfer-Encoding: identity\r\n"), 501);
}

TEST(ParseRequestTest, RejectsTransferEncodingInHttp10) {
  expect_rejected("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
}

TEST(ParseRequestTest, RejectsObsFold) {
  expect_rejected(req_with("X-A: one\r\n  two\r\n"), 400);
  expect_rejected(req_with("X-A: one\r\n\ttwo\r\n"), 400);
}

TEST(ParseRequestTest, RejectsBareLfLineEndings) {
  expect_rejected("GET / HTTP/1.1\nHost: a\r\n\r\n", 400);
  expect_rejected("GET / HTTP/1.1\r\nHost: a\nX-A: 1\r\n\r\n", 400);
  expect_rejected("GET / HTTP/1.1\r\nHost: a\r\n\n", 400);
}

TEST(ParseRequestTest, RejectsControlCharactersInValues) {
  expect_rejected(req_with("X-A: a\rb\r\n"), 400);
  expect_rejected(req_with(std::string("X-A: a\0b\r\n", 10)), 400);
  expect_rejected(req_with("X-A: a\x01"
                           "b\r\n"),
                  400);
  expect_rejected(req_with("X-A: a\x7f\r\n"), 400);
  expect_rejected(req_with("X-A: a\x1b[0m\r\n"), 400);
  // HTAB and obs-text are allowed.
  RequestHead h;
  const std::string head5 = req_with("X-A: a\tb \xc3\xa9\r\n");
  expect_accepted(head5, &h);
  EXPECT_EQ(h.get("x-a"), "a\tb \xc3\xa9");
}

TEST(ParseRequestTest, RejectsBadHeaderNames) {
  expect_rejected(req_with("X-A : 1\r\n"), 400);  // space before the colon
  expect_rejected(req_with(": 1\r\n"), 400);
  expect_rejected(req_with("X(A): 1\r\n"), 400);
  expect_rejected(req_with("NoColon\r\n"), 400);
}

TEST(ParseRequestTest, RejectsInvalidMethod) {
  expect_rejected("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  expect_rejected("GE\x01T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  expect_rejected(" / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

TEST(ParseRequestTest, RejectsMalformedRequestLine) {
  expect_rejected("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400);  // space in the target
  expect_rejected("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  expect_rejected("GET /\r\nHost: a\r\n\r\n", 400);
  expect_rejected("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400);
  expect_rejected("GET / http/1.1\r\nHost: a\r\n\r\n", 400);
  expect_rejected("GET / HTTP/11\r\nHost: a\r\n\r\n", 400);
}

TEST(ParseRequestTest, RejectsInvalidTargetCharacters) {
  expect_rejected("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  expect_rejected("GET /a\x80 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  expect_rejected("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  expect_rejected("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  expect_rejected("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  expect_rejected("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400);  // asterisk-form is OPTIONS only
}

TEST(ParseRequestTest, AsteriskFormForOptions) {
  RequestHead h;
  expect_accepted("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &h);
  EXPECT_EQ(h.target, "*");
}

TEST(ParseRequestTest, PercentEncoding) {
  expect_rejected("GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  expect_rejected("GET /a%4 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  expect_rejected("GET /a% HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  expect_rejected("GET /a?q=%g0 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  RequestHead h;
  expect_accepted("GET /a%20b%2F HTTP/1.1\r\nHost: a\r\n\r\n", &h);
  EXPECT_EQ(h.path, "/a%20b%2F");  // not decoded
}

TEST(ParseRequestTest, TargetLengthLimit) {
  ParseLimits limits;
  limits.max_target_bytes = 16;
  std::string ok_target = "/" + std::string(15, 'a');
  RequestHead h;
  EXPECT_EQ(parse("GET " + ok_target + " HTTP/1.1\r\nHost: a\r\n\r\n", &h, limits).status,
            ParseStatus::kComplete);
  expect_rejected("GET " + ok_target + "a HTTP/1.1\r\nHost: a\r\n\r\n", 414, limits);
}

TEST(ParseRequestTest, HeaderCountLimit) {
  ParseLimits limits;
  limits.max_headers = 3;
  RequestHead h;
  EXPECT_EQ(parse(req_with("A: 1\r\nB: 2\r\n"), &h, limits).status, ParseStatus::kComplete);
  expect_rejected(req_with("A: 1\r\nB: 2\r\nC: 3\r\n"), 431, limits);
}

TEST(ParseRequestTest, HostRules) {
  expect_rejected("GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", 400);
  expect_rejected("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
  expect_rejected("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400);
  expect_rejected("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
  expect_rejected("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400);
  RequestHead h;
  expect_accepted("GET / HTTP/1.0\r\n\r\n", &h);  // HTTP/1.0 may omit Host
  EXPECT_EQ(h.host, "");
  expect_accepted("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", &h);
  EXPECT_EQ(h.host, "[::1]:8080");
}

TEST(ParseRequestTest, HostIsClearedBetweenRequests) {
  RequestHead h;
  std::string first = "GET / HTTP/1.1\r\nHost: first.example\r\n\r\n";
  expect_accepted(first, &h);
  EXPECT_EQ(h.host, "first.example");
  expect_accepted("GET / HTTP/1.0\r\n\r\n", &h);
  EXPECT_EQ(h.host, "");
}

TEST(ParseRequestTest, RejectsUnsupportedVersions) {
  expect_rejected("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
  expect_rejected("GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505);
}

TEST(ParseRequestTest, RejectsConnect) {
  expect_rejected("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501);
}

TEST(ParseRequestTest, AbsoluteFormSetsHostAndPath) {
  RequestHead h;
  expect_accepted("GET http://api.example.com:8080/v1/items?x=1 HTTP/1.1\r\nHost: other\r\n\r\n",
                  &h);
  EXPECT_EQ(h.host, "api.example.com:8080");
  EXPECT_EQ(h.path, "/v1/items");
  EXPECT_EQ(h.query, "x=1");

  expect_accepted("GET HTTPS://secure.example.com HTTP/1.1\r\nHost: other\r\n\r\n", &h);
  EXPECT_EQ(h.host, "secure.example.com");
  EXPECT_EQ(h.path, "/");

  expect_rejected("GET http://a.example.com?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  expect_rejected("GET http://user@a.example.com/ HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  expect_rejected("GET ftp://a.example.com/ HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

TEST(ParseRequestTest, HopByHopMarking) {
  RequestHead h;
  const std::string head6 = req_with(
      "Connection: keep-alive, X-Secret\r\nKeep-Alive: timeout=5\r\n"
      "TE: trailers\r\nUpgrade: h2c\r\nProxy-Connection: keep-alive\r\n"
      "X-Secret: s\r\nX-Public: p\r\n");
  expect_accepted(head6, &h);
  for (const char* name :
       {"connection", "keep-alive", "te", "upgrade", "proxy-connection", "x-secret"}) {
    const Header* hd = find_header(h, name);
    ASSERT_NE(hd, nullptr) << name;
    EXPECT_TRUE(hd->hop_by_hop) << name;
  }
  EXPECT_FALSE(find_header(h, "x-public")->hop_by_hop);
  EXPECT_FALSE(find_header(h, "host")->hop_by_hop);
  EXPECT_EQ(find_header(h, "keep-alive")->id, HeaderId::kKeepAlive);
  EXPECT_EQ(find_header(h, "te")->id, HeaderId::kTe);
}

TEST(ParseRequestTest, HeaderClassification) {
  RequestHead h;
  const std::string head7 = req_with(
      "x-forwarded-for: 1.2.3.4\r\nX-FORWARDED-PROTO: https\r\n"
      "X-Forwarded-Host: h\r\nVia: 1.1 x\r\nCookie: a=b\r\nX-Other: 1\r\n");
  expect_accepted(head7, &h);
  EXPECT_EQ(find_header(h, "x-forwarded-for")->id, HeaderId::kXForwardedFor);
  EXPECT_EQ(find_header(h, "x-forwarded-proto")->id, HeaderId::kXForwardedProto);
  EXPECT_EQ(find_header(h, "x-forwarded-host")->id, HeaderId::kXForwardedHost);
  EXPECT_EQ(find_header(h, "via")->id, HeaderId::kVia);
  EXPECT_EQ(find_header(h, "cookie")->id, HeaderId::kCookie);
  EXPECT_EQ(find_header(h, "x-other")->id, HeaderId::kOther);
}

TEST(ParseRequestTest, ExpectContinue) {
  RequestHead h;
  expect_accepted("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n",
                  &h);
  EXPECT_TRUE(h.expect_continue);
  EXPECT_TRUE(find_header(h, "expect")->hop_by_hop);

  expect_accepted("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", &h);
  EXPECT_FALSE(h.expect_continue);  // reset from the previous request

  expect_accepted("POST / HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n", &h);
  EXPECT_FALSE(h.expect_continue);  // HTTP/1.0 clients do not wait for 100
}

TEST(ParseRequestTest, QueryIsClearedBetweenRequests) {
  RequestHead h;
  expect_accepted("GET /a?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", &h);
  EXPECT_EQ(h.query, "x=1");
  expect_accepted("GET /b HTTP/1.1\r\nHost: a\r\n\r\n", &h);
  EXPECT_EQ(h.query, "");
  EXPECT_EQ(h.headers.size(), 1u);
}

TEST(IequalsTest, CaseInsensitiveForLettersOnly) {
  EXPECT_TRUE(iequals("Content-Length", "content-length"));
  EXPECT_FALSE(iequals("content-length", "content-lengt"));
  EXPECT_FALSE(iequals("a-b", "a\rb"));  // '-' | 0x20 == '\r' | 0x20 must not match
  EXPECT_FALSE(iequals("@", "`"));
}

// For a field name (a token) and a lower-case name of letters, digits and '-', field_is() says what
// iequals() says: every tchar at every place of names of every length up to 24 (the word-wise
// compare reads 4 or 8 bytes at a time, overlapping at the end).
TEST(FieldIsTest, AgreesWithIequalsForTokens) {
  const std::string alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-";
  for (size_t n = 1; n <= 24; ++n) {
    std::string lower;
    for (size_t i = 0; i < n; ++i) lower += alphabet[(i * 7 + n) % alphabet.size()];
    std::string upper = lower;
    for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_TRUE(field_is(lower, lower));
    EXPECT_TRUE(field_is(upper, lower)) << upper;
    EXPECT_FALSE(field_is(lower.substr(1), lower));
    for (size_t at = 0; at < n; ++at) {
      for (int c = 0; c < 256; ++c) {
        if (!is_tchar(static_cast<unsigned char>(c))) continue;
        std::string name = upper;
        name[at] = static_cast<char>(c);
        ASSERT_EQ(field_is(name, lower), iequals(name, lower)) << name << " vs " << lower;
      }
    }
  }
}

// lower_ascii() lowers what std::tolower lowers in the C locale (A-Z), and nothing else: every
// byte at every place of strings of every length up to 20 (eight bytes at a time, then one).
TEST(LowerAsciiTest, LowersLettersOnly) {
  for (size_t n = 1; n <= 20; ++n) {
    for (size_t at = 0; at < n; ++at) {
      for (int c = 0; c < 256; ++c) {
        std::string s(n, 'Q');
        s[at] = static_cast<char>(c);
        std::string want = s;
        for (auto& x : want) {
          if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        }
        lower_ascii(s.data(), s.size());
        ASSERT_EQ(s, want) << "byte " << c << " at " << at << " of " << n;
      }
    }
  }
}

TEST(TokenTest, Tchars) {
  EXPECT_TRUE(is_token("X-Custom_Header.1~"));
  EXPECT_FALSE(is_token(""));
  EXPECT_FALSE(is_token("a b"));
  EXPECT_FALSE(is_token("a:b"));
  EXPECT_FALSE(is_tchar('('));
  EXPECT_TRUE(is_tchar('!'));
}

// ---- responses ----

struct ResponseResult {
  ParseStatus status;
  ParseError err;
  ResponseHead head;
};

ResponseResult parse_resp(std::string_view data, std::string_view method = "GET") {
  ResponseResult r;
  r.status = parse_response_head(data, ParseLimits{}, method, &r.head, &r.err);
  return r;
}

TEST(ParseResponseTest, StatusAndReason) {
  auto r = parse_resp("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::kComplete) << r.err.message;
  EXPECT_EQ(r.head.status, 404);
  EXPECT_EQ(r.head.reason, "Not Found");
  EXPECT_EQ(r.head.minor_version, 1);

  r = parse_resp("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::kComplete) << r.err.message;
  EXPECT_EQ(r.head.status, 200);
  EXPECT_EQ(r.head.reason, "");

  r = parse_resp("HTTP/1.0 503\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::kComplete) << r.err.message;
  EXPECT_EQ(r.head.status, 503);
  EXPECT_EQ(r.head.minor_version, 0);
}

TEST(ParseResponseTest, Framing) {
  auto r = parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.head.framing, Framing::kContentLength);
  EXPECT_EQ(r.head.content_length, 12u);
  EXPECT_TRUE(r.head.keep_alive);

  r = parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.head.framing, Framing::kChunked);

  r = parse_resp("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.head.framing, Framing::kUntilClose);
  EXPECT_FALSE(r.head.keep_alive);

  r = parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.head.framing, Framing::kNone);
  EXPECT_TRUE(r.head.keep_alive);
}

TEST(ParseResponseTest, BodilessResponses) {
  auto r = parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", "HEAD");
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.head.framing, Framing::kNone);
  EXPECT_TRUE(r.head.keep_alive);

  for (const char* line : {"HTTP/1.1 204 No Content\r\n\r\n", "HTTP/1.1 304 Not Modified\r\n\r\n",
                           "HTTP/1.1 100 Continue\r\n\r\n",
                           "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"}) {
    r = parse_resp(line);
    ASSERT_EQ(r.status, ParseStatus::kComplete) << line;
    EXPECT_EQ(r.head.framing, Framing::kNone) << line;
    EXPECT_TRUE(r.head.keep_alive) << line;
  }
}

TEST(ParseResponseTest, KeepAlive) {
  auto r = parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_FALSE(r.head.keep_alive);
  r = parse_resp("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_FALSE(r.head.keep_alive);
  r = parse_resp("HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_TRUE(r.head.keep_alive);
}

TEST(ParseResponseTest, RejectsContentLengthWithTransferEncoding) {
  auto r = parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.err.status, 502);
}

TEST(ParseResponseTest, RejectsBadFraming) {
  for (const char* resp :
       {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: 1\r\n b\r\n\r\n", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"}) {
    auto r = parse_resp(resp);
    EXPECT_EQ(r.status, ParseStatus::kError) << resp;
    EXPECT_EQ(r.err.status, 502) << resp;
  }
}

TEST(ParseResponseTest, RejectsGarbageStatusLine) {
  for (const char* resp :
       {"garbage\r\n\r\n", "HTTP/1.1 2OO OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 200OK\r\n\r\n", "HTTP/1.1  200 OK\r\n\r\n", "HTTP/2.0 200 OK\r\n\r\n",
        "HTTP/1.1 099 Low\r\n\r\n", "http/1.1 200 OK\r\n\r\n", "HTTP/1.1 200 O\x01K\r\n\r\n",
        "ICY 200 OK\r\n\r\n"}) {
    auto r = parse_resp(resp);
    EXPECT_EQ(r.status, ParseStatus::kError) << resp;
    EXPECT_EQ(r.err.status, 502) << resp;
  }
}

}  // namespace
}  // namespace gatehouse::http
