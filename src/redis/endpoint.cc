// redis:// and rediss:// URLs (redis/endpoint.h), read by the one URL parser (http/url.h); what
// is particular to Redis is checked here: no query, "[user]:password", a database number as path.
#include "redis/endpoint.h"

#include <limits>

#include "http/url.h"
#include "redis/resp.h"

namespace gatehouse::redis {

std::optional<Endpoint> parse_url(std::string_view url, std::string* error) {
  auto fail = [error](std::string why) -> std::optional<Endpoint> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  const bool secure = url.starts_with("rediss://");
  if (!secure && !url.starts_with("redis://"))
    return fail("expected redis:// or rediss://[[user]:password@]host[:port][/db]");
  std::string why;
  auto u = http::parse_url(url, &why);
  if (!u) return fail(why);
  if (u->has_query() || u->fragment)
    return fail("query parameters and fragments are not supported");
  // user (a Redis 6 ACL user; none: the default user) ":" password
  if (u->has_userinfo && !u->has_password) return fail("expected [user]:password@ before the host");
  if (!u->user.empty() && u->password.empty()) return fail("a user name needs a password");

  Endpoint ep;
  ep.tls = secure;
  ep.host = u->host;
  ep.port = u->port;
  ep.user = u->user;
  ep.password = u->password;
  std::string_view db = std::string_view(u->path).substr(1);  // the path starts with '/'
  if (!db.empty()) {
    auto n = parse_number(db, std::numeric_limits<int>::max());
    if (!n) return fail("bad database number '" + std::string(db) + "'");
    ep.db = static_cast<int>(*n);
  }
  return ep;
}

}  // namespace gatehouse::redis
