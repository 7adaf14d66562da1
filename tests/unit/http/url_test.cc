// The one URL parser (http/url.h): what every configured URL (jwks_url, the redis URL) is read by.
#include "http/url.h"

#include <gtest/gtest.h>

#include <string>

namespace gatehouse::http {
namespace {

Url parse_ok(const std::string& text) {
  std::string error;
  auto u = parse_url(text, &error);
  EXPECT_TRUE(u) << text << ": " << error;
  return u.value_or(Url{});
}

TEST(Url, DefaultPortsAndPath) {
  Url u = parse_ok("https://id.example.com");
  EXPECT_EQ(u.scheme, "https");
  EXPECT_EQ(u.host, "id.example.com");
  EXPECT_EQ(u.port, 443);
  EXPECT_FALSE(u.has_port);
  EXPECT_EQ(u.path, "/");
  EXPECT_FALSE(u.has_userinfo);
  EXPECT_FALSE(u.fragment);
  EXPECT_EQ(parse_ok("http://h").port, 80);
  EXPECT_EQ(parse_ok("redis://h").port, 6379);
  EXPECT_EQ(parse_ok("rediss://h").port, 6379);
  EXPECT_EQ(parse_ok("HTTPS://h").scheme, "https") << "the scheme is case-insensitive";
}

TEST(Url, ExplicitPortPathAndQuery) {
  Url u = parse_ok("http://127.0.0.1:8080/.well-known/jwks.json?v=2");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 8080);
  EXPECT_TRUE(u.has_port);
  EXPECT_EQ(u.path, "/.well-known/jwks.json?v=2");
  EXPECT_TRUE(u.has_query());
  EXPECT_EQ(parse_ok("http://h?x=1").path, "/?x=1") << "a query without a path";
  EXPECT_EQ(parse_ok("http://h:1").port, 1);
  EXPECT_EQ(parse_ok("http://h:65535").port, 65535);
  EXPECT_FALSE(parse_ok("http://h/a").has_query());
}

TEST(Url, FragmentIsKeptApart) {
  Url u = parse_ok("https://h/jwks#keys");
  EXPECT_EQ(u.path, "/jwks");
  ASSERT_TRUE(u.fragment);
  EXPECT_EQ(*u.fragment, "keys");
  EXPECT_EQ(parse_ok("https://h#").fragment, "");
}

TEST(Url, Ipv6HostsWithoutBrackets) {
  Url u = parse_ok("redis://[::1]:7000/2");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 7000);
  EXPECT_EQ(u.path, "/2");
  u = parse_ok("https://[2001:db8::1]/jwks");
  EXPECT_EQ(u.host, "2001:db8::1");
  EXPECT_EQ(u.port, 443);
  EXPECT_EQ(parse_ok("http://[::ffff:10.0.0.1]:81").host, "::ffff:10.0.0.1");
}

TEST(Url, UserInfoIsPercentDecoded) {
  Url u = parse_ok("redis://gate%2Dway:p%40ss%3Aw@host:6380");
  EXPECT_TRUE(u.has_userinfo);
  EXPECT_TRUE(u.has_password);
  EXPECT_EQ(u.user, "gate-way");
  EXPECT_EQ(u.password, "p@ss:w");
  EXPECT_EQ(u.host, "host");
  EXPECT_EQ(u.port, 6380);
  // The last '@' ends the user info, so a password may hold a raw '@'.
  u = parse_ok("redis://:p@ss@host");
  EXPECT_EQ(u.user, "");
  EXPECT_EQ(u.password, "p@ss");
  EXPECT_EQ(u.host, "host");
  u = parse_ok("http://alice@host");
  EXPECT_TRUE(u.has_userinfo);
  EXPECT_FALSE(u.has_password);
  EXPECT_EQ(u.user, "alice");
  u = parse_ok("http://alice:@host");
  EXPECT_TRUE(u.has_password);
  EXPECT_EQ(u.password, "");
}

TEST(Url, Malformed) {
  struct Case {
    const char* url;
    const char* error;  // a part of the message
  } cases[] = {
      {"", "missing scheme"},
      {"id.example.com/jwks", "missing scheme"},
      {"://h", "missing scheme"},
      {"1http://h", "bad scheme"},
      {"ht tp://h", "bad scheme"},
      {"ftp://h", "unsupported scheme 'ftp'"},
      {"http://", "missing host"},
      {"http:///jwks", "missing host"},
      {"http://:80", "missing host"},
      {"redis://:pw@", "missing host"},
      {"http://[]", "bad IPv6 address"},
      {"http://[::1", "unclosed '['"},
      {"http://[::1]x", "unexpected text after the host"},
      {"http://[host]", "bad IPv6 address"},
      {"http://h:", "bad port ''"},
      {"http://h:0", "bad port '0'"},
      {"http://h:65536", "bad port '65536'"},
      {"http://h:99999999999", "bad port"},
      {"http://h:12ab", "bad port '12ab'"},
      {"http://h:-1", "bad port '-1'"},
      {"http://h:+1", "bad port '+1'"},
      {"http://h:1:2", "bad port '1:2'"},
      {"http://h o/", "bad character in the host"},
      {"http://h\\o/", "bad character in the host"},
      {"http://u%zz:pw@h", "bad percent-encoding"},
      {"http://u:p%4@h", "bad percent-encoding"},
      {"http://u:p%@h", "bad percent-encoding"},
      {"http://h/a b", "space or control character"},
      {"http://h/a\r\nHost: evil", "space or control character"},
  };
  for (const auto& c : cases) {
    std::string error;
    EXPECT_FALSE(parse_url(c.url, &error)) << c.url;
    EXPECT_NE(error.find(c.error), std::string::npos) << c.url << ": got '" << error << "'";
  }
  EXPECT_FALSE(parse_url("http://", nullptr)) << "the error is optional";
}

TEST(Url, DefaultPorts) {
  EXPECT_EQ(default_port("http"), 80);
  EXPECT_EQ(default_port("https"), 443);
  EXPECT_EQ(default_port("redis"), 6379);
  EXPECT_EQ(default_port("rediss"), 6379);
  EXPECT_EQ(default_port("ftp"), 0);
}

TEST(PercentDecode, KeepsEncodedSlashesOnlyWhenAsked) {
  std::string out;
  EXPECT_TRUE(percent_decode("a%2Fb%2fc%41", &out, true));
  EXPECT_EQ(out, "a%2Fb%2fcA");
  out.clear();
  EXPECT_TRUE(percent_decode("a%2Fb", &out));
  EXPECT_EQ(out, "a/b");
  out.clear();
  EXPECT_FALSE(percent_decode("%4", &out));
  EXPECT_FALSE(percent_decode("%zz", &out));
}

TEST(PercentEncode, EverythingButTheUnreserved) {
  std::string out;
  append_percent_encoded(&out, "a-b._~Z9 /?&=%\xc3\xa9");
  EXPECT_EQ(out, "a-b._~Z9%20%2F%3F%26%3D%25%C3%A9");
}

}  // namespace
}  // namespace gatehouse::http
