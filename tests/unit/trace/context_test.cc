// W3C Trace Context level 1 (traceparent 3.2, tracestate 3.3) and B3, as the specs' examples and
// edge cases have them.
#include "trace/context.h"

#include <gtest/gtest.h>

#include <string>

namespace gatehouse::trace {
namespace {

std::string hex(const TraceId& id) {
  std::string s;
  append_hex(id, &s);
  return s;
}
std::string hex(const SpanId& id) {
  std::string s;
  append_hex(id, &s);
  return s;
}

constexpr const char* kValid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(Traceparent, TheSpecsExampleIsRead) {
  auto p = parse_traceparent(kValid);
  ASSERT_TRUE(p);
  EXPECT_EQ(hex(p->trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(hex(p->span_id), "00f067aa0ba902b7");
  EXPECT_EQ(p->sampled, true);
  auto unsampled = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  ASSERT_TRUE(unsampled);
  EXPECT_EQ(unsampled->sampled, false);
}

TEST(Traceparent, OnlyTheSampledBitOfTheFlagsCounts) {
  auto p = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->sampled, true);
  p = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->sampled, false);
}

TEST(Traceparent, InvalidValuesAreRefused) {
  for (const char* bad : {
           "",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",     // short
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",   // 00 with more
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  // 00 with a field
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // the invalid version
           "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // not hex
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",    // uppercase trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",    // uppercase parent id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",    // uppercase flags
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",    // all-zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",    // all-zero parent id
           "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // wrong separator
           "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",    // misplaced dash
           " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // leading space
       }) {
    EXPECT_FALSE(parse_traceparent(bad)) << bad;
  }
}

TEST(Traceparent, AFutureVersionIsReadAsVersion00) {
  // 3.2.4: a higher version is parsed as 00, its further fields ignored.
  auto p =
      parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future");
  ASSERT_TRUE(p);
  EXPECT_EQ(hex(p->trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_TRUE(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  // ... but the fields it shares with 00 must still be whole: a longer value needs a '-' at 55.
  EXPECT_FALSE(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"));
}

TEST(Traceparent, WrittenAsVersion00WithTheSpanAtItsPlace) {
  auto p = parse_traceparent(kValid);
  ASSERT_TRUE(p);
  std::string out;
  append_traceparent(p->trace_id, p->span_id, false, &out);
  EXPECT_EQ(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  EXPECT_EQ(out.substr(kTraceparentSpanAt, 16), "00f067aa0ba902b7");
  std::string b3;
  append_b3(p->trace_id, p->span_id, true, &b3);
  EXPECT_EQ(b3, "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1");
  EXPECT_EQ(b3.substr(kB3SpanAt, 16), "00f067aa0ba902b7");
}

std::string state(std::string_view in, bool* ok = nullptr) {
  std::string out;
  const bool valid = normalize_tracestate(in, &out);
  if (ok) *ok = valid;
  return valid ? out : "<dropped>";
}

TEST(Tracestate, MembersAreTrimmedAndEmptyOnesDropped) {
  EXPECT_EQ(state("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
  EXPECT_EQ(state(" rojo=1 ,\t, congo=2,,"), "rojo=1,congo=2");
  EXPECT_EQ(state(""), "");
}

TEST(Tracestate, KeysFollowTheGrammar) {
  EXPECT_EQ(state("a-b_c*d/e=1"), "a-b_c*d/e=1");
  EXPECT_EQ(state("tenant@system=1"), "tenant@system=1");
  EXPECT_EQ(state("0tenant@sys=1"), "0tenant@sys=1");      // a tenant may start with a digit
  EXPECT_EQ(state("Rojo=1"), "<dropped>");                 // uppercase
  EXPECT_EQ(state("0rojo=1"), "<dropped>");                // a simple key starts with a letter
  EXPECT_EQ(state("t@0sys=1"), "<dropped>");               // a system starts with a letter
  EXPECT_EQ(state("t@systemnametoolong=1"), "<dropped>");  // system: 14 characters at most
  EXPECT_EQ(state("rojo"), "<dropped>");                   // no '='
  EXPECT_EQ(state("rojo="), "<dropped>");                  // an empty value
  EXPECT_EQ(state("rojo=a b"), "rojo=a b");                // inner spaces are fine ...
  EXPECT_EQ(state("rojo=a=b"), "<dropped>");               // ... '=' is not
  EXPECT_EQ(state(std::string(257, 'k') + "=1"), "<dropped>");
  EXPECT_EQ(state("k=" + std::string(257, 'v')), "<dropped>");
}

TEST(Tracestate, ARepeatedKeyOrMoreThan32MembersDropsTheWholeHeader) {
  EXPECT_EQ(state("rojo=1,congo=2,rojo=3"), "<dropped>");
  std::string many;
  for (int i = 0; i < 32; ++i) many.append("k").append(std::to_string(i)).append("=v,");
  EXPECT_NE(state(many), "<dropped>");
  EXPECT_EQ(state(many + "k32=v"), "<dropped>");
}

TEST(Tracestate, OverLongListsLoseLongMembersFirstThenFromTheEnd) {
  // 3.3.1.5: past 512 characters, members over 128 characters go first.
  const std::string long_member = "long=" + std::string(200, 'x');
  std::string in = "a=" + std::string(150, '1') + "," + long_member +
                   ",b=" + std::string(150, '2') + ",c=" + std::string(150, '3');
  std::string out = state(in);
  EXPECT_EQ(out.find("long="), std::string::npos);
  EXPECT_EQ(out.find("a="), std::string::npos) << "a member over 128 characters goes too";
  // Members of at most 128 characters are then dropped from the end until it fits.
  std::string small;
  for (int i = 0; i < 10; ++i)
    small.append(i ? "," : "").append("k").append(std::to_string(i)).append("=").append(100, 'v');
  out = state(small);
  EXPECT_LE(out.size(), 512u);
  EXPECT_EQ(out.substr(0, 3), "k0=");
  EXPECT_EQ(out.find("k9="), std::string::npos);
  EXPECT_NE(out.find("k3="), std::string::npos);
}

TEST(B3, SingleHeaderForms) {
  auto p = parse_b3("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90");
  ASSERT_TRUE(p);
  EXPECT_EQ(hex(p->trace_id), "80f198ee56343ba864fe8b2a57d3eff7");
  EXPECT_EQ(hex(p->span_id), "e457b5a2e4d86bd1");
  EXPECT_EQ(p->sampled, true);
  // A 64-bit trace id is the low half of a 128-bit one.
  p = parse_b3("64fe8b2a57d3eff7-e457b5a2e4d86bd1-0");
  ASSERT_TRUE(p);
  EXPECT_EQ(hex(p->trace_id), "000000000000000064fe8b2a57d3eff7");
  EXPECT_EQ(p->sampled, false);
  // No sampling state: the decision is the receiver's.
  p = parse_b3("64fe8b2a57d3eff7-e457b5a2e4d86bd1");
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->sampled.has_value());
  // Debug means sampled.
  p = parse_b3("64fe8b2a57d3eff7-e457b5a2e4d86bd1-d");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->sampled, true);
  // A decision alone carries no ids.
  p = parse_b3("0");
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->has_ids);
  EXPECT_EQ(p->sampled, false);
}

TEST(B3, InvalidSingleHeaders) {
  for (const char* bad : {"", "2", "x", "64fe8b2a57d3eff7", "64fe8b2a57d3eff7-",
                          "64fe8b2a57d3eff-e457b5a2e4d86bd1",           // 15 digits
                          "64FE8B2A57D3EFF7-e457b5a2e4d86bd1",          // uppercase
                          "0000000000000000-e457b5a2e4d86bd1",          // zero trace id
                          "64fe8b2a57d3eff7-0000000000000000",          // zero span id
                          "64fe8b2a57d3eff7-e457b5a2e4d86bd1-2",        // bad sampling state
                          "64fe8b2a57d3eff7-e457b5a2e4d86bd1-1-zz"}) {  // bad parent id
    EXPECT_FALSE(parse_b3(bad)) << bad;
  }
}

TEST(B3, MultiHeaders) {
  auto p = parse_b3_multi("463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312", "1", "");
  ASSERT_TRUE(p);
  EXPECT_EQ(hex(p->trace_id), "463ac35c9f6413ad48485a3953bb6124");
  EXPECT_EQ(p->sampled, true);
  p = parse_b3_multi("463ac35c9f6413ad", "a2fb4a1d1a96d312", "false", "");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->sampled, false);
  p = parse_b3_multi("463ac35c9f6413ad", "a2fb4a1d1a96d312", "0", "1");  // debug wins
  ASSERT_TRUE(p);
  EXPECT_EQ(p->sampled, true);
  EXPECT_FALSE(parse_b3_multi("463ac35c9f6413ad", "", "1", ""));  // a trace id needs a span id
  EXPECT_FALSE(parse_b3_multi("463ac35c9f6413ad", "a2fb4a1d1a96d312", "yes", ""));
  p = parse_b3_multi("", "", "0", "");
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->has_ids);
}

TEST(Sampling, TheRatioDecidesByTheTraceIdsLowBits) {
  TraceId low{}, high{};
  high.fill(0xff);
  low[15] = 1;
  EXPECT_TRUE(sampled_by_ratio(low, 0.01));
  EXPECT_FALSE(sampled_by_ratio(high, 0.99));
  EXPECT_TRUE(sampled_by_ratio(high, 1.0));
  EXPECT_FALSE(sampled_by_ratio(low, 0.0));
  // Over many ids, the share sampled is the ratio's.
  int sampled = 0;
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 100000; ++i) {
    TraceId id{};
    for (size_t b = 0; b < 16; ++b) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      id[b] = static_cast<uint8_t>(x);
    }
    sampled += sampled_by_ratio(id, 0.25);
  }
  EXPECT_NEAR(sampled / 100000.0, 0.25, 0.01);
}

}  // namespace
}  // namespace gatehouse::trace
