#include "observe/access_log.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "observe/request_id.h"

namespace gatehouse::observe {
namespace {

AccessRecord sample() {
  AccessRecord r;
  // 2026-11-28T00:26:09.350Z
  r.start = std::chrono::system_clock::time_point(std::chrono::milliseconds(1795825569350LL));
  r.request_id = "abc";
  r.client = "127.0.0.1";
  r.method = "GET";
  r.protocol = "HTTP/2";
  r.path = "/x?y=\"1\"";
  r.route = "products";
  r.upstream = "up";
  r.target = "127.0.0.1:9001";
  r.status = 200;
  r.bytes_in = 87;
  r.bytes_out = 517;
  r.total_ms = 5.5984;
  r.upstream_ms = 0.0004;
  return r;
}

constexpr uint32_t kAll = config::AccessLog{}.fields;

TEST(AccessLogTest, FormatsOneJsonLineWithEveryField) {
  std::string out;
  format_access_record(sample(), kAll, &out);
  EXPECT_EQ(
      out,
      "{\"time\":\"2026-11-28T00:26:09.350Z\",\"request_id\":\"abc\",\"client\":\"127.0.0.1\","
      "\"method\":\"GET\",\"protocol\":\"HTTP/2\",\"path\":\"/"
      "x?y=\\\"1\\\"\",\"route\":\"products\",\"upstream\":\"up\","
      "\"target\":\"127.0.0.1:9001\",\"status\":200,\"bytes_in\":87,\"bytes_out\":517,"
      "\"duration_ms\":5.598,\"upstream_ms\":0.000}\n");
}

TEST(AccessLogTest, OmitsUpstreamTimeWithoutAnUpstreamAndAddsTheError) {
  auto r = sample();
  r.upstream_ms = -1;
  r.error = "no_route";
  r.total_ms = 1234.5675;
  std::string out;
  format_access_record(r, kAll, &out);
  EXPECT_EQ(out.find("upstream_ms"), std::string::npos);
  EXPECT_NE(out.find(",\"duration_ms\":1234.568,\"error\":\"no_route\"}\n"), std::string::npos)
      << out;
}

TEST(AccessLogTest, ACompositesLegsGoAsTheArrayTheyAre) {
  auto r = sample();
  r.legs = R"([{"leg":"a","status":200,"ms":1.500}])";
  std::string out;
  format_access_record(r, kAll, &out);
  EXPECT_NE(out.find(R"(,"legs":[{"leg":"a","status":200,"ms":1.500}]})"), std::string::npos)
      << out;
}

TEST(AccessLogTest, TheUpstreamCallsTimesRetriesTlsAndConsumer) {
  auto r = sample();
  r.tls_version = "TLSv1.3";
  r.upstream_connect_ms = 0.25;
  r.upstream_total_ms = 3.5;
  r.retries = 2;
  r.consumer = "mobile-app";
  r.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  r.span_id = "00f067aa0ba902b7";
  std::string out;
  format_access_record(r, kAll, &out);
  EXPECT_NE(
      out.find(
          R"("request_id":"abc","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","client")"),
      std::string::npos)
      << out;
  EXPECT_NE(out.find(R"("protocol":"HTTP/2","tls_version":"TLSv1.3","path")"), std::string::npos)
      << out;
  EXPECT_NE(
      out.find(
          R"("duration_ms":5.598,"upstream_connect_ms":0.250,"upstream_ms":0.000,"upstream_total_ms":3.500,"retries":2,"consumer":"mobile-app"})"),
      std::string::npos)
      << out;
}

TEST(AccessLogTest, OnlyTheConfiguredFieldsInTheirOwnOrder) {
  using F = config::AccessLog::Field;
  const uint32_t fields = 1u << F::kStatus | 1u << F::kRequestId | 1u << F::kDurationMs;
  std::string out;
  format_access_record(sample(), fields, &out);
  EXPECT_EQ(out, "{\"request_id\":\"abc\",\"status\":200,\"duration_ms\":5.598}\n");
  out.clear();
  format_access_record(sample(), 0, &out);
  EXPECT_EQ(out, "{}\n");
}

TEST(AccessLogTest, AppendsToWhatIsThere) {
  std::string out = "previous\n";
  format_access_record(sample(), kAll, &out);
  format_access_record(sample(), kAll, &out);
  EXPECT_EQ(out.rfind("previous\n{", 0), 0u);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 3);
}

TEST(RequestIdTest, AcceptsSafeIdsOnly) {
  EXPECT_TRUE(valid_request_id("abc-123.DEF_4:5"));
  EXPECT_TRUE(valid_request_id(std::string(128, 'a')));
  EXPECT_FALSE(valid_request_id(std::string(129, 'a')));
  EXPECT_FALSE(valid_request_id(""));
  EXPECT_FALSE(valid_request_id("a b"));
  EXPECT_FALSE(valid_request_id("<script>"));
  EXPECT_FALSE(valid_request_id("a\"b"));
}

TEST(RequestIdTest, GeneratesDistinctHexIds) {
  upstream::Random rng(42);
  std::string a, b;
  generate_request_id(rng, &a);
  generate_request_id(rng, &b);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
  EXPECT_TRUE(valid_request_id(a));
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
}

}  // namespace
}  // namespace gatehouse::observe
