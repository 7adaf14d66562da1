#include "http/parser.h"

#include <array>
#include <cstring>

namespace gatehouse::http {
namespace {

struct Tables {
  std::array<bool, 256> tchar{};
  std::array<bool, 256> value{};   // field-vchar / SP / HTAB / obs-text (RFC 9110 5.5)
  std::array<bool, 256> target{};  // visible ASCII allowed in a request-target
  std::array<bool, 256> host{};    // reg-name / IP-literal / port characters
  std::array<signed char, 256> hex{};
  constexpr Tables() {
    for (int c = 0; c < 256; ++c) hex[c] = -1;
    for (int c = '0'; c <= '9'; ++c) hex[c] = static_cast<signed char>(c - '0');
    for (int c = 'a'; c <= 'f'; ++c) hex[c] = static_cast<signed char>(c - 'a' + 10);
    for (int c = 'A'; c <= 'F'; ++c) hex[c] = static_cast<signed char>(c - 'A' + 10);
    for (int c = 0; c < 256; ++c) {
      bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      tchar[c] = alnum;
      value[c] = (c >= 0x21 && c <= 0x7e) || c == ' ' || c == '\t' || c >= 0x80;
      target[c] = c >= 0x21 && c <= 0x7e && c != '#';
      host[c] = alnum;
    }
    for (char c : std::string_view("!#$%&'*+-.^_`|~")) tchar[static_cast<unsigned char>(c)] = true;
    for (char c : std::string_view("-._~!$&'()*+,;=:[]%"))
      host[static_cast<unsigned char>(c)] = true;
  }
};
constexpr Tables kT;

ParseError fail(int status, std::string_view code, std::string_view message) {
  return ParseError{status, code, message};
}

}  // namespace

// By length first, so most names cost one comparison.
HeaderId classify_field(std::string_view n, bool* hop) {
  *hop = false;
  auto is = [&](std::string_view k) { return iequals(n, k); };
  switch (n.size()) {
    case 2:
      if (is("te")) return *hop = true, HeaderId::kTe;
      if (is("b3")) return HeaderId::kB3;
      break;
    case 3:
      if (is("via")) return HeaderId::kVia;
      break;
    case 4:
      if (is("host")) return HeaderId::kHost;
      break;
    case 6:
      if (is("expect")) return HeaderId::kExpect;
      if (is("cookie")) return HeaderId::kCookie;
      break;
    case 7:
      if (is("upgrade")) return *hop = true, HeaderId::kUpgrade;
      break;
    case 10:
      if (is("connection")) return *hop = true, HeaderId::kConnection;
      if (is("keep-alive")) return *hop = true, HeaderId::kKeepAlive;
      if (is("tracestate")) return HeaderId::kTraceContext;
      if (is("x-b3-flags")) return HeaderId::kB3;
      break;
    case 11:
      if (is("traceparent")) return HeaderId::kTraceContext;
      if (is("x-b3-spanid")) return HeaderId::kB3;
      break;
    case 12:
      if (is("x-b3-traceid") || is("x-b3-sampled")) return HeaderId::kB3;
      break;
    case 14:
      if (is("content-length")) return HeaderId::kContentLength;
      break;
    case 15:
      if (is("x-forwarded-for")) return HeaderId::kXForwardedFor;
      if (is("x-consumer-name")) return HeaderId::kConsumerIdentity;
      break;
    case 16:
      if (is("x-forwarded-host")) return HeaderId::kXForwardedHost;
      if (is("proxy-connection")) return *hop = true, HeaderId::kProxyConnection;
      break;
    case 17:
      if (is("transfer-encoding")) return *hop = true, HeaderId::kTransferEncoding;
      if (is("x-forwarded-proto")) return HeaderId::kXForwardedProto;
      if (is("x-consumer-groups")) return HeaderId::kConsumerIdentity;
      if (is("x-b3-parentspanid")) return HeaderId::kB3;
      break;
  }
  return HeaderId::kOther;
}

namespace {

// Calls f(token) for each element of a comma-separated list, skipping empty elements.
template <class F>
void for_each_element(std::string_view list, F f) {
  while (!list.empty()) {
    auto comma = list.find(',');
    auto item = trim_ows(list.substr(0, comma));
    if (!item.empty()) f(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

// Splits the head into lines; every line must end in CRLF (a bare LF or CR is an error).
class LineReader {
 public:
  explicit LineReader(std::string_view d) : d_(d) {}
  // Returns false at the end of data. *bad is set when the line break is a bare LF.
  bool next(std::string_view* line, bool* bad) {
    if (pos_ >= d_.size()) return false;
    auto nl = d_.find('\n', pos_);
    if (nl == std::string_view::npos) return false;
    *bad = nl == pos_ || d_[nl - 1] != '\r';
    *line = d_.substr(pos_, *bad ? nl - pos_ : nl - 1 - pos_);
    pos_ = nl + 1;
    return true;
  }
  size_t pos() const { return pos_; }

 private:
  std::string_view d_;
  size_t pos_ = 0;
};

bool parse_version(std::string_view v, int* minor, ParseError* err, bool request) {
  if (v.size() == 8 && v.substr(0, 5) == "HTTP/" && v[6] == '.' && v[5] >= '0' && v[5] <= '9' &&
      v[7] >= '0' && v[7] <= '9') {
    if (v[5] == '1') {
      *minor = v[7] - '0';
      return true;
    }
    *err = request ? fail(505, "http_version_not_supported",
                          "only HTTP/1.0 and HTTP/1.1 are served here")
                   : fail(502, "upstream_bad_response", "unsupported HTTP version");
    return false;
  }
  *err = fail(request ? 400 : 502, request ? "bad_request" : "upstream_bad_response",
              "malformed HTTP version");
  return false;
}

// Parses header lines into head->headers and derives framing. Shared by requests and responses.
bool parse_fields(LineReader& lines, const ParseLimits& limits, bool request, MessageHead* head,
                  ParseError* err) {
  const int bad_status = request ? 400 : 502;
  const std::string_view bad_code = request ? "bad_request" : "upstream_bad_response";
  std::string_view line;
  bool bad_eol = false;
  while (true) {
    if (!lines.next(&line, &bad_eol)) {
      *err = fail(bad_status, bad_code, "incomplete header section");
      return false;
    }
    if (bad_eol) {
      *err = fail(bad_status, bad_code, "header line not terminated by CRLF");
      return false;
    }
    if (line.empty()) break;
    if (line[0] == ' ' || line[0] == '\t') {
      *err = fail(bad_status, bad_code, "obsolete line folding is not allowed");
      return false;
    }
    size_t colon = 0;
    while (colon < line.size() && kT.tchar[static_cast<unsigned char>(line[colon])]) ++colon;
    if (colon == 0 || colon >= line.size() || line[colon] != ':') {
      *err = fail(bad_status, bad_code, "invalid header field name");
      return false;
    }
    std::string_view value = line.substr(colon + 1);
    for (unsigned char c : value) {
      if (!kT.value[c]) {
        *err = fail(bad_status, bad_code, "invalid character in a header field value");
        return false;
      }
    }
    if (head->headers.size() >= limits.max_headers) {
      *err = request ? fail(431, "header_too_large", "too many header fields")
                     : fail(502, "upstream_bad_response", "too many header fields");
      return false;
    }
    Header h;
    h.name = line.substr(0, colon);
    h.value = trim_ows(value);
    h.id = classify_field(h.name, &h.hop_by_hop);
    head->headers.push_back(h);
  }
  head->head_bytes = lines.pos();

  // Framing and connection semantics (RFC 9112 sections 6 and 9.3).
  bool has_cl = false, has_te = false, te_chunked = false, conn_close = false, conn_keep = false,
       conn_upgrade = false, has_upgrade = false;
  uint64_t cl = 0;
  for (auto& h : head->headers) {
    switch (h.id) {
      case HeaderId::kContentLength: {
        bool ok = true;
        bool any = false;
        for_each_element(h.value, [&](std::string_view v) {
          any = true;
          uint64_t n = 0;
          if (v.size() > 18) ok = false;
          for (char c : v) {
            if (c < '0' || c > '9') ok = false;
            n = n * 10 + static_cast<uint64_t>(c - '0');
          }
          if (has_cl && n != cl) ok = false;
          has_cl = true;
          cl = n;
        });
        if (!ok || !any) {
          *err = fail(bad_status, bad_code, "invalid or conflicting Content-Length");
          return false;
        }
        break;
      }
      case HeaderId::kTransferEncoding:
        if (has_te || !iequals(h.value, "chunked")) {
          *err = request
                     ? fail(501, "not_implemented", "only Transfer-Encoding: chunked is supported")
                     : fail(502, "upstream_bad_response", "unsupported Transfer-Encoding");
          return false;
        }
        has_te = te_chunked = true;
        break;
      case HeaderId::kConnection:
        for_each_element(h.value, [&](std::string_view t) {
          if (iequals(t, "close"))
            conn_close = true;
          else if (iequals(t, "keep-alive"))
            conn_keep = true;
          else if (iequals(t, "upgrade"))
            conn_upgrade = true;
        });
        break;
      case HeaderId::kUpgrade:
        has_upgrade = true;
        break;
      default:
        break;
    }
  }
  if (has_te && has_cl) {
    *err = fail(bad_status, bad_code, "both Content-Length and Transfer-Encoding");
    return false;
  }
  if (has_te && head->minor_version == 0) {
    *err = fail(bad_status, bad_code, "Transfer-Encoding in an HTTP/1.0 message");
    return false;
  }
  // Fields named in Connection are hop-by-hop too (RFC 9110 7.6.1).
  for (auto& h : head->headers) {
    if (h.id != HeaderId::kConnection) continue;
    for_each_element(h.value, [&](std::string_view t) {
      for (auto& other : head->headers) {
        // Framing and Host are never hop-by-hop: "Connection: Content-Length" must not strip the
        // length the body is framed by (that would smuggle the body as the next request).
        if (other.id == HeaderId::kContentLength || other.id == HeaderId::kHost) continue;
        if (!other.hop_by_hop && iequals(other.name, t)) other.hop_by_hop = true;
      }
    });
  }
  head->keep_alive = head->minor_version >= 1 ? !conn_close : (conn_keep && !conn_close);
  head->upgrade = conn_upgrade && has_upgrade;
  if (te_chunked) {
    head->framing = Framing::kChunked;
  } else if (has_cl) {
    head->framing = cl ? Framing::kContentLength : Framing::kNone;
    head->content_length = cl;
  }
  return true;
}

bool valid_percent_encoding(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') continue;
    if (i + 2 >= s.size() || kT.hex[static_cast<unsigned char>(s[i + 1])] < 0 ||
        kT.hex[static_cast<unsigned char>(s[i + 2])] < 0)
      return false;
    i += 2;
  }
  return true;
}

}  // namespace

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string_view MessageHead::get(std::string_view name) const {
  for (auto& h : headers) {
    if (iequals(h.name, name)) return h.value;
  }
  return {};
}

bool is_tchar(unsigned char c) { return kT.tchar[c]; }
bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!kT.tchar[c]) return false;
  }
  return true;
}

size_t find_head_end(std::string_view d, size_t from) {
  size_t i = from >= 3 ? from - 3 : 0;
  while (true) {
    const void* p = i < d.size() ? std::memchr(d.data() + i, '\n', d.size() - i) : nullptr;
    if (!p) return 0;
    size_t nl = static_cast<const char*>(p) - d.data();
    if (nl + 1 < d.size() && d[nl + 1] == '\n') return nl + 2;
    if (nl + 2 < d.size() && d[nl + 1] == '\r' && d[nl + 2] == '\n') return nl + 3;
    i = nl + 1;
  }
}

ParseStatus parse_request_head(std::string_view data, const ParseLimits& limits, RequestHead* out,
                               ParseError* err) {
  out->reset();
  out->expect_continue = false;
  out->method = out->target = out->path = out->query = out->host = {};
  // RFC 9112 2.2: a server SHOULD ignore at least one empty line received before the request-line.
  size_t skipped = 0;
  while (data.size() - skipped >= 2 && data[skipped] == '\r' && data[skipped + 1] == '\n')
    skipped += 2;
  data.remove_prefix(skipped);
  LineReader lines(data);
  std::string_view line;
  bool bad_eol = false;
  if (!lines.next(&line, &bad_eol)) return ParseStatus::kIncomplete;
  if (bad_eol)
    return *err = fail(400, "bad_request", "request line not terminated by CRLF"),
           ParseStatus::kError;

  auto sp1 = line.find(' ');
  auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    *err = fail(400, "bad_request", "malformed request line");
    return ParseStatus::kError;
  }
  out->method = line.substr(0, sp1);
  out->target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (!is_token(out->method)) {
    *err = fail(400, "bad_request", "invalid method");
    return ParseStatus::kError;
  }
  if (!parse_version(line.substr(sp2 + 1), &out->minor_version, err, true))
    return ParseStatus::kError;
  if (out->target.size() > limits.max_target_bytes) {
    *err = fail(414, "uri_too_long", "the request target is too long");
    return ParseStatus::kError;
  }
  if (out->target.empty()) {
    *err = fail(400, "bad_request", "empty request target");
    return ParseStatus::kError;
  }
  for (unsigned char c : out->target) {
    if (!kT.target[c]) {
      *err = fail(400, "bad_request", "invalid character in the request target");
      return ParseStatus::kError;
    }
  }
  if (out->method == "CONNECT") {
    *err = fail(501, "not_implemented", "CONNECT is not supported");
    return ParseStatus::kError;
  }
  std::string_view authority;
  bool absolute = false;
  std::string_view t = out->target;
  if (t[0] == '/') {
    // origin-form
  } else if (t == "*" && out->method == "OPTIONS") {
    // asterisk-form: no route has this path, so it gets 404
  } else if (t.size() > 7 && (iequals(t.substr(0, 7), "http://") ||
                              (t.size() > 8 && iequals(t.substr(0, 8), "https://")))) {
    // absolute-form (RFC 9112 3.2.2): the authority replaces Host
    t.remove_prefix(t[4] == ':' ? 7 : 8);
    auto end = t.find_first_of("/?");
    authority = t.substr(0, end);
    t = end == std::string_view::npos ? std::string_view("/") : t.substr(end);
    if (t[0] == '?') {
      *err = fail(400, "bad_request", "absolute-form target without a path");
      return ParseStatus::kError;
    }
    absolute = true;
  } else {
    *err = fail(400, "bad_request", "invalid request target");
    return ParseStatus::kError;
  }
  auto q = t.find('?');
  out->path = t.substr(0, q);
  if (q != std::string_view::npos) out->query = t.substr(q + 1);
  if (!valid_percent_encoding(out->target)) {
    *err = fail(400, "bad_request", "invalid percent-encoding in the request target");
    return ParseStatus::kError;
  }

  if (!parse_fields(lines, limits, true, out, err)) return ParseStatus::kError;
  out->head_bytes += skipped;

  int hosts = 0;
  for (auto& h : out->headers) {
    if (h.id == HeaderId::kHost) {
      ++hosts;
      out->host = h.value;
      for (unsigned char c : h.value) {
        if (!kT.host[c]) {
          *err = fail(400, "bad_request", "invalid Host header");
          return ParseStatus::kError;
        }
      }
    } else if (h.id == HeaderId::kExpect) {
      if (iequals(h.value, "100-continue")) out->expect_continue = out->minor_version >= 1;
      h.hop_by_hop = true;  // the gateway answers the expectation itself
    }
  }
  // RFC 9112 3.2: exactly one Host in HTTP/1.1.
  if (hosts > 1 || (hosts == 0 && out->minor_version >= 1)) {
    *err = fail(400, "bad_request", hosts ? "more than one Host header" : "missing Host header");
    return ParseStatus::kError;
  }
  if (absolute) {
    for (unsigned char c : authority) {
      if (!kT.host[c]) {
        *err = fail(400, "bad_request", "invalid authority in the request target");
        return ParseStatus::kError;
      }
    }
    out->host = authority;
  }
  return ParseStatus::kComplete;
}

// status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 4); a line that ends
// right after the code, with no space, is taken too.
bool parse_status_line(std::string_view line, ResponseHead* out, ParseError* err) {
  if (line.size() < 12 || line[8] != ' ' || (line.size() > 12 && line[12] != ' ')) {
    *err = fail(502, "upstream_bad_response", "malformed status line");
    return false;
  }
  if (!parse_version(line.substr(0, 8), &out->minor_version, err, false)) return false;
  int status = 0;
  for (int i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') {
      *err = fail(502, "upstream_bad_response", "malformed status code");
      return false;
    }
    status = status * 10 + (line[i] - '0');
  }
  if (status < 100) {
    *err = fail(502, "upstream_bad_response", "malformed status code");
    return false;
  }
  out->status = status;
  out->reason = line.size() > 13 ? line.substr(13) : std::string_view();
  for (unsigned char c : out->reason) {
    if (!kT.value[c]) {
      *err = fail(502, "upstream_bad_response", "invalid character in the reason phrase");
      return false;
    }
  }
  return true;
}

ParseStatus parse_response_head(std::string_view data, const ParseLimits& limits,
                                std::string_view method, ResponseHead* out, ParseError* err) {
  out->reset();
  LineReader lines(data);
  std::string_view line;
  bool bad_eol = false;
  if (!lines.next(&line, &bad_eol)) return ParseStatus::kIncomplete;
  if (bad_eol) {
    *err = fail(502, "upstream_bad_response", "status line not terminated by CRLF");
    return ParseStatus::kError;
  }
  if (!parse_status_line(line, out, err)) return ParseStatus::kError;
  if (!parse_fields(lines, limits, false, out, err)) return ParseStatus::kError;
  const int status = out->status;
  bool bodiless = method == "HEAD" || status < 200 || status == 204 || status == 304;
  if (bodiless) {
    out->framing = Framing::kNone;
  } else if (out->framing == Framing::kNone && out->get("content-length").empty()) {
    out->framing = Framing::kUntilClose;  // RFC 9112 6.3 rule 8
    out->keep_alive = false;
  }
  return ParseStatus::kComplete;
}

}  // namespace gatehouse::http
