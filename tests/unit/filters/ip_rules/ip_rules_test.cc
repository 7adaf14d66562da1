#include "filters/ip_rules/ip_rules.h"

#include <gtest/gtest.h>

namespace gatehouse::filters {
namespace {

std::vector<config::Cidr> cidrs(std::initializer_list<const char*> list) {
  std::vector<config::Cidr> out;
  for (const char* s : list) out.push_back(*config::parse_cidr(s));
  return out;
}

TEST(IpRules, AllowListAdmitsOnlyItsNetworks) {
  IpRules r(cidrs({"10.0.0.0/8", "fd00::/8"}), {});
  EXPECT_TRUE(r.admits("10.1.2.3"));
  EXPECT_TRUE(r.admits("fd12::1"));
  EXPECT_FALSE(r.admits("11.0.0.1"));
  EXPECT_FALSE(r.admits("::1"));
  EXPECT_FALSE(r.admits("not-an-address")) << "an address that does not parse is refused";
}

TEST(IpRules, DenyWinsOverAllow) {
  IpRules r(cidrs({"10.0.0.0/8"}), cidrs({"10.6.6.0/24"}));
  EXPECT_TRUE(r.admits("10.6.7.1"));
  EXPECT_FALSE(r.admits("10.6.6.9"));
  IpRules deny_only({}, cidrs({"192.0.2.1", "2001:db8::/32"}));
  EXPECT_FALSE(deny_only.admits("192.0.2.1"));
  EXPECT_TRUE(deny_only.admits("192.0.2.2"));
  EXPECT_FALSE(deny_only.admits("2001:db8::42"));
  EXPECT_TRUE(deny_only.admits("2001:db9::42"));
}

TEST(IpRules, Ipv4MappedIpv6IsTheSameAddress) {
  IpRules r(cidrs({"127.0.0.0/8"}), {});
  EXPECT_TRUE(r.admits("::ffff:127.0.0.1"));
}

TEST(IpRules, RespondsWith403) {
  IpRules r(cidrs({"10.0.0.0/8"}), {});
  RequestContext ctx;
  ctx.client_ip = "192.168.1.1";
  EXPECT_EQ(r.on_request(ctx), FilterStatus::kRespond);
  EXPECT_EQ(ctx.reply.status, 403);
  EXPECT_EQ(ctx.reply.code, "forbidden");
  ctx = {};
  ctx.client_ip = "10.0.0.1";
  EXPECT_EQ(r.on_request(ctx), FilterStatus::kContinue);
}

}  // namespace
}  // namespace gatehouse::filters
