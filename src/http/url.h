// The one URL type and parser for every URL the gateway is configured with (jwks_url, the redis
// URL): scheme://[user[:password]@]host[:port][/path][?query][#fragment] (RFC 3986), for the
// schemes it speaks. Each caller then checks what its own URLs may hold (a Redis URL has no
// query, say). Not for request targets on the data plane: http/parser.h reads those.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gatehouse::http {

struct Url {
  std::string scheme;         // lower case: http, https, redis or rediss
  std::string user;           // percent-decoded; empty when the URL has none
  std::string password;       // percent-decoded
  bool has_userinfo = false;  // "...@" before the host, even an empty one
  bool has_password = false;  // a ':' in the user info, even with nothing after it
  std::string host;           // as written (IPv6 without its brackets)
  uint16_t port = 0;          // as written, else the scheme's default
  bool has_port = false;
  std::string path = "/";  // path and query, as sent in a request target; "/" when empty
  std::optional<std::string> fragment;  // after '#', never sent to a server

  bool has_query() const { return path.find('?') != std::string::npos; }
};

// The port a scheme implies: http 80, https 443, redis and rediss 6379; 0 for any other.
uint16_t default_port(std::string_view scheme);

// Parses `text`; nullopt and *error (when given) say why it is not a URL of a known scheme.
std::optional<Url> parse_url(std::string_view text, std::string* error);

// `in` with its %XX escapes decoded, appended to *out; false on a '%' not followed by two hex
// digits. `keep_encoded_slash`: "%2F" stays as it is (RFC 3986 2.2: a '/' inside a path segment
// is data, not a separator).
bool percent_decode(std::string_view in, std::string* out, bool keep_encoded_slash = false);
// `s` as one URI component: everything but the unreserved characters (RFC 3986 2.3) as %XX.
void append_percent_encoded(std::string* out, std::string_view s);

}  // namespace gatehouse::http
