// grpc/health.h: grpc.health.v1's request written and its answer read by hand, checked against
// the bytes protobuf's encoding gives (protoc --encode would print the same).
#include "grpc/health.h"

#include <gtest/gtest.h>

namespace gatehouse::grpc {
namespace {

using namespace std::string_literals;

TEST(GrpcHealth, RequestForTheServerAndForAService) {
  EXPECT_EQ(health_check_request(""), "\0\0\0\0\0"s);
  EXPECT_EQ(health_check_request("shop.Reviews"), "\0\0\0\0\x0e\x0a\x0cshop.Reviews"s);
}

TEST(GrpcHealth, ServingOnlyWithStatusOneAndAnOkCall) {
  const http::HeaderList ok = {{"content-type", "application/grpc"}, {"grpc-status", "0"}};
  const std::string serving = "\0\0\0\0\x02\x08\x01"s;
  EXPECT_TRUE(health_check_serving(serving, ok));
  EXPECT_FALSE(health_check_serving("\0\0\0\0\x02\x08\x02"s, ok)) << "NOT_SERVING";
  EXPECT_FALSE(health_check_serving("\0\0\0\0\x00"s, ok)) << "UNKNOWN (the default, 0)";
  EXPECT_FALSE(health_check_serving(serving, {{"grpc-status", "5"}})) << "NOT_FOUND: no service";
  EXPECT_FALSE(health_check_serving(serving, {})) << "no status: the call did not end well";
  EXPECT_FALSE(health_check_serving("\x01\0\0\0\x02\x08\x01"s, ok)) << "compressed";
  EXPECT_FALSE(health_check_serving("\0\0\0\0\x03\x08\x01"s, ok)) << "cut short";
  // An unknown field (field 2, length-delimited) before the status is skipped.
  EXPECT_TRUE(health_check_serving("\0\0\0\0\x06\x12\x02hi\x08\x01"s, ok));
  EXPECT_FALSE(health_check_serving("\0\0\0\0\x02\x08\x81"s, ok)) << "a varint cut short";
}

}  // namespace
}  // namespace gatehouse::grpc
