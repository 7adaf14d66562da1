#include "http/cookie.h"

#include <gtest/gtest.h>

namespace gatehouse::http {
namespace {

RequestHead with_cookies(std::initializer_list<std::string_view> fields) {
  RequestHead req;
  for (auto v : fields) req.headers.push_back({"cookie", v, HeaderId::kCookie, false});
  req.headers.push_back({"x-other", "session=not-a-cookie", HeaderId::kOther, false});
  return req;
}

TEST(CookieValue, FindsAPairAmongOthersAndAcrossFields) {
  const auto req = with_cookies({"a=1; session=abc;b=2", "later=z"});
  EXPECT_EQ(cookie_value(req, "session"), "abc");
  EXPECT_EQ(cookie_value(req, "b"), "2");
  EXPECT_EQ(cookie_value(req, "later"), "z") << "HTTP/2 sends a field per cookie";
  EXPECT_EQ(cookie_value(req, "sess"), "") << "a name is matched whole";
  EXPECT_EQ(cookie_value(req, "missing"), "");
  EXPECT_EQ(cookie_value(with_cookies({"session=first", "session=second"}), "session"), "first");
  EXPECT_EQ(cookie_value(with_cookies({}), "session"), "") << "not from other fields";
}

}  // namespace
}  // namespace gatehouse::http
