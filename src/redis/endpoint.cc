// redis:// and rediss:// URLs (redis/endpoint.h).
#include "redis/endpoint.h"

#include <limits>

#include "crypto/digest.h"
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
  std::string_view rest = url.substr(secure ? 9 : 8);
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return fail("query parameters and fragments are not supported");
  }
  Endpoint ep;
  ep.tls = secure;
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash + 1);

  // The last '@' ends the user info, so a password may contain '@'.
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority.remove_prefix(at + 1);
    size_t colon = userinfo.find(':');
    if (colon == std::string_view::npos) return fail("expected [user]:password@ before the host");
    // user (a Redis 6 ACL user; none: the default user) ":" password, both percent-decoded
    auto decode = [](std::string_view in, std::string* out) {
      for (size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
          *out += in[i];
          continue;
        }
        int hi = i + 2 < in.size() ? crypto::hex_value(in[i + 1]) : -1;
        int lo = i + 2 < in.size() ? crypto::hex_value(in[i + 2]) : -1;
        if (hi < 0 || lo < 0) return false;
        *out += static_cast<char>(hi * 16 + lo);
        i += 2;
      }
      return true;
    };
    if (!decode(userinfo.substr(0, colon), &ep.user) ||
        !decode(userinfo.substr(colon + 1), &ep.password))
      return fail("bad percent-encoding in the user or password");
    if (!ep.user.empty() && ep.password.empty()) return fail("a user name needs a password");
  }

  std::string_view port;
  bool has_port = false;
  if (authority.starts_with("[")) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return fail("unclosed '[' in the host");
    ep.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(":")) return fail("unexpected text after the host");
      port = after.substr(1);
      has_port = true;
    }
  } else {
    size_t colon = authority.find(':');
    ep.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      has_port = true;
    }
  }
  if (ep.host.empty()) return fail("missing host");
  if (has_port) {
    auto p = parse_number(port, 65535);
    if (!p || *p == 0) return fail("bad port '" + std::string(port) + "'");
    ep.port = static_cast<uint16_t>(*p);
  }
  if (!path.empty()) {
    auto db = parse_number(path, std::numeric_limits<int>::max());
    if (!db) return fail("bad database number '" + std::string(path) + "'");
    ep.db = static_cast<int>(*db);
  }
  return ep;
}

}  // namespace gatehouse::redis
