#include "filters/cache/entry.h"

#include <gtest/gtest.h>

#include "http/date.h"
#include "http/parser.h"

namespace gatehouse::filters::cache {
namespace {

using std::chrono::seconds;
using Time = Entry::Time;

// Parses a response head the way the upstream client does.
struct Head {
  explicit Head(std::string text) : text(std::move(text)) {
    http::ParseError err;
    EXPECT_EQ(http::parse_response_head(this->text, {}, "GET", &head, &err),
              http::ParseStatus::kComplete)
        << err.message;
  }
  std::string text;
  http::ResponseHead head;
};

const Time kSent = *http::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT");

// A body has room for what it was made for and holds its bytes, every size (up to and past the
// pool's largest class); the bytes follow it in one block, which freeing it gives back whole (the
// next block of its class is that one, with the body at its start).
TEST(CacheBody, HoldsItsBytesInOneBlockOfItsRoom) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{15}, size_t{100}, size_t{4096}, size_t{70000}}) {
    const std::string first(n, 'a');
    auto body = new_body(first, n + 7);
    EXPECT_EQ(body->size(), n);
    EXPECT_EQ(body->capacity(), n + 7);
    body->append("0123456");
    ASSERT_EQ(body->size(), n + 7);
    EXPECT_EQ(*body, first + "0123456");
    const char* object = reinterpret_cast<const char*>(body.get());
    EXPECT_EQ(body->data(), object + sizeof(Body)) << "the bytes follow it";
#if !defined(__SANITIZE_ADDRESS__)  // sanitizer builds do not pool
    if (n + 7 + 64 > pool::kMaxPooled) continue;
    body.reset();
    const size_t block = kBodyHeader + n + 7;  // its room, and what comes before it
    auto* again = static_cast<const char*>(pool::allocate(block));
    EXPECT_TRUE(again <= object && object < again + 64) << n;
    pool::deallocate(const_cast<char*>(again), block);
#endif
  }
  EXPECT_EQ(new_body("xyz")->capacity(), 3u) << "room for its bytes when asked for less";
}

TEST(CacheFields, KeepOrderAndDuplicatesAndSurviveCopiesAndErasure) {
  Fields f;
  f.reserve(3, 64);
  f.emplace_back("Vary", "accept");
  f.emplace_back("X-Long", std::string(100, 'v'));  // beyond the reservation: the block grows
  f.emplace_back("vary", "origin");
  Fields copy = f;
  f.erase_if([](Fields::Field x) { return x.first == "X-Long"; });
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].first, "Vary");
  EXPECT_EQ(f[1].second, "origin");
  ASSERT_EQ(copy.size(), 3u) << "a copy owns its bytes";
  EXPECT_EQ(copy[1].second, std::string(100, 'v'));
  EXPECT_FALSE(copy == f);
  copy.erase_if([](Fields::Field x) { return x.first == "X-Long"; });
  EXPECT_TRUE(copy == f);
}

// A usual head is copied as it is read onto the stack, a large one into room of its own, and one
// the parser did not measure after measuring it: the same fields each way, of every length (short
// ones are copied inline, in words that overlap).
TEST(CacheEntry, FieldsOfEveryLengthAndHeadsOfEverySize) {
  std::string fields;
  for (size_t n = 0; n <= 40; ++n) {
    std::string value;
    for (size_t i = 0; i < n; ++i) value += static_cast<char>('a' + (i * 7 + n) % 26);
    fields += "X-" + std::string(n % 9 + 1, 'n') + std::to_string(n) + ": " + value + "\r\n";
  }
  for (const size_t filler : {size_t{0}, size_t{6000}}) {  // the second outgrows the stack's room
    Head r("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nCache-Control: max-age=5\r\n" + fields +
           "X-Filler: " + std::string(filler, 'f') + "\r\n\r\n");
    auto e = make_entry(r.head, nullptr, kSent, kSent, {});
    ASSERT_EQ(e->headers.size(), r.head.headers.size() - 1) << "all but Content-Length";
    size_t i = 1;
    for (const auto& [n, v] : e->headers) {
      EXPECT_EQ(n, r.head.headers[i].name);
      EXPECT_EQ(v, r.head.headers[i].value);
      ++i;
    }
    EXPECT_EQ(e->lifetime, 5);
    http::ResponseHead unmeasured = r.head;  // a head the parser did not measure
    unmeasured.head_bytes = 0;
    auto again = make_entry(unmeasured, nullptr, kSent, kSent, {});
    EXPECT_TRUE(again->headers == e->headers);
    EXPECT_EQ(again->lifetime, 5);
  }
}

TEST(CacheEntry, StoresTheFieldsACacheKeepsAndReadsItsFreshness) {
  Head r(
      "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nCache-Control: max-age=60\r\n"
      "Content-Length: 5\r\nConnection: keep-alive, x-private-hop\r\nX-Private-Hop: 1\r\n"
      "Age: 10\r\nETag: \"v1\"\r\nVary: Accept-Encoding\r\nKeep-Alive: timeout=5\r\n"
      "Content-Type: text/plain\r\nSurrogate-Key: a b\r\nSurrogate-Key: c\r\n\r\n");
  EntryRules rules;
  rules.tag_header = "surrogate-key";
  auto e = make_entry(r.head, new_body("hello"), kSent, kSent + seconds(1), rules);
  EXPECT_EQ(e->status, 200);
  std::vector<std::string> names;
  for (const auto& [n, v] : e->headers) names.emplace_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"Date", "Cache-Control", "ETag", "Vary",
                                             "Content-Type", "Surrogate-Key", "Surrogate-Key"}))
      << "hop-by-hop fields (those Connection names too), framing and Age are not stored";
  EXPECT_EQ(e->lifetime, 60);
  EXPECT_EQ(e->times.age, 10) << "the Age received counts in the entry's age";
  EXPECT_EQ(http::current_age(e->times, kSent + seconds(1)), 11);
  EXPECT_EQ(e->etag, "\"v1\"");
  EXPECT_EQ(e->vary.names, (std::vector<std::string>{"accept-encoding"}));
  EXPECT_EQ(e->tags, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(*e->body, "hello");
  EXPECT_GT(e->cost(), 5u + sizeof(Entry));
}

TEST(CacheEntry, ExpiresAndTheRoutesTtl) {
  Head twice(
      "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
      "Expires: Sun, 06 Nov 1994 09:49:37 GMT\r\nExpires: Sun, 06 Nov 1994 10:49:37 GMT\r\n"
      "Content-Length: 0\r\n\r\n");
  EntryRules rules;
  EXPECT_EQ(make_entry(twice.head, nullptr, kSent, kSent, rules)->lifetime, 0)
      << "two Expires: stale (RFC 9111 4.2.1)";
  Head once(
      "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
      "Expires: Sun, 06 Nov 1994 09:49:37 GMT\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(make_entry(once.head, nullptr, kSent, kSent, rules)->lifetime, 3600);
  Head zero("HTTP/1.1 200 OK\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(make_entry(zero.head, nullptr, kSent, kSent, rules)->lifetime, 0);
  Head none("HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(make_entry(none.head, nullptr, kSent, kSent, rules)->lifetime, 0);
  rules.default_ttl = seconds(300);
  EXPECT_EQ(make_entry(none.head, nullptr, kSent, kSent, rules)->lifetime, 300)
      << "the ttl for a response that carries no freshness";
  EXPECT_EQ(make_entry(once.head, nullptr, kSent, kSent, rules)->lifetime, 3600)
      << "the origin's freshness wins";
  rules.ttl_overrides = true;
  EXPECT_EQ(make_entry(once.head, nullptr, kSent, kSent, rules)->lifetime, 300)
      << "unless the route overrides it";
}

// RFC 9111 4.3.4.
TEST(CacheEntry, FreshenedByA304) {
  Head r(
      "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nCache-Control: max-age=60\r\n"
      "ETag: \"v1\"\r\nX-Version: 1\r\nX-Version: 1b\r\nContent-Type: text/plain\r\n"
      "Content-Length: 5\r\n\r\n");
  EntryRules rules;
  auto stored = make_entry(r.head, new_body("hello"), kSent, kSent, rules);
  Head nm(
      "HTTP/1.1 304 Not Modified\r\nDate: Sun, 06 Nov 1994 09:49:37 GMT\r\n"
      "Cache-Control: max-age=120\r\nX-Version: 2\r\nContent-Length: 99\r\nConnection: close\r\n"
      "\r\n");
  const Time later = kSent + seconds(3600);
  auto fresh = freshen(*stored, nm.head, later, later + seconds(1), rules);
  EXPECT_EQ(fresh->status, 200);
  EXPECT_EQ(fresh->body, stored->body) << "the body is shared, not copied";
  EXPECT_EQ(fresh->get("x-version"), "2") << "replaced, both old lines";
  int versions = 0;
  for (const auto& [n, v] : fresh->headers) versions += http::iequals(n, "x-version");
  EXPECT_EQ(versions, 1);
  EXPECT_EQ(fresh->get("content-type"), "text/plain") << "kept";
  EXPECT_EQ(fresh->get("content-length"), "") << "never taken from a 304";
  EXPECT_EQ(fresh->get("connection"), "");
  EXPECT_EQ(fresh->lifetime, 120);
  EXPECT_EQ(http::current_age(fresh->times, later + seconds(1)), 1) << "aged from the 304";
  EXPECT_EQ(stored->get("x-version"), "1") << "the stored entry is not changed";

  Head no_date("HTTP/1.1 304 Not Modified\r\nCache-Control: max-age=30\r\n\r\n");
  auto again = freshen(*fresh, no_date.head, later, later, rules);
  EXPECT_EQ(again->get("date"), http::format_http_date(later))
      << "a 304 without Date stands for one sent when it arrived (RFC 9110 6.6.1)";
  EXPECT_EQ(http::current_age(again->times, later), 0);
}

// A coded variant (compress weakened its tag) keeps its weak tag when the origin's 304 says the
// strong one; any other tag in a 304 replaces the stored one.
TEST(CacheEntry, A304KeepsTheWeakTagOfATransformedVariant) {
  Head r(
      "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nETag: W/\"v1\"\r\n"
      "Content-Encoding: gzip\r\nContent-Length: 5\r\n\r\n");
  EntryRules rules;
  auto coded = make_entry(r.head, new_body("hello"), kSent, kSent, rules);
  Head strong("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nCache-Control: max-age=60\r\n\r\n");
  auto fresh = freshen(*coded, strong.head, kSent, kSent, rules);
  EXPECT_EQ(fresh->etag, "W/\"v1\"");
  EXPECT_EQ(fresh->get("etag"), "W/\"v1\"");
  Head other("HTTP/1.1 304 Not Modified\r\nETag: \"v2\"\r\n\r\n");
  EXPECT_EQ(freshen(*coded, other.head, kSent, kSent, rules)->etag, "\"v2\"");
}

TEST(CacheEntry, EncodesForTheSharedTierAndDecodesByTheReadersRules) {
  Head r(
      "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nCache-Control: max-age=60\r\n"
      "Age: 7\r\nETag: \"v1\"\r\nVary: Accept-Language\r\nContent-Length: 5\r\n"
      "Surrogate-Key: a b\r\n\r\n");
  EntryRules rules;
  rules.tag_header = "surrogate-key";
  auto e =
      make_entry(r.head, new_body(std::string_view("he\0lo", 5)), kSent, kSent + seconds(1), rules);
  std::string bytes = encode_entry(*e);
  auto d = decode_entry(bytes, rules);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->status, 200);
  EXPECT_EQ(d->headers, e->headers);
  ASSERT_TRUE(d->body);
  EXPECT_EQ(std::string_view(*d->body), std::string_view("he\0lo", 5));
  EXPECT_EQ(d->times.request_time, e->times.request_time);
  EXPECT_EQ(d->times.response_time, e->times.response_time);
  EXPECT_EQ(d->times.age, 7);
  EXPECT_EQ(d->lifetime, 60);
  EXPECT_EQ(d->etag, "\"v1\"");
  EXPECT_EQ(d->vary.names, std::vector<std::string>{"accept-language"});
  EXPECT_EQ(d->tags, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(d->cost(), e->cost());

  // Derived by the reader's rules: a route with a ttl that overrides.
  EntryRules other;
  other.default_ttl = seconds(300);
  other.ttl_overrides = true;
  EXPECT_EQ(decode_entry(bytes, other)->lifetime, 300);

  // A marker: no body.
  Entry marker;
  marker.status = 0;
  marker.headers.emplace_back("Vary", "accept-language");
  auto m = decode_entry(encode_entry(marker), rules);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 0);
  EXPECT_FALSE(m->body);
  EXPECT_EQ(m->vary.names, std::vector<std::string>{"accept-language"});
}

TEST(CacheEntry, DecodingRefusesWhatThisVersionDidNotWrite) {
  Entry e;
  e.headers.emplace_back("Content-Type", "text/plain");
  e.body = new_body("body");
  std::string bytes = encode_entry(e);
  EntryRules rules;
  ASSERT_TRUE(decode_entry(bytes, rules));
  EXPECT_FALSE(decode_entry("", rules));
  EXPECT_FALSE(decode_entry("GHE0" + bytes.substr(4), rules));  // another version
  for (size_t cut = 0; cut < bytes.size(); ++cut)
    EXPECT_FALSE(decode_entry(std::string_view(bytes).substr(0, cut), rules)) << cut;
  EXPECT_FALSE(decode_entry(bytes + "x", rules));  // trailing bytes
  std::string huge_count = bytes;
  huge_count[4 + 4 + 8 + 8 + 8 + 3] = '\x7f';  // a field count no input could hold
  EXPECT_FALSE(decode_entry(huge_count, rules));
}

TEST(HttpDate, FormatsImfFixdate) {
  EXPECT_EQ(http::format_http_date(kSent), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(http::format_http_date(Time{}), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(http::format_http_date(kSent + std::chrono::milliseconds(999)),
            "Sun, 06 Nov 1994 08:49:37 GMT");
  const auto t = *http::parse_http_date("Tue, 29 Feb 2028 23:59:59 GMT");
  EXPECT_EQ(http::parse_http_date(http::format_http_date(t)), t);
}

}  // namespace
}  // namespace gatehouse::filters::cache
