// A strict, allocation-free HTTP/1.1 head parser (RFC 9112), for requests from clients and
// responses from upstreams. Strict because the gateway is the security perimeter: anything two
// parsers could read differently (request smuggling: CL+TE, differing Content-Length, obs-fold,
// bare CR or LF, control characters) is rejected, never guessed at.
#pragma once

#include <cstddef>
#include <string_view>

#include "http/message.h"

namespace gatehouse::http {

struct ParseLimits {
  size_t max_head_bytes = 32 * 1024;
  size_t max_target_bytes = 8 * 1024;
  size_t max_headers = 100;
};

// An upstream's response head past these is refused: 64 KiB (as HTTP/1.1 carries it), 1000
// fields. The upstream client and upstream::Fetch (health checks, JWKS) alike, either protocol.
inline constexpr ParseLimits kUpstreamResponseLimits{64 * 1024, 64 * 1024, 1000};

// Why a message was refused: the status to answer with (400, 414, 431, 501, 505 for requests;
// responses always map to 502), a short machine code and a human message.
struct ParseError {
  int status = 400;
  std::string_view code = "bad_request";
  std::string_view message = "malformed request";
};

enum class ParseStatus { kComplete, kIncomplete, kError };

// Finds the end of a head (the empty line) in data, starting the search at `from` (so a head that
// arrives byte by byte costs O(n) in total, not O(n^2)). Returns the head length including the
// final line break, or 0 when not there yet. Accepts a bare LF so the strict parser can reject it.
size_t find_head_end(std::string_view data, size_t from);

// Parses a complete head (data must end where find_head_end said). Fills *out (its vectors keep
// their capacity). On kError fills *err.
ParseStatus parse_request_head(std::string_view data, const ParseLimits& limits, RequestHead* out,
                               ParseError* err);
// For responses to a request with method `method` (HEAD and 1xx/204/304 have no body).
ParseStatus parse_response_head(std::string_view data, const ParseLimits& limits,
                                std::string_view method, ResponseHead* out, ParseError* err);
// The status line alone (without its CRLF): version, status code and reason phrase into *out.
// False, with *err filled, when it is malformed. Health checks read only this much.
bool parse_status_line(std::string_view line, ResponseHead* out, ParseError* err);

// What a field name is to the proxy (the id of one it acts on, else kOther), and whether the field
// is hop-by-hop by its name alone (RFC 9110 7.6.1). The parser classifies each field with it; so
// do heads built from fields that came another way (HTTP/2's, upstream/h2/).
HeaderId classify_field(std::string_view name, bool* hop_by_hop);

// Character classes of RFC 9110 section 5.6.2.
bool is_tchar(unsigned char c);
bool is_token(std::string_view s);

}  // namespace gatehouse::http
