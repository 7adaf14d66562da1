// filters/grpc_transcode/path_template: google.api.http templates parsed and matched as
// google/api/http.proto's grammar says: literals, "*", "**" (last only), variables of one
// segment or of several ("{name=shelves/*/books/*}"), a verb, and the values percent-decoded.
#include "filters/grpc_transcode/path_template.h"

#include <gtest/gtest.h>

namespace gatehouse::filters::transcode {
namespace {

PathTemplate parse(std::string_view text) {
  std::string why;
  auto t = PathTemplate::parse(text, &why);
  EXPECT_TRUE(t) << text << ": " << why;
  return t ? *t : *PathTemplate::parse("/x", &why);
}

std::string refused(std::string_view text) {
  std::string why;
  EXPECT_FALSE(PathTemplate::parse(text, &why)) << text;
  return why;
}

// The bindings of `path`, "field=value;..." ("-" when it does not match).
std::string bind(const PathTemplate& t, std::string_view path) {
  std::vector<FieldValue> out;
  if (!t.match(path, &out)) return "-";
  std::string s;
  for (const auto& f : out) s += f.field + "=" + f.value + ";";
  return s;
}

TEST(PathTemplate, LiteralsAndOneSegmentVariables) {
  const auto t = parse("/v1/shelves/{shelf}/books/{id}");
  EXPECT_EQ(bind(t, "/v1/shelves/s1/books/5"), "shelf=s1;id=5;");
  EXPECT_EQ(bind(t, "/v1/shelves/s1/books"), "-");
  EXPECT_EQ(bind(t, "/v1/shelves/s1/books/5/more"), "-");
  EXPECT_EQ(bind(t, "/v1/shelves//books/5"), "-");  // a variable takes a non-empty segment
  EXPECT_EQ(bind(t, "/v2/shelves/s1/books/5"), "-");
  EXPECT_EQ(t.literals(), 3u);
}

TEST(PathTemplate, NestedFieldPaths) {
  EXPECT_EQ(bind(parse("/v1/books/{book.id}"), "/v1/books/42"), "book.id=42;");
}

TEST(PathTemplate, MultiSegmentVariables) {
  const auto t = parse("/v2/{name=shelves/*/books/*}");
  EXPECT_EQ(bind(t, "/v2/shelves/a/books/b"), "name=shelves/a/books/b;");
  EXPECT_EQ(bind(t, "/v2/shelves/a/books"), "-");
  EXPECT_EQ(bind(t, "/v2/racks/a/books/b"), "-");
  EXPECT_EQ(t.literals(), 3u);
}

TEST(PathTemplate, DoubleStarTakesTheRest) {
  const auto t = parse("/files/{path=**}");
  EXPECT_EQ(bind(t, "/files/a/b/c.txt"), "path=a/b/c.txt;");
  EXPECT_EQ(bind(t, "/files/a"), "path=a;");
  const auto plain = parse("/static/**");
  EXPECT_EQ(bind(plain, "/static/x/y"), "");
  EXPECT_EQ(bind(plain, "/other/x"), "-");
}

TEST(PathTemplate, Verbs) {
  const auto t = parse("/v1/shelves/{shelf}/books:stream");
  EXPECT_EQ(bind(t, "/v1/shelves/s1/books:stream"), "shelf=s1;");
  EXPECT_EQ(bind(t, "/v1/shelves/s1/books"), "-");
  EXPECT_EQ(bind(t, "/v1/shelves/s1/books:list"), "-");
  // Without a verb in the template, a ':' is part of the segment a variable takes.
  EXPECT_EQ(bind(parse("/v1/things/{id}"), "/v1/things/a:b"), "id=a:b;");
  EXPECT_EQ(bind(parse("/v1/{name=things/*}:cancel"), "/v1/things/t1:cancel"), "name=things/t1;");
}

TEST(PathTemplate, ValuesArePercentDecoded) {
  EXPECT_EQ(bind(parse("/v1/shelves/{shelf}"), "/v1/shelves/a%20b%2Fc"), "shelf=a b/c;");
  // In a multi-segment value, an encoded '/' is not a separator: it stays encoded.
  EXPECT_EQ(bind(parse("/v1/{name=a/*/b/*}"), "/v1/a/x%2Fy/b/z%20"), "name=a/x%2Fy/b/z ;");
  EXPECT_EQ(bind(parse("/v1/shelves/{shelf}"), "/v1/shelves/bad%2"), "-");
  EXPECT_EQ(bind(parse("/v1/shelves/{shelf}"), "/v1/shelves/bad%zz"), "-");
}

TEST(PathTemplate, MalformedTemplatesAreRefused) {
  EXPECT_NE(refused("v1/books"), "");
  EXPECT_NE(refused("/v1/{id"), "");
  EXPECT_NE(refused("/v1/{1id}"), "");
  EXPECT_NE(refused("/v1/{id=}"), "");
  EXPECT_NE(refused("/v1//books"), "");
  EXPECT_NE(refused("/v1/books/"), "");
  EXPECT_NE(refused("/**/books"), "");
  EXPECT_NE(refused("/v1/bo*ks"), "");
  EXPECT_NE(refused("/"), "");
}

}  // namespace
}  // namespace gatehouse::filters::transcode
