// URL parsing (http/url.h): one strict reading of scheme, user info, host, port and path, so that
// a URL means the same wherever the config takes one.
#include "http/url.h"

#include <cctype>
#include <charconv>

#include "crypto/digest.h"

namespace gatehouse::http {
namespace {

bool is_alpha(char c) { return std::isalpha(static_cast<unsigned char>(c)); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// RFC 3986 3.2.2 reg-name: unreserved, sub-delims and percent-encoded octets.
bool is_host_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("-._~!$&'()*+,;=%").find(c) != std::string_view::npos;
}

}  // namespace

bool percent_decode(std::string_view in, std::string* out, bool keep_encoded_slash) {
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      *out += in[i];
      continue;
    }
    int hi = i + 2 < in.size() ? crypto::hex_value(in[i + 1]) : -1;
    int lo = i + 2 < in.size() ? crypto::hex_value(in[i + 2]) : -1;
    if (hi < 0 || lo < 0) return false;
    const char c = static_cast<char>(hi * 16 + lo);
    if (keep_encoded_slash && c == '/')
      out->append(in.substr(i, 3));
    else
      *out += c;
    i += 2;
  }
  return true;
}

void append_percent_encoded(std::string* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out->push_back(ch);
    } else {
      const char esc[] = {'%', kHex[c >> 4], kHex[c & 15]};
      out->append(esc, 3);
    }
  }
}

uint16_t default_port(std::string_view scheme) {
  if (scheme == "http") return 80;
  if (scheme == "https") return 443;
  if (scheme == "redis" || scheme == "rediss") return 6379;
  return 0;
}

std::optional<Url> parse_url(std::string_view text, std::string* error) {
  auto fail = [error](std::string why) -> std::optional<Url> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  Url u;
  // scheme "://": ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), compared without case.
  size_t sep = text.find("://");
  if (sep == std::string_view::npos || sep == 0)
    return fail("missing scheme (expected e.g. https://host/path)");
  for (size_t i = 0; i < sep; ++i) {
    char c = text[i];
    if (!(is_alpha(c) || (i > 0 && (is_digit(c) || c == '+' || c == '-' || c == '.'))))
      return fail("bad scheme '" + std::string(text.substr(0, sep)) + "'");
    u.scheme += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (default_port(u.scheme) == 0)
    return fail("unsupported scheme '" + u.scheme + "' (expected http, https, redis or rediss)");
  std::string_view rest = text.substr(sep + 3);

  // The authority ends at the path, the query or the fragment.
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  std::string_view tail = end == std::string_view::npos ? "" : rest.substr(end);

  // The last '@' ends the user info, so a password may contain '@'.
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority.remove_prefix(at + 1);
    u.has_userinfo = true;
    size_t colon = userinfo.find(':');
    u.has_password = colon != std::string_view::npos;
    if (!percent_decode(userinfo.substr(0, colon), &u.user) ||
        (u.has_password && !percent_decode(userinfo.substr(colon + 1), &u.password)))
      return fail("bad percent-encoding in the user or password");
  }

  std::string_view port;
  if (authority.starts_with("[")) {  // an IPv6 literal (RFC 3986 3.2.2)
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return fail("unclosed '[' in the host");
    std::string_view v6 = authority.substr(1, close - 1);
    if (v6.find(':') == std::string_view::npos ||
        v6.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos)
      return fail("bad IPv6 address '" + std::string(v6) + "'");
    u.host = std::string(v6);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(":")) return fail("unexpected text after the host");
      port = after.substr(1);
      u.has_port = true;
    }
  } else {
    size_t colon = authority.find(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      u.has_port = true;
    }
    for (char c : u.host) {
      if (!is_host_char(c)) return fail("bad character in the host '" + u.host + "'");
    }
  }
  if (u.host.empty()) return fail("missing host");
  if (u.has_port) {
    unsigned p = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (port.empty() || port.size() > 5 || !is_digit(port[0]) || ec != std::errc() ||
        ptr != port.data() + port.size() || p == 0 || p > 65535)
      return fail("bad port '" + std::string(port) + "'");
    u.port = static_cast<uint16_t>(p);
  } else {
    u.port = default_port(u.scheme);
  }

  size_t hash = tail.find('#');
  if (hash != std::string_view::npos) {
    u.fragment = std::string(tail.substr(hash + 1));
    tail = tail.substr(0, hash);
  }
  for (char c : tail) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f)
      return fail("a space or control character in the path");
  }
  if (tail.empty()) {
    u.path = "/";
  } else if (tail.front() == '?') {
    u.path = "/" + std::string(tail);
  } else {
    u.path = std::string(tail);
  }
  return u;
}

}  // namespace gatehouse::http
