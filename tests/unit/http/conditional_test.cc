#include "http/conditional.h"

#include <gtest/gtest.h>

namespace gatehouse::http {
namespace {

using std::chrono::seconds;
using Time = StoredValidators::Time;
using Lines = std::vector<std::string_view>;

EntityTag tag(std::string_view s) { return parse_entity_tag(s).value(); }

TEST(EntityTag, Parsing) {
  auto t = parse_entity_tag("\"xyzzy\"");
  ASSERT_TRUE(t);
  EXPECT_FALSE(t->weak);
  EXPECT_EQ(t->opaque, "\"xyzzy\"");
  t = parse_entity_tag(" W/\"xyzzy\" ");
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->weak);
  EXPECT_EQ(t->opaque, "\"xyzzy\"");
  EXPECT_TRUE(parse_entity_tag("\"\""));  // an empty opaque tag is allowed
  EXPECT_FALSE(parse_entity_tag("xyzzy")) << "unquoted";
  EXPECT_FALSE(parse_entity_tag("w/\"x\"")) << "the weak prefix is case-sensitive";
  EXPECT_FALSE(parse_entity_tag("\"a\"b\""));
  EXPECT_FALSE(parse_entity_tag("\"a b\"")) << "no space inside";
  EXPECT_FALSE(parse_entity_tag("\""));
  EXPECT_FALSE(parse_entity_tag(""));
}

// The table of RFC 9110 8.8.3.2.
TEST(EntityTag, ComparisonTableOfRfc9110) {
  EXPECT_FALSE(strong_match(tag("W/\"1\""), tag("W/\"1\"")));
  EXPECT_TRUE(weak_match(tag("W/\"1\""), tag("W/\"1\"")));
  EXPECT_FALSE(strong_match(tag("W/\"1\""), tag("W/\"2\"")));
  EXPECT_FALSE(weak_match(tag("W/\"1\""), tag("W/\"2\"")));
  EXPECT_FALSE(strong_match(tag("W/\"1\""), tag("\"1\"")));
  EXPECT_TRUE(weak_match(tag("W/\"1\""), tag("\"1\"")));
  EXPECT_TRUE(strong_match(tag("\"1\""), tag("\"1\"")));
  EXPECT_TRUE(weak_match(tag("\"1\""), tag("\"1\"")));
}

TEST(IfNoneMatch, ListsStarAndWeakComparison) {
  EXPECT_TRUE(if_none_match_matches(Lines{"\"xyzzy\""}, "\"xyzzy\""));
  EXPECT_TRUE(if_none_match_matches(Lines{"W/\"xyzzy\""}, "\"xyzzy\"")) << "weak comparison";
  EXPECT_TRUE(if_none_match_matches(Lines{"\"xyzzy\""}, "W/\"xyzzy\""));
  EXPECT_TRUE(if_none_match_matches(Lines{"\"a\", \"b\",, \"c\""}, "\"c\""));
  EXPECT_TRUE(if_none_match_matches(Lines{"\"a\"", "\"b\""}, "\"b\"")) << "two field lines";
  EXPECT_FALSE(if_none_match_matches(Lines{"\"a\", \"b\""}, "\"c\""));
  EXPECT_TRUE(if_none_match_matches(Lines{"*"}, "\"c\""));
  EXPECT_TRUE(if_none_match_matches(Lines{"*"}, ""))
      << "a stored response exists, with or without a tag";
  EXPECT_FALSE(if_none_match_matches(Lines{"\"a\""}, "")) << "no stored tag matches no tag";
  EXPECT_FALSE(if_none_match_matches(Lines{"\"c\", junk"}, "\"c\"")) << "a malformed list";
  EXPECT_TRUE(if_none_match_matches(Lines{"\"x\", \"a,b\""}, "\"a,b\""))
      << "a comma inside an opaque tag (etagc allows it)";
  EXPECT_FALSE(if_none_match_matches(Lines{"\"a,b\""}, "\"a\""));
}

TEST(NotModified, IfNoneMatchDecidesAlone) {
  const Time t0{seconds(1'000'000)};
  StoredValidators v{"\"v1\"", t0, t0, t0};
  EXPECT_TRUE(not_modified(Lines{"\"v1\""}, "", v));
  EXPECT_FALSE(not_modified(Lines{"\"v2\""}, "Sun, 06 Nov 2033 08:49:37 GMT", v))
      << "If-Modified-Since is ignored when If-None-Match is present";
}

// RFC 9111 4.3.2: Last-Modified, or else Date, or else the time received, against the date sent.
TEST(NotModified, IfModifiedSince) {
  const Time lm{seconds(784111777)};  // Sun, 06 Nov 1994 08:49:37 GMT
  StoredValidators v{"", lm, lm + seconds(3600), lm + seconds(7200)};
  EXPECT_TRUE(not_modified({}, "Sun, 06 Nov 1994 08:49:37 GMT", v)) << "equal: not modified";
  EXPECT_TRUE(not_modified({}, "Sun, 06 Nov 1994 09:00:00 GMT", v));
  EXPECT_FALSE(not_modified({}, "Sun, 06 Nov 1994 08:49:36 GMT", v)) << "modified since";
  EXPECT_FALSE(not_modified({}, "yesterday", v)) << "an invalid date is ignored";
  EXPECT_FALSE(not_modified({}, "", v));
  v.last_modified.reset();  // Date stands in: 09:49:37
  EXPECT_FALSE(not_modified({}, "Sun, 06 Nov 1994 09:00:00 GMT", v));
  EXPECT_TRUE(not_modified({}, "Sun, 06 Nov 1994 09:49:37 GMT", v));
  v.date.reset();  // the time received: 10:49:37
  EXPECT_FALSE(not_modified({}, "Sun, 06 Nov 1994 10:00:00 GMT", v));
  EXPECT_TRUE(not_modified({}, "Sun, 06 Nov 1994 10:49:37 GMT", v));
}

}  // namespace
}  // namespace gatehouse::http
