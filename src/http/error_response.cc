#include "http/error_response.h"

#include <algorithm>

namespace gatehouse::http {

void append_json_escaped(std::string* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t run = 0;  // start of the current run of characters that need no escaping
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    // Control characters and every non-ASCII byte are escaped: a log line stays valid JSON
    // whatever bytes a client sent.
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') continue;
    out->append(s.data() + run, i - run);  // the safe run before it, in one append
    run = i + 1;
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default: {
        const char esc[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        out->append(esc, sizeof esc);
      }
    }
  }
  out->append(s.data() + run, s.size() - run);
}

void build_error_response(const ErrorResponse& e, std::string_view request_id_header,
                          std::string_view request_id, std::string_view trace_id, bool close,
                          bool head_only, std::string* out) {
  // Answers without content (RFC 9110 15.3.5, 15.4.5): a CORS preflight's 204, the cache's 304
  // to a conditional request; neither has a body nor a Content-Length.
  if (e.status == 204 || e.status == 304) {
    out->append(e.status == 204 ? "HTTP/1.1 204 No Content\r\n" : "HTTP/1.1 304 Not Modified\r\n");
    out->append(request_id_header).append(": ").append(request_id).append("\r\n");
    for (auto& [n, v] : e.headers) out->append(n).append(": ").append(v).append("\r\n");
    if (close) out->append("Connection: close\r\n");
    out->append("\r\n");
    return;
  }
  std::string json;
  if (!e.body) {
    json = "{\"error\":\"";
    append_json_escaped(&json, e.code);
    json += "\",\"message\":\"";
    append_json_escaped(&json, e.message);
    json += "\",\"request_id\":\"";
    append_json_escaped(&json, request_id);
    if (!trace_id.empty()) {
      json += "\",\"trace_id\":\"";
      append_json_escaped(&json, trace_id);
    }
    json += "\"}\n";
  }
  const bool own_body = e.body || e.shared_body;
  const std::string_view body = e.shared_body ? e.shared()
                                : e.body      ? std::string_view(*e.body)
                                              : json;
  out->append("HTTP/1.1 ").append(std::to_string(e.status)).append(" ");
  out->append(reason_phrase(e.status)).append("\r\n");
  // An answer whose fields name its type (a stored response's) gets no other.
  const bool typed = std::any_of(e.headers.begin(), e.headers.end(),
                                 [](const auto& h) { return iequals(h.first, "content-type"); });
  if (!typed) {
    std::string_view type = !own_body                ? "application/json"
                            : e.content_type.empty() ? "application/octet-stream"
                                                     : std::string_view(e.content_type);
    out->append("Content-Type: ").append(type).append("\r\n");
  }
  out->append("Content-Length: ");
  out->append(std::to_string(body.size())).append("\r\n");
  out->append(request_id_header).append(": ").append(request_id).append("\r\n");
  for (auto& [n, v] : e.headers) out->append(n).append(": ").append(v).append("\r\n");
  if (close) out->append("Connection: close\r\n");
  out->append("\r\n");
  if (!head_only && !e.shared_body) out->append(body);
}

// RFC 8259 7: quotes, backslashes and control characters escaped; UTF-8 text as it is (a JSON
// text is UTF-8, RFC 8259 8.1); a byte that is not part of well-formed UTF-8 becomes U+FFFD, as
// a proto3 string must be UTF-8.
void append_json_string(std::string* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c == '"' || c == '\\') {
        out->push_back('\\');
        out->push_back(static_cast<char>(c));
      } else if (c < 0x20) {
        const char esc[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        out->append(esc, sizeof esc);
      } else {
        out->push_back(static_cast<char>(c));
      }
      ++i;
      continue;
    }
    // A well-formed sequence (RFC 3629 4): its length from the lead byte, continuation bytes
    // 10xxxxxx, no overlong forms, no surrogates, nothing past U+10FFFF.
    const size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
    bool ok = n && c <= 0xf4 && i + n <= s.size();
    for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
    if (ok && n >= 3) {
      const auto c1 = static_cast<unsigned char>(s[i + 1]);
      ok = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0) && !(c == 0xf0 && c1 < 0x90) &&
           !(c == 0xf4 && c1 >= 0x90);
    }
    if (ok) {
      out->append(s.substr(i, n));
      i += n;
    } else {
      out->append("\xEF\xBF\xBD");
      ++i;
    }
  }
  out->push_back('"');
}

}  // namespace gatehouse::http
