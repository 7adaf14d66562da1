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

TEST(AccessLogTest, FormatsOneJsonLineWithEveryField) {
  std::string out;
  format_access_record(sample(), &out);
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
  format_access_record(r, &out);
  EXPECT_EQ(out.find("upstream_ms"), std::string::npos);
  EXPECT_NE(out.find(",\"duration_ms\":1234.568,\"error\":\"no_route\"}\n"), std::string::npos)
      << out;
}

TEST(AccessLogTest, ACompositesLegsGoAsTheArrayTheyAre) {
  auto r = sample();
  r.legs = R"([{"leg":"a","status":200,"ms":1.500}])";
  std::string out;
  format_access_record(r, &out);
  EXPECT_NE(out.find(R"(,"legs":[{"leg":"a","status":200,"ms":1.500}]})"), std::string::npos)
      << out;
}

TEST(AccessLogTest, AppendsToWhatIsThere) {
  std::string out = "previous\n";
  format_access_record(sample(), &out);
  format_access_record(sample(), &out);
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
