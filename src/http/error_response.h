// The gateway's own answers: a JSON body with the error code, a message and the request id, as
// ../shared/contract/CLI.md specifies.
#pragma once

#include <string>
#include <string_view>

#include "http/proxy_headers.h"

namespace gatehouse::http {

struct ErrorResponse {
  int status = 500;
  std::string code;     // machine-readable, e.g. "upstream_timeout"
  std::string message;  // for humans
  HeaderList headers;   // extra headers, e.g. Allow, Retry-After
};

// Appends a complete response (head and body) to *out.
void build_error_response(const ErrorResponse& e, std::string_view request_id_header,
                          std::string_view request_id, bool close, bool head_only,
                          std::string* out);

// Appends s to *out as the inside of a JSON string (quotes, backslashes, control characters and
// bytes that are not UTF-8 text escaped).
void append_json_escaped(std::string* out, std::string_view s);

}  // namespace gatehouse::http
