#include "config/units.h"

#include <gtest/gtest.h>

#include <string>

namespace gatehouse::config {
namespace {

std::array<uint8_t, 16> ip(const char* text) {
  auto a = parse_ip(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(std::array<uint8_t, 16>{});
}

TEST(ParseDurationTest, AcceptsEveryUnit) {
  EXPECT_EQ(parse_duration("250ms"), Duration(250));
  EXPECT_EQ(parse_duration("2s"), Duration(2'000));
  EXPECT_EQ(parse_duration("5m"), Duration(300'000));
  EXPECT_EQ(parse_duration("1h"), Duration(3'600'000));
  EXPECT_EQ(parse_duration("0ms"), Duration(0));
  EXPECT_EQ(parse_duration("1.5s"), Duration(1'500));
}

TEST(ParseDurationTest, RejectsMissingOrUnknownUnit) {
  EXPECT_FALSE(parse_duration("10").has_value());
  EXPECT_FALSE(parse_duration("1d").has_value());
  EXPECT_FALSE(parse_duration("").has_value());
  EXPECT_FALSE(parse_duration("ms").has_value());
  EXPECT_FALSE(parse_duration("-1s").has_value());
  EXPECT_FALSE(parse_duration("2 s").has_value());
  EXPECT_FALSE(parse_duration("2S").has_value());
  EXPECT_FALSE(parse_duration("2sec").has_value());
}

TEST(FormatDurationTest, PicksTheLargestWholeUnit) {
  EXPECT_EQ(format_duration(Duration(250)), "250ms");
  EXPECT_EQ(format_duration(Duration(2'000)), "2s");
  EXPECT_EQ(format_duration(Duration(300'000)), "5m");
  EXPECT_EQ(format_duration(Duration(7'200'000)), "2h");
  EXPECT_EQ(format_duration(Duration(1'500)), "1500ms");
  EXPECT_EQ(format_duration(Duration(0)), "0ms");
}

TEST(ParseSizeTest, AcceptsBinaryAndDecimalUnits) {
  EXPECT_EQ(parse_size("512"), 512u);
  EXPECT_EQ(parse_size("32KiB"), 32u * 1024);
  EXPECT_EQ(parse_size("10MiB"), 10u * 1024 * 1024);
  EXPECT_EQ(parse_size("1GiB"), 1024ull * 1024 * 1024);
  EXPECT_EQ(parse_size("10MB"), 10'000'000u);
  EXPECT_EQ(parse_size("32KB"), 32'000u);
  EXPECT_EQ(parse_size("0"), 0u);
}

TEST(ParseSizeTest, RejectsUnknownUnitsAndGarbage) {
  EXPECT_FALSE(parse_size("1TB").has_value());
  EXPECT_FALSE(parse_size("abc").has_value());
  EXPECT_FALSE(parse_size("").has_value());
  EXPECT_FALSE(parse_size("KiB").has_value());
  EXPECT_FALSE(parse_size("10kib").has_value());
  EXPECT_FALSE(parse_size("-5").has_value());
}

TEST(ParsePercentTest, AcceptsZeroToHundred) {
  EXPECT_EQ(parse_percent("20%"), 20.0);
  EXPECT_EQ(parse_percent("0%"), 0.0);
  EXPECT_EQ(parse_percent("100%"), 100.0);
  EXPECT_EQ(parse_percent("12.5%"), 12.5);
}

TEST(ParsePercentTest, RejectsOutOfRangeAndMissingSign) {
  EXPECT_FALSE(parse_percent("101%").has_value());
  EXPECT_FALSE(parse_percent("20").has_value());
  EXPECT_FALSE(parse_percent("%").has_value());
  EXPECT_FALSE(parse_percent("").has_value());
  EXPECT_FALSE(parse_percent("-1%").has_value());
  EXPECT_FALSE(parse_percent("20%%").has_value());
  EXPECT_FALSE(parse_percent("x%").has_value());
}

TEST(ParseSocketAddressTest, Ipv4) {
  std::string err;
  auto a = parse_socket_address("127.0.0.1:8080", false, &err);
  ASSERT_TRUE(a.has_value()) << err;
  EXPECT_EQ(a->ip, "127.0.0.1");
  EXPECT_EQ(a->port, 8080);
  EXPECT_FALSE(a->v6);
  EXPECT_EQ(a->to_string(), "127.0.0.1:8080");

  auto any = parse_socket_address("0.0.0.0:0", false, &err);
  ASSERT_TRUE(any.has_value()) << err;
  EXPECT_EQ(any->port, 0);
}

TEST(ParseSocketAddressTest, Ipv6InBrackets) {
  std::string err;
  auto a = parse_socket_address("[::1]:80", false, &err);
  ASSERT_TRUE(a.has_value()) << err;
  EXPECT_EQ(a->ip, "::1");
  EXPECT_EQ(a->port, 80);
  EXPECT_TRUE(a->v6);
  EXPECT_EQ(a->to_string(), "[::1]:80");
}

TEST(ParseSocketAddressTest, RejectsBadPort) {
  for (const char* text : {"127.0.0.1:65536", "127.0.0.1:99999", "127.0.0.1:", "127.0.0.1:http",
                           "127.0.0.1:-1", "[::1]:", "[::1]:8x"}) {
    std::string err;
    EXPECT_FALSE(parse_socket_address(text, false, &err).has_value()) << text;
    EXPECT_NE(err.find("invalid port"), std::string::npos) << text << ": " << err;
  }
  std::string err;
  EXPECT_TRUE(parse_socket_address("127.0.0.1:65535", false, &err).has_value()) << err;
}

TEST(ParseSocketAddressTest, RejectsMissingPort) {
  for (const char* text : {"127.0.0.1", "[::1]", "::1", "::1:80", ""}) {
    std::string err;
    EXPECT_FALSE(parse_socket_address(text, true, &err).has_value()) << text;
    EXPECT_FALSE(err.empty()) << text;
  }
}

TEST(ParseSocketAddressTest, RejectsHostnameWhenNotAllowed) {
  std::string err;
  EXPECT_FALSE(parse_socket_address("localhost:80", false, &err).has_value());
  EXPECT_EQ(err, "'localhost' is not an IP address");
}

TEST(ParseSocketAddressTest, ResolvesHostnameWhenAllowed) {
  std::string err;
  auto a = parse_socket_address("localhost:80", true, &err);
  ASSERT_TRUE(a.has_value()) << err;
  EXPECT_EQ(a->port, 80);
  // Resolved to a numeric loopback address, not kept as a name.
  EXPECT_TRUE(a->ip == "127.0.0.1" || a->ip == "::1") << a->ip;
  EXPECT_EQ(a->v6, a->ip == "::1");
}

TEST(ParseSocketAddressTest, RejectsEmptyHostEvenWithHostnames) {
  std::string err;
  EXPECT_FALSE(parse_socket_address(":80", true, &err).has_value());
  EXPECT_FALSE(err.empty());
}

TEST(ParseIpTest, Ipv4IsStoredV4Mapped) {
  auto a = ip("10.1.2.3");
  std::array<uint8_t, 16> want{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3};
  EXPECT_EQ(a, want);
  EXPECT_FALSE(parse_ip("10.1.2").has_value());
  EXPECT_FALSE(parse_ip("example.com").has_value());
}

TEST(ParseCidrTest, Ipv4Network) {
  auto c = parse_cidr("10.0.0.0/8");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->prefix, 96 + 8);
  EXPECT_TRUE(c->contains(ip("10.1.2.3")));
  EXPECT_TRUE(c->contains(ip("10.255.255.255")));
  EXPECT_FALSE(c->contains(ip("11.0.0.1")));
  EXPECT_FALSE(c->contains(ip("9.255.255.255")));
  EXPECT_FALSE(c->contains(ip("::1")));
}

TEST(ParseCidrTest, Ipv4NetworkWithHostBitsSetIsNormalised) {
  auto c = parse_cidr("192.168.1.77/24");
  ASSERT_TRUE(c.has_value());
  EXPECT_TRUE(c->contains(ip("192.168.1.1")));
  EXPECT_TRUE(c->contains(ip("192.168.1.254")));
  EXPECT_FALSE(c->contains(ip("192.168.2.1")));
}

TEST(ParseCidrTest, NonByteAlignedPrefix) {
  auto c = parse_cidr("172.16.0.0/12");
  ASSERT_TRUE(c.has_value());
  EXPECT_TRUE(c->contains(ip("172.31.255.255")));
  EXPECT_FALSE(c->contains(ip("172.32.0.0")));
  EXPECT_FALSE(c->contains(ip("172.15.255.255")));
}

TEST(ParseCidrTest, Ipv6Loopback) {
  auto c = parse_cidr("::1/128");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->prefix, 128);
  EXPECT_TRUE(c->contains(ip("::1")));
  EXPECT_FALSE(c->contains(ip("::2")));
  EXPECT_FALSE(c->contains(ip("127.0.0.1")));
}

TEST(ParseCidrTest, Ipv6Network) {
  auto c = parse_cidr("2001:db8::/32");
  ASSERT_TRUE(c.has_value());
  EXPECT_TRUE(c->contains(ip("2001:db8:1::5")));
  EXPECT_FALSE(c->contains(ip("2001:db9::1")));
}

TEST(ParseCidrTest, BareAddressIsASingleHost) {
  auto v4 = parse_cidr("192.168.1.1");
  ASSERT_TRUE(v4.has_value());
  EXPECT_EQ(v4->prefix, 128);
  EXPECT_TRUE(v4->contains(ip("192.168.1.1")));
  EXPECT_FALSE(v4->contains(ip("192.168.1.2")));

  auto v6 = parse_cidr("::1");
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->prefix, 128);
  EXPECT_TRUE(v6->contains(ip("::1")));
  EXPECT_FALSE(v6->contains(ip("::")));
}

TEST(ParseCidrTest, ZeroPrefixContainsEverything) {
  auto c = parse_cidr("0.0.0.0/0");
  ASSERT_TRUE(c.has_value());
  EXPECT_TRUE(c->contains(ip("1.2.3.4")));
  EXPECT_TRUE(c->contains(ip("255.255.255.255")));
}

TEST(ParseCidrTest, RejectsMalformed) {
  for (const char* text : {"10.0.0.0/33", "::1/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8x",
                           "/8", "", "10.0.0/8", "example.com/8"}) {
    EXPECT_FALSE(parse_cidr(text).has_value()) << text;
  }
}

}  // namespace
}  // namespace gatehouse::config
