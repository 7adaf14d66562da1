// exchange/composite_answer: a leg's answer read (malformed, too deep, duplicate keys), values
// found at dotted paths for dependent legs, and the composed document (answers as they came, huge
// numbers kept, raw legs as strings, failures as null with an errors entry).
#include "exchange/composite_answer.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace gatehouse::exchange {
namespace {

boost::json::value parsed(std::string_view text) {
  boost::json::value v;
  std::string why;
  EXPECT_TRUE(parse_answer(text, &v, &why)) << text << ": " << why;
  return v;
}

std::string at(std::string_view text, std::string_view path) {
  std::string out;
  return scalar_at(parsed(text), path, &out) ? out : "(none)";
}

TEST(CompositeAnswer, AnswersThatAreNotJson) {
  boost::json::value v;
  std::string why;
  EXPECT_FALSE(parse_answer("", &v, &why));
  EXPECT_FALSE(parse_answer("{\"a\":", &v, &why));
  EXPECT_FALSE(parse_answer("hello", &v, &why));
  EXPECT_FALSE(parse_answer("{} {}", &v, &why)) << "two values are not one answer";
  EXPECT_FALSE(why.empty());
  // Nesting: up to the limit, not past it.
  const auto nested = [](size_t n) { return std::string(n, '[') + std::string(n, ']'); };
  EXPECT_TRUE(parse_answer(nested(kMaxAnswerDepth), &v, &why)) << why;
  EXPECT_FALSE(parse_answer(nested(kMaxAnswerDepth + 1), &v, &why));
}

TEST(CompositeAnswer, ValuesAtDottedPaths) {
  const std::string doc =
      R"({"seller":{"id":"s 1","n":7,"ok":true,"f":2.5,"tags":["a","b"],"none":null,)"
      R"("big":12345678901234567890123}})";
  EXPECT_EQ(at(doc, "seller.id"), "s 1");
  EXPECT_EQ(at(doc, "seller.n"), "7");
  EXPECT_EQ(at(doc, "seller.ok"), "true");
  EXPECT_EQ(at(doc, "seller.f"), "2.5E0");
  EXPECT_EQ(at(doc, "seller.tags.1"), "b");
  EXPECT_EQ(at(doc, "seller.big"), "1.2345678901234568E22") << "beyond 64 bits: a double";
  EXPECT_EQ(at(doc, "seller.tags"), "(none)") << "an array is not a value";
  EXPECT_EQ(at(doc, "seller"), "(none)") << "nor is an object";
  EXPECT_EQ(at(doc, "seller.none"), "(none)") << "nor null";
  EXPECT_EQ(at(doc, "seller.tags.2"), "(none)");
  EXPECT_EQ(at(doc, "seller.tags.x"), "(none)");
  EXPECT_EQ(at(doc, "seller.missing"), "(none)");
  EXPECT_EQ(at(doc, "seller.id.deeper"), "(none)");
  // A key given twice: its last value.
  EXPECT_EQ(at(R"({"id":"first","id":"last"})", "id"), "last");
}

TEST(CompositeAnswer, TheDocument) {
  const std::string big = R"({"n":12345678901234567890123,"k":1,"k":2})";
  std::vector<LegResult> legs = {
      {"product", true, false, big},
      {"note", true, true, "caf\xc3\xa9 \"quoted\"\n"},
      {"stock", false, false, {}, 504, "upstream_timeout", "leg 'stock' timed out"},
  };
  EXPECT_EQ(compose_document(legs),
            R"({"product":{"n":12345678901234567890123,"k":1,"k":2},)"
            "\"note\":\"caf\xc3\xa9 \\\"quoted\\\"\\u000a\","
            R"("stock":null,"errors":{"stock":{"status":504,"error":"upstream_timeout",)"
            R"("message":"leg 'stock' timed out"}}})");
  legs.pop_back();
  EXPECT_EQ(compose_document(legs).find("errors"), std::string::npos) << "no errors, no key";
}

TEST(CompositeAnswer, CacheControlIsTheMostRestrictiveLegs) {
  using L = std::vector<LegCaching>;
  EXPECT_EQ(merged_cache_control(L{{"max-age=60"}, {"public, max-age=30"}}, false), "max-age=30");
  EXPECT_EQ(merged_cache_control(L{{"max-age=60"}, {"private, max-age=300"}}, false),
            "private, max-age=60");
  EXPECT_EQ(merged_cache_control(L{{"max-age=60"}, {"no-store"}}, false), "no-store");
  EXPECT_EQ(merged_cache_control(L{{"max-age=60"}, {""}}, false), "max-age=0")
      << "a leg that says nothing allows no freshness";
  EXPECT_EQ(
      merged_cache_control(L{{"max-age=60, must-revalidate"}, {"no-cache, max-age=9"}}, false),
      "max-age=9, no-cache, must-revalidate");
  EXPECT_EQ(merged_cache_control(L{{"max-age=60"}}, true), "no-store") << "a partial answer";
}

TEST(CompositeAnswer, ETagFromEveryLegs) {
  using L = std::vector<LegCaching>;
  const std::string a = merged_etag(L{{"", "\"a1\""}, {"", "W/\"b1\""}}, false);
  EXPECT_EQ(a.substr(0, 3), "W/\"");
  EXPECT_EQ(a.size(), 3u + 32 + 1);
  EXPECT_EQ(merged_etag(L{{"", "\"a1\""}, {"", "W/\"b1\""}}, false), a) << "stable";
  EXPECT_NE(merged_etag(L{{"", "\"a2\""}, {"", "W/\"b1\""}}, false), a) << "a leg changed";
  EXPECT_NE(merged_etag(L{{"", "W/\"b1\""}, {"", "\"a1\""}}, false), a) << "the order counts";
  EXPECT_EQ(merged_etag(L{{"", "\"a1\""}, {"", ""}}, false), "") << "a leg without one";
  EXPECT_EQ(merged_etag(L{{"", "\"a1\""}}, true), "") << "a partial answer";
}

// `fields` written dotted, as in the config (which splits them at load).
std::string shaped(std::string_view answer, std::vector<std::string> fields,
                   std::vector<std::pair<std::string, std::string>> rename) {
  std::vector<std::vector<std::string>> paths;
  for (const auto& f : fields) {
    paths.emplace_back();
    for (size_t from = 0;;) {
      const auto dot = f.find('.', from);
      paths.back().push_back(f.substr(from, dot - from));
      if (dot == std::string::npos) break;
      from = dot + 1;
    }
  }
  boost::json::value out;
  if (!shape_answer(parsed(answer), paths, rename, &out)) return "(not shapable)";
  return boost::json::serialize(out);
}

TEST(CompositeAnswer, ShapingSelectsAndRenames) {
  const std::string product =
      R"({"id":"7","name":"Widget","price":{"amount":9,"currency":"EUR"},"internal":1})";
  EXPECT_EQ(shaped(product, {"id", "price.amount", "missing"}, {}),
            R"({"id":"7","price":{"amount":9}})");
  EXPECT_EQ(shaped(product, {"id", "name"}, {{"name", "title"}, {"nope", "x"}}),
            R"({"id":"7","title":"Widget"})");
  // An array's objects one by one.
  EXPECT_EQ(shaped(R"([{"a":1,"b":2},{"a":3}])", {"a"}, {{"a", "z"}}), R"([{"z":1},{"z":3}])");
  EXPECT_EQ(shaped("[1,2]", {"a"}, {}), "(not shapable)");
  EXPECT_EQ(shaped("\"text\"", {"a"}, {}), "(not shapable)");
  EXPECT_EQ(shaped("\"text\"", {}, {}), "\"text\"") << "nothing to shape";
}

TEST(CompositeAnswer, PlacementMergeAndPaths) {
  const boost::json::value user = parsed(R"({"name":"Ann","id":1})");
  const boost::json::value stock = parsed(R"({"n":3})");
  const std::vector<std::string> at_stock = {"inventory", "stock"};
  const std::vector<std::string> at_price = {"inventory", "price"};
  std::vector<LegResult> legs = {
      {"product", true, false, R"({"n":12345678901234567890123})"},
      {"user", true, false, {}, 0, {}, {}, &user, true},
      {"stock", true, false, {}, 0, {}, {}, &stock, false, at_stock},
      {"price", false, false, {}, 502, "leg_status", "no", nullptr, false, at_price},
      {"merged_failed", false, false, {}, 503, "leg_status", "down", nullptr, true},
  };
  EXPECT_EQ(compose_document(legs),
            R"({"product":{"n":12345678901234567890123},"name":"Ann","id":1,)"
            R"("inventory":{"stock":{"n":3},"price":null},)"
            R"("errors":{"price":{"status":502,"error":"leg_status","message":"no"},)"
            R"("merged_failed":{"status":503,"error":"leg_status","message":"down"}}})");
  // A later leg's key wins; a merged leg alone with a failure still makes an object.
  const boost::json::value again = parsed(R"({"product":"replaced"})");
  EXPECT_EQ(compose_document(
                {{"product", true, false, "{}"}, {"m", true, false, {}, 0, {}, {}, &again, true}}),
            R"({"product":"replaced"})");
  EXPECT_EQ(compose_document({{"m", false, false, {}, 503, "leg_status", "down", nullptr, true}}),
            R"({"errors":{"m":{"status":503,"error":"leg_status","message":"down"}}})");
}

using Kind = config::TemplatePart::Kind;

std::string filled(const std::vector<config::TemplatePart>& parts, const TemplateValues& v,
                   FillError expect = FillError::kNone) {
  std::string out, what;
  EXPECT_EQ(fill_template(parts, v, &out, &what), expect) << out << " / " << what;
  return expect == FillError::kNone ? out : what;
}

TEST(CompositeAnswer, TemplatesFilledAsOneComponentEach) {
  const std::vector<std::pair<std::string, std::string>> captures = {{"id", "a b/c"}};
  const std::vector<std::pair<std::string, std::string>> headers = {{"x-tenant", "t&1"}};
  std::vector<boost::json::value> answers = {parsed(R"({"seller":{"id":"s?1","n":7}})")};
  const TemplateValues v{captures, "lang=fr%2FCA&x=%zz", headers, answers};
  EXPECT_EQ(filled({{Kind::kText, "/p/"},
                    {Kind::kCapture, "id"},
                    {Kind::kText, "?l="},
                    {Kind::kQuery, "lang"},
                    {Kind::kText, "&x="},
                    {Kind::kQuery, "x"},
                    {Kind::kText, "&t="},
                    {Kind::kHeader, "x-tenant"},
                    {Kind::kText, "&none="},
                    {Kind::kQuery, "none"}},
                   v),
            "/p/a%20b%2Fc?l=fr%2FCA&x=%25zz&t=t%261&none=")
      << "decoded once, encoded once; a malformed escape goes as it came";
  EXPECT_EQ(filled({{Kind::kText, "/s/"},
                    {Kind::kLeg, "seller.id", 0},
                    {Kind::kText, "/"},
                    {Kind::kLeg, "seller.n", 0}},
                   v),
            "/s/s%3F1/7");
  EXPECT_EQ(
      filled({{Kind::kText, "/s/"}, {Kind::kLeg, "seller", 0}}, v, FillError::kDependencyValue),
      "seller")
      << "an object is not a value";
  EXPECT_EQ(filled({{Kind::kText, "/s/"}, {Kind::kLeg, "seller.missing", 0}}, v,
                   FillError::kDependencyValue),
            "seller.missing");
}

TEST(CompositeAnswer, ADotSegmentValueIsRefusedInThePathOnly) {
  const std::vector<std::pair<std::string, std::string>> captures = {{"id", ".."}};
  const TemplateValues v{captures, "q=.", {}, {}};
  EXPECT_EQ(filled({{Kind::kText, "/p/"}, {Kind::kCapture, "id"}}, v, FillError::kDotSegment),
            "..");
  EXPECT_EQ(filled({{Kind::kText, "/p/"}, {Kind::kQuery, "q"}}, v, FillError::kDotSegment), ".");
  EXPECT_EQ(filled({{Kind::kText, "/p?id="}, {Kind::kCapture, "id"}}, v), "/p?id=..")
      << "in the query it is data";
  EXPECT_EQ(filled({{Kind::kText, "/p/x"}, {Kind::kCapture, "id"}}, v), "/p/x..")
      << "part of a segment, not a whole one";
}

}  // namespace
}  // namespace gatehouse::exchange
