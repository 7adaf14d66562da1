#include "filters/response_replace/response_replace.h"

#include <gtest/gtest.h>

#include <string>

namespace gatehouse::filters {
namespace {

// The body given in pieces cut at `cuts`, through rewrite() as the filter streams it.
std::string stream(const ResponseReplace& f, std::string_view body, std::vector<size_t> cuts) {
  std::string out, held, text;
  size_t from = 0;
  cuts.push_back(body.size());
  for (size_t i = 0; i < cuts.size(); ++i) {
    text = held + std::string(body.substr(from, cuts[i] - from));
    std::string piece;
    f.rewrite(text, i + 1 == cuts.size(), &piece, &held);
    out += piece;
    from = cuts[i];
  }
  return out;
}

const ResponseReplace kFilter({{"http://orders.internal:8080", "https://api.example.com"},
                               {"orders", "ORDERS"}},
                              {"text/html"});

TEST(ResponseReplaceTest, ReplacesEveryOccurrenceEarliestFirst) {
  EXPECT_EQ(stream(kFilter, "<a href=\"http://orders.internal:8080/x\">orders</a> orders", {}),
            "<a href=\"https://api.example.com/x\">ORDERS</a> ORDERS");
}

TEST(ResponseReplaceTest, AMatchSplitAcrossPiecesIsFoundWhereverTheCutFalls) {
  const std::string body =
      "see http://orders.internal:8080/a and orders, http://orders.internal:8080";
  const std::string want = "see https://api.example.com/a and ORDERS, https://api.example.com";
  for (size_t a = 0; a <= body.size(); ++a) {
    EXPECT_EQ(stream(kFilter, body, {a}), want) << "cut at " << a;
    for (size_t b = a; b <= body.size(); b += 7)
      EXPECT_EQ(stream(kFilter, body, {a, b}), want) << "cuts at " << a << ", " << b;
  }
}

TEST(ResponseReplaceTest, HoldsBackOnlyWhatMayBeginAMatch) {
  std::string out, held;
  kFilter.rewrite(std::string(100, 'x'), false, &out, &held);
  EXPECT_EQ(held.size(), std::string("http://orders.internal:8080").size() - 1);
  EXPECT_EQ(out.size() + held.size(), 100u) << "nothing lost, nothing added";
  out.clear();
  kFilter.rewrite(held, true, &out, &held);
  EXPECT_TRUE(held.empty()) << "at the end everything goes";
  EXPECT_EQ(out, std::string(26, 'x'));
}

TEST(ResponseReplaceTest, ABodyWithoutMatchesIsUnchanged) {
  const std::string body = "nothing to see here, http://orders.internal:8081 is another port";
  EXPECT_EQ(stream(kFilter, body, {10, 30, 31}),
            "nothing to see here, http://ORDERS.internal:8081 is another port");
}

}  // namespace
}  // namespace gatehouse::filters
