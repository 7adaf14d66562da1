// The gateway's own answers: by default a JSON body with the error code, a message and the request
// id, as the CLI contract specifies (docs/configuration.md); or, for a filter that answers with a
// response of its own (a cached response, a composed document), any status, headers and body.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "http/proxy_headers.h"

namespace gatehouse::http {

struct ErrorResponse {
  int status = 500;
  std::string code;     // machine-readable, e.g. "upstream_timeout"
  std::string message;  // for humans
  HeaderList headers;   // extra headers, e.g. Allow, Retry-After
  // A body of the answer's own, sent as is with `content_type`, instead of the JSON error (`code`
  // then only names the answer in the access log, and may be empty).
  std::optional<std::string> body;
  std::string content_type;  // empty: application/octet-stream, unless `headers` has its own
  // A body someone else holds and shares (a stored response): written after the head without
  // being copied into it, so build_error_response() writes the head alone, with its length.
  // `shared_body` keeps the bytes alive; `shared_bytes` are the answer's body among them (all of
  // a stored response, or one byte range of it).
  std::shared_ptr<const void> shared_body;
  std::string_view shared_bytes;

  std::string_view shared() const { return shared_body ? shared_bytes : std::string_view(); }

  // Back to a default-constructed answer, keeping the strings' storage (called once per request,
  // where assigning a fresh ErrorResponse would build and destroy five members).
  void clear() {
    status = 500;
    code.clear();
    message.clear();
    headers.clear();
    body.reset();
    content_type.clear();
    shared_body.reset();
    shared_bytes = {};
  }
};

// Appends a complete response (head and body; only the head for a HEAD request, or when the
// body is `shared_body`, which the caller writes after it) to *out.
void build_error_response(const ErrorResponse& e, std::string_view request_id_header,
                          std::string_view request_id, std::string_view trace_id, bool close,
                          bool head_only, std::string* out);

// Appends s to *out as the inside of a JSON string (quotes, backslashes, control characters and
// bytes that are not UTF-8 text escaped).
void append_json_escaped(std::string* out, std::string_view s);
// `s` as a JSON string, quoted, for a document rather than a log line: UTF-8 text as it is (a
// JSON text is UTF-8), a byte that is not part of well-formed UTF-8 as U+FFFD.
void append_json_string(std::string* out, std::string_view s);

}  // namespace gatehouse::http
