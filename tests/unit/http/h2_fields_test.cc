#include "http/h2_fields.h"

#include <gtest/gtest.h>

namespace gatehouse::http {
namespace {

TEST(H2ConnectionSpecificTest, TheFieldsRfc9113ForbidsInAnyCase) {
  for (std::string_view name : {"connection", "Connection", "keep-alive", "KEEP-ALIVE",
                                "proxy-connection", "Proxy-Connection", "transfer-encoding",
                                "Transfer-Encoding", "upgrade", "Upgrade", "te", "TE"}) {
    EXPECT_TRUE(h2_connection_specific(name)) << name;
  }
}

TEST(H2ConnectionSpecificTest, OtherFieldsOfTheSameLengthsPass) {
  for (std::string_view name :
       {"", "t", "tf", "tee", "upgradE-", "upgrades", "connectiom", "keep-alivf", "content-length",
        "proxy-connectiom", "transfer-encodinh", "x-request-id", "host", "cookie"}) {
    EXPECT_FALSE(h2_connection_specific(name)) << name;
  }
}

}  // namespace
}  // namespace gatehouse::http
