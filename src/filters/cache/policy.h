// What RFC 9111 lets a shared cache do: store a response (section 3, with 3.5 for requests that
// carry Authorization) and pick the stored variant a request may be served from (section 4.1,
// Vary). Pure functions of the messages' facts, so the rules are tested without sockets.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "http/cache_control.h"
#include "http/message.h"

namespace gatehouse::filters::cache {

struct RequestFacts {
  std::string_view method;
  http::CacheControl cc;
  bool authorization = false;  // an Authorization header field
};

struct ResponseFacts {
  int status = 0;
  http::CacheControl cc;
  bool expires = false;     // an Expires header field (valid or not)
  bool set_cookie = false;  // a Set-Cookie header field
  bool vary_star = false;   // Vary: * (RFC 9111 4.1: never matches a later request)
};

// Why a response is not stored: the reason, for the Cache-Status detail and the tests.
enum class NotStored {
  kNone,           // it may be stored
  kMethod,         // only GET responses are stored
  kStatus,         // a status this cache does not store (1xx, 206, 304; see storable())
  kNoStore,        // no-store in the request or the response
  kPrivate,        // private (qualified or not): not for a shared cache
  kAuthorization,  // a request with Authorization, and no public, s-maxage or must-revalidate
  kSetCookie,      // Set-Cookie, on a route that does not share such responses
  kVaryStar,       // Vary: *
  kNoFreshness,    // neither explicit freshness, nor public, nor a heuristically cacheable status
};

// RFC 9111 section 3 for a shared cache. `share_set_cookie`: the route stores responses with
// Set-Cookie too; `default_ttl`: the route gives responses without freshness a lifetime.
NotStored storable(const RequestFacts& req, const ResponseFacts& resp, bool share_set_cookie,
                   bool default_ttl);
std::string_view to_string(NotStored why);

// The field names a response's Vary lists, lower case, sorted, each once; `star` for "*".
struct VarySpec {
  std::vector<std::string> names;
  bool star = false;
};
VarySpec parse_vary(const std::vector<std::string_view>& lines);

// What a request carries for the fields `spec` names, normalised as RFC 9111 4.1 allows: the
// field lines of one name joined, the list elements trimmed of whitespace, empty ones dropped;
// for fields whose values are case-insensitive tokens (Accept-Encoding), lower case. Two requests
// select the same stored variant exactly when their keys are equal (an absent field differs from
// an empty one).
std::string vary_key(const VarySpec& spec, const http::MessageHead& request);

}  // namespace gatehouse::filters::cache
