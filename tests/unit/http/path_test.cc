#include "http/path.h"

#include <gtest/gtest.h>

#include <string>

namespace gatehouse::http {
namespace {

// The canonical form, or "REJECT" when the path is refused.
std::string norm(std::string_view in, PathPolicy policy = {}) {
  std::string out;
  std::string_view why;
  switch (normalise_path(in, policy, &out, &why)) {
    case PathVerdict::kUnchanged:
      return std::string(in);
    case PathVerdict::kNormalised:
      EXPECT_NE(out, in) << "kNormalised must mean a different spelling";
      return out;
    case PathVerdict::kRejected:
      EXPECT_FALSE(why.empty());
      return "REJECT";
  }
  return "?";
}

TEST(PathNormalise, CanonicalPathsAreLeftAlone) {
  for (std::string_view p : {"/", "/a", "/a/b/", "/api/products/42", "/a.b/c..d/.e/..f", "/a//b",
                             "/x;y=1", "/%25", "/%2B", "/~user"}) {
    std::string out = "untouched";
    std::string_view why;
    EXPECT_EQ(normalise_path(p, {}, &out, &why), PathVerdict::kUnchanged) << p;
    EXPECT_EQ(out, "untouched") << p;
  }
}

// RFC 3986 5.4's examples of dot-segment removal, as absolute paths.
TEST(PathNormalise, RemovesDotSegmentsLikeRfc3986) {
  EXPECT_EQ(norm("/a/b/c/./../../g"), "/a/g");
  EXPECT_EQ(norm("/mid/content=5/../6"), "/mid/6");
  EXPECT_EQ(norm("/a/b/."), "/a/b/");
  EXPECT_EQ(norm("/a/b/.."), "/a/");
  EXPECT_EQ(norm("/a/b/./"), "/a/b/");
  EXPECT_EQ(norm("/a/b/../"), "/a/");
  EXPECT_EQ(norm("/.."), "/");
  EXPECT_EQ(norm("/../../../etc/passwd"), "/etc/passwd");
  EXPECT_EQ(norm("/."), "/");
  EXPECT_EQ(norm("/a/./b/../../c"), "/c");
  EXPECT_EQ(norm("//../admin"), "/admin");
  // A final dot segment after an empty one keeps both (found by fuzz/request_head.cc).
  EXPECT_EQ(norm("/a//."), "/a//");
  EXPECT_EQ(norm("/a/..//."), "//");
  EXPECT_EQ(norm("/a//b/.."), "/a//");
  EXPECT_EQ(norm("/a//.", {.merge_slashes = true}), "/a/");
}

TEST(PathNormalise, DecodesUnreservedAndUppercasesTheRest) {
  EXPECT_EQ(norm("/%61%62%63"), "/abc");
  EXPECT_EQ(norm("/%7euser/%2D%2e%5F"), "/~user/-._");
  EXPECT_EQ(norm("/a%2fb", {.reject_encoded_slashes = false}), "/a%2Fb");
  EXPECT_EQ(norm("/caf%c3%a9"), "/caf%C3%A9");
  EXPECT_EQ(norm("/%25%32%65"), "/%252e") << "one decoding pass: %25 stays an escaped '%'";
}

// The bypass table: none of these may be seen by routing as anything but the plain form.
TEST(PathNormalise, AttackTable) {
  EXPECT_EQ(norm("/api/public/%2e%2e/admin"), "/api/admin");
  EXPECT_EQ(norm("/api/public/%2E%2E/admin"), "/api/admin");
  EXPECT_EQ(norm("/api/public/.%2e/admin"), "/api/admin");
  EXPECT_EQ(norm("/api/public/%2e./admin"), "/api/admin");
  EXPECT_EQ(norm("/api/public/%2e/../../admin"), "/admin");
  EXPECT_EQ(norm("/api/public/..%2Fadmin"), "REJECT");
  EXPECT_EQ(norm("/api/public/..%2fadmin"), "REJECT");
  EXPECT_EQ(norm("/api/public/..%5Cadmin"), "REJECT");
  EXPECT_EQ(norm("/api/public/..\\admin"), "REJECT");
  EXPECT_EQ(norm("/admin%00.json"), "REJECT");
  EXPECT_EQ(norm("/admin%00.json", {.reject_encoded_slashes = false}), "REJECT") << "NUL always";
  EXPECT_EQ(norm("/api/public/..;/admin"), "REJECT");
  EXPECT_EQ(norm("/api/public/.;x/admin"), "REJECT");
  EXPECT_EQ(norm("/api/%2e%2e;/admin"), "REJECT");
  // With encoded slashes kept, they are text: never a separator, never climbed through.
  EXPECT_EQ(norm("/api/public/..%2Fadmin", {.reject_encoded_slashes = false}),
            "/api/public/..%2Fadmin");
  EXPECT_EQ(norm("/api/public/%2e%2e%2fadmin", {.reject_encoded_slashes = false}),
            "/api/public/..%2Fadmin");
}

TEST(PathNormalise, MergesSlashesOnlyWhenAsked) {
  EXPECT_EQ(norm("//admin"), "//admin");
  EXPECT_EQ(norm("//admin", {.merge_slashes = true}), "/admin");
  EXPECT_EQ(norm("/a///b//", {.merge_slashes = true}), "/a/b/");
  EXPECT_EQ(norm("//", {.merge_slashes = true}), "/");
  EXPECT_EQ(norm("/a//../b"), "/a/b");
}

TEST(PathNormalise, NonOriginFormIsLeftToTheRouter) {
  EXPECT_EQ(norm("*"), "*");
  EXPECT_EQ(norm(""), "");
}

}  // namespace
}  // namespace gatehouse::http
