// grpc::status (src/grpc/status.h): which requests are gRPC calls, the gateway's statuses as gRPC
// codes, grpc-message's percent-encoding, grpc-timeout both ways, and the trailers-only answer.
#include "grpc/status.h"

#include <gtest/gtest.h>

#include <chrono>

namespace gatehouse::grpc {
namespace {

using namespace std::chrono_literals;

TEST(GrpcStatus, ContentTypeOfACall) {
  EXPECT_TRUE(is_grpc_content_type("application/grpc"));
  EXPECT_TRUE(is_grpc_content_type("application/grpc+proto"));
  EXPECT_TRUE(is_grpc_content_type("Application/GRPC;charset=utf-8"));
  EXPECT_FALSE(is_grpc_content_type("application/grpc-web"));
  EXPECT_FALSE(is_grpc_content_type("application/grpc-web-text+proto"));
  EXPECT_FALSE(is_grpc_content_type("application/grpcx"));
  EXPECT_FALSE(is_grpc_content_type("application/json"));
  EXPECT_FALSE(is_grpc_content_type(""));
}

TEST(GrpcStatus, AnswerContentTypeOfACall) {
  EXPECT_EQ(answer_content_type("application/grpc+proto"), "application/grpc");
  EXPECT_EQ(answer_content_type("application/grpc-web+proto"), "application/grpc-web");
  EXPECT_EQ(answer_content_type("application/grpc-web"), "application/grpc-web");
  EXPECT_EQ(answer_content_type("application/grpc-web-text+proto"), "application/grpc-web-text");
  EXPECT_EQ(answer_content_type("application/grpc-webx"), "");
  EXPECT_EQ(answer_content_type("text/plain"), "");
}

TEST(GrpcStatus, GatewayStatusesAsCodes) {
  EXPECT_EQ(code_for_gateway_status(401), Code::kUnauthenticated);
  EXPECT_EQ(code_for_gateway_status(403), Code::kPermissionDenied);
  EXPECT_EQ(code_for_gateway_status(404), Code::kUnimplemented);
  EXPECT_EQ(code_for_gateway_status(429), Code::kResourceExhausted);
  EXPECT_EQ(code_for_gateway_status(413), Code::kResourceExhausted);
  EXPECT_EQ(code_for_gateway_status(502), Code::kUnavailable);
  EXPECT_EQ(code_for_gateway_status(503), Code::kUnavailable);
  EXPECT_EQ(code_for_gateway_status(504), Code::kDeadlineExceeded);
  EXPECT_EQ(code_for_gateway_status(400), Code::kInternal);
  EXPECT_EQ(code_for_gateway_status(418), Code::kUnknown);
  EXPECT_EQ(code_name(Code::kResourceExhausted), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(code_from_config_name("unavailable"), Code::kUnavailable);
  EXPECT_EQ(code_from_config_name("deadline_exceeded"), Code::kDeadlineExceeded);
  EXPECT_FALSE(code_from_config_name("unavailable2"));
}

TEST(GrpcStatus, MessagePercentEncoded) {
  std::string out;
  append_percent_encoded(&out, "50% off\tnow \xE2\x98\xBA");
  EXPECT_EQ(out, "50%25 off%09now %E2%98%BA");
}

TEST(GrpcStatus, TimeoutParsed) {
  EXPECT_EQ(parse_timeout("100m"), std::chrono::milliseconds(100));
  EXPECT_EQ(parse_timeout("5S"), std::chrono::seconds(5));
  EXPECT_EQ(parse_timeout("2H"), std::chrono::hours(2));
  EXPECT_EQ(parse_timeout("3M"), std::chrono::minutes(3));
  EXPECT_EQ(parse_timeout("7u"), std::chrono::microseconds(7));
  EXPECT_EQ(parse_timeout("99999999n"), std::chrono::nanoseconds(99999999));
  EXPECT_FALSE(parse_timeout("123456789n")) << "more than 8 digits";
  EXPECT_FALSE(parse_timeout("m"));
  EXPECT_FALSE(parse_timeout("10"));
  EXPECT_FALSE(parse_timeout("10s")) << "seconds are S";
  EXPECT_FALSE(parse_timeout("-1m"));
}

TEST(GrpcStatus, TimeoutFormattedRoundedUp) {
  EXPECT_EQ(format_timeout(std::chrono::nanoseconds(1500)), "1500n");
  EXPECT_EQ(format_timeout(std::chrono::milliseconds(250)), "250000u");
  EXPECT_EQ(format_timeout(std::chrono::seconds(1)), "1000000u");
  EXPECT_EQ(format_timeout(std::chrono::nanoseconds(100'000'001)), "100001u");
  EXPECT_EQ(format_timeout(std::chrono::hours(50)), "180000S");
  EXPECT_EQ(format_timeout(std::chrono::nanoseconds(0)), "1n");
  for (auto d : {std::chrono::nanoseconds(123'456'789'123), std::chrono::nanoseconds(7)}) {
    auto back = parse_timeout(format_timeout(d));
    ASSERT_TRUE(back);
    EXPECT_GE(*back, d);
  }
}

TEST(GrpcStatus, TrailersOnlyAnswer) {
  http::ErrorResponse e{429, "rate_limited", "rate limit 1/s exceeded: 100%", {}};
  e.headers.emplace_back("Retry-After", "1");
  make_trailers_only(&e, "application/grpc");
  EXPECT_EQ(e.status, 200);
  ASSERT_TRUE(e.body);
  EXPECT_TRUE(e.body->empty());
  auto field = [&](std::string_view name) {
    for (auto& [n, v] : e.headers)
      if (n == name) return v;
    return std::string("<none>");
  };
  EXPECT_EQ(field("grpc-status"), "8");
  EXPECT_EQ(field("grpc-message"), "rate limit 1/s exceeded: 100%25");
  EXPECT_EQ(field("content-type"), "application/grpc");
  EXPECT_EQ(field("Retry-After"), "1");
}

TEST(GrpcStatus, CodesAsHttpStatuses) {
  EXPECT_EQ(http_status_for(Code::kOk), 200);
  EXPECT_EQ(http_status_for(Code::kCancelled), 499);
  EXPECT_EQ(http_status_for(Code::kInvalidArgument), 400);
  EXPECT_EQ(http_status_for(Code::kNotFound), 404);
  EXPECT_EQ(http_status_for(Code::kAlreadyExists), 409);
  EXPECT_EQ(http_status_for(Code::kResourceExhausted), 429);
  EXPECT_EQ(http_status_for(Code::kUnimplemented), 501);
  EXPECT_EQ(http_status_for(Code::kUnavailable), 503);
  EXPECT_EQ(http_status_for(Code::kDeadlineExceeded), 504);
  EXPECT_EQ(http_status_for(Code::kUnauthenticated), 401);
  EXPECT_EQ(http_status_for(Code::kDataLoss), 500);
}

TEST(GrpcStatus, TrailersOnlyStatusOfAHead) {
  http::ResponseHead head;
  head.headers.push_back({"content-type", "application/grpc"});
  EXPECT_FALSE(trailers_only_status(head)) << "a head that starts messages";
  head.headers.push_back({"grpc-status", "14"});
  EXPECT_EQ(trailers_only_status(head), Code::kUnavailable);
  head.headers.back().value = "17";
  EXPECT_FALSE(trailers_only_status(head)) << "not a code";
  head.headers.back().value = "x";
  EXPECT_FALSE(trailers_only_status(head));
}

TEST(GrpcStatus, MessagesHeldToALimitPieceByPiece) {
  using namespace std::string_literals;
  // Two messages, 3 and 6 bytes long, fed a byte at a time and whole.
  const std::string stream = "\0\0\0\0\x03"s + "abc" + "\0\0\0\0\x06"s + "abcdef";
  MessageScanner whole;
  EXPECT_TRUE(whole.feed(stream, 6));
  MessageScanner bytewise;
  for (char c : stream) ASSERT_TRUE(bytewise.feed(std::string_view(&c, 1), 6));
  MessageScanner strict;
  EXPECT_FALSE(strict.feed(stream, 5)) << "the second message is 6 bytes";
  EXPECT_EQ(strict.too_long(), 6u);
  EXPECT_EQ(strict.kept(), 8u) << "the first message, whole, goes on";
  // The second message's prefix split over two pieces: none of the second piece is kept.
  MessageScanner split;
  EXPECT_TRUE(split.feed(stream.substr(0, 10), 5));
  EXPECT_FALSE(split.feed(stream.substr(10), 5));
  EXPECT_EQ(split.kept(), 0u);
  // A length that says 4 GiB - 1 is caught from its prefix alone.
  MessageScanner huge;
  EXPECT_FALSE(huge.feed("\0\xff\xff\xff\xff"s, 1u << 20));
  EXPECT_EQ(huge.too_long(), 0xffffffffu);
}

}  // namespace
}  // namespace gatehouse::grpc
