#include "filters/acl/acl.h"

#include <gtest/gtest.h>

namespace gatehouse::filters {
namespace {

const Identity kApp{"mobile-app", {"clients"}, "clients"};
const Identity kPartner{"partner", {"partners", "beta"}, "partners, beta"};
const Identity kNobody{"nobody", {}, ""};

TEST(Acl, AllowGroups) {
  Acl acl({.allow_groups = {"clients"}});
  EXPECT_TRUE(acl.admits(kApp));
  EXPECT_FALSE(acl.admits(kPartner));
  EXPECT_FALSE(acl.admits(kNobody));
}

TEST(Acl, AllowConsumersOrGroups) {
  Acl acl({.allow_consumers = {"nobody"}, .allow_groups = {"beta"}});
  EXPECT_FALSE(acl.admits(kApp));
  EXPECT_TRUE(acl.admits(kPartner));
  EXPECT_TRUE(acl.admits(kNobody));
}

TEST(Acl, DenyWins) {
  Acl acl({.allow_groups = {"clients", "partners"}, .deny_groups = {"beta"}});
  EXPECT_TRUE(acl.admits(kApp));
  EXPECT_FALSE(acl.admits(kPartner));
  Acl deny_only({.deny_consumers = {"mobile-app"}});
  EXPECT_FALSE(deny_only.admits(kApp));
  EXPECT_TRUE(deny_only.admits(kPartner));
}

TEST(Acl, NoConsumerIsRefused) {
  Acl acl({.deny_consumers = {"x"}});
  RequestContext ctx;
  EXPECT_EQ(acl.on_request(ctx), FilterStatus::kRespond);
  EXPECT_EQ(ctx.reply.status, 403);
  ctx = {};
  ctx.consumer = &kApp;
  EXPECT_EQ(acl.on_request(ctx), FilterStatus::kContinue);
}

}  // namespace
}  // namespace gatehouse::filters
