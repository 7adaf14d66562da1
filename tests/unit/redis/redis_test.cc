// The Redis client's pure parts, without sockets: URLs, RESP encoding, reply conversion.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "redis/client.h"

namespace gatehouse::redis {
namespace {

TEST(RedisUrl, Defaults) {
  std::string error;
  auto ep = parse_url("redis://localhost", &error);
  ASSERT_TRUE(ep) << error;
  EXPECT_EQ(ep->host, "localhost");
  EXPECT_EQ(ep->port, 6379);
  EXPECT_EQ(ep->db, 0);
  EXPECT_EQ(ep->password, "");
}

TEST(RedisUrl, AllParts) {
  std::string error;
  auto ep = parse_url("redis://:s3cret@10.0.0.5:6380/4", &error);
  ASSERT_TRUE(ep) << error;
  EXPECT_EQ(ep->host, "10.0.0.5");
  EXPECT_EQ(ep->port, 6380);
  EXPECT_EQ(ep->db, 4);
  EXPECT_EQ(ep->password, "s3cret");
}

TEST(RedisUrl, PasswordWithAtAndPercentEncoding) {
  std::string error;
  auto ep = parse_url("redis://:p@ss%2Fw%3ard@host/", &error);
  ASSERT_TRUE(ep) << error;
  EXPECT_EQ(ep->password, "p@ss/w:rd");
  EXPECT_EQ(ep->host, "host");
  EXPECT_EQ(ep->db, 0);
}

TEST(RedisUrl, RedissMeansTls) {
  std::string error;
  auto ep = parse_url("rediss://:pw@cache.example:6380/1", &error);
  ASSERT_TRUE(ep) << error;
  EXPECT_TRUE(ep->tls);
  EXPECT_EQ(ep->host, "cache.example");
  EXPECT_EQ(ep->port, 6380);
  EXPECT_EQ(ep->db, 1);
  EXPECT_EQ(ep->password, "pw");
  EXPECT_FALSE(parse_url("redis://cache.example", &error)->tls);
}

// Values from a real cluster's CLUSTER KEYSLOT.
TEST(RedisCluster, HashSlotsAsRedisComputesThem) {
  EXPECT_EQ(hash_slot("foo"), 12182u);
  EXPECT_EQ(hash_slot("bar"), 5061u);
  EXPECT_EQ(hash_slot("hello"), 866u);
  EXPECT_EQ(hash_slot("123456789"), 12739u);  // CRC16/XMODEM check value 0x31C3
  EXPECT_EQ(hash_slot("{user1000}.following"), 3443u);
  EXPECT_EQ(hash_slot("{user1000}.followers"), 3443u) << "one hash tag, one slot";
  EXPECT_EQ(hash_slot("{}x"), 10595u) << "an empty tag does not count: the whole key";
  EXPECT_EQ(hash_slot("x{}"), 2608u);
  EXPECT_EQ(hash_slot("{a}{b}"), hash_slot("a")) << "the first tag only";
  EXPECT_EQ(hash_slot("gh:rl:abc:{ip:127.0.0.1}:0"), 5384u);
}

// A command goes to the node of its key: the first argument, but for the stream reads, whose
// first arguments are options (routing XREAD by "BLOCK" cost a MOVED every time).
TEST(RedisCluster, RoutesByTheKeyEvenWhenOptionsComeFirst) {
  using Args = std::vector<std::string_view>;
  const auto key = [](Args a) { return routing_key(a); };
  EXPECT_EQ(key({"GET", "k"}), "k");
  EXPECT_EQ(key({"XADD", "gh:cp", "MAXLEN", "~", "10", "*", "f", "v"}), "gh:cp");
  EXPECT_EQ(key({"XREAD", "BLOCK", "1000", "STREAMS", "gh:cp", "$"}), "gh:cp");
  EXPECT_EQ(key({"xread", "count", "5", "streams", "a", "b", "0", "0"}), "a");
  EXPECT_EQ(key({"XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"}), "s");
  EXPECT_EQ(key({"XREAD", "BLOCK", "1000"}), "") << "no STREAMS: no key";
  EXPECT_EQ(key({"XREAD", "STREAMS"}), "") << "STREAMS last: no key";
  EXPECT_EQ(key({"PING"}), "");
  EXPECT_EQ(key({}), "");
}

TEST(RedisUrl, AclUser) {
  std::string error;
  auto ep = parse_url("redis://gate%2Dway:p%40ss@host", &error);
  ASSERT_TRUE(ep) << error;
  EXPECT_EQ(ep->user, "gate-way");
  EXPECT_EQ(ep->password, "p@ss");
  EXPECT_EQ(parse_url("redis://:pw@host", &error)->user, "") << "the default user";
}

TEST(RedisUrl, Ipv6) {
  std::string error;
  auto ep = parse_url("redis://[::1]:7000/2", &error);
  ASSERT_TRUE(ep) << error;
  EXPECT_EQ(ep->host, "::1");
  EXPECT_EQ(ep->port, 7000);
  EXPECT_EQ(ep->db, 2);
  ep = parse_url("redis://[fe80::1]", &error);
  ASSERT_TRUE(ep) << error;
  EXPECT_EQ(ep->host, "fe80::1");
  EXPECT_EQ(ep->port, 6379);
}

TEST(RedisUrl, Malformed) {
  const char* bad[] = {
      "",
      "http://host",
      "rediss://",       // no host
      "redis://",        // no host
      "redis://:pw@",    // no host
      "redis://host:",   // empty port
      "redis://host:0",  // port 0
      "redis://host:65536",
      "redis://host:12ab",
      "redis://host:-1",
      "redis://host/x",  // db not a number
      "redis://host/-1",
      "redis://host/1/2",
      "redis://user:@host",    // a user needs a password
      "redis://u%zz:pw@host",  // bad escape in the user
      "redis://pw@host",       // a password needs its ':'
      "redis://:p%zzw@host",   // bad escape
      "redis://:pw%4@host",
      "redis://[::1",
      "redis://[::1]x",
      "redis://host?db=1",
  };
  for (const char* url : bad) {
    std::string error;
    EXPECT_FALSE(parse_url(url, &error)) << url;
    EXPECT_FALSE(error.empty()) << url;
  }
  EXPECT_FALSE(parse_url("redis://", nullptr));  // the error is optional
}

TEST(RedisResp, EncodesArraysOfBulkStrings) {
  std::string out;
  std::vector<std::string_view> args{"SET", "key", "value"};
  append_command(out, args);
  EXPECT_EQ(out, "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n");
  // Appends; binary and empty arguments are length-prefixed, never escaped.
  std::string binary("a\r\n\0b", 5);
  std::vector<std::string_view> more{"ECHO", binary, ""};
  append_command(out, more);
  static constexpr char kExpected[] =
      "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"
      "*3\r\n$4\r\nECHO\r\n$5\r\na\r\n\0b\r\n$0\r\n\r\n";
  EXPECT_EQ(out, std::string(kExpected, sizeof(kExpected) - 1));
  std::string empty;
  append_command(empty, std::span<const std::string_view>());
  EXPECT_EQ(empty, "*0\r\n");
}

TEST(RedisResp, ReadsEveryReplyType) {
  ReplyReader reader;
  ASSERT_TRUE(
      reader.feed("+OK\r\n-ERR wrong\r\n:-42\r\n$5\r\nhe\r\no\r\n$-1\r\n"
                  "*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n+x\r\n*-1\r\n*0\r\n"));
  Reply r;
  ASSERT_EQ(reader.next(&r), ReplyReader::Status::kReply);
  EXPECT_EQ(r.type, Reply::Type::kStatus);
  EXPECT_EQ(r.str, "OK");
  ASSERT_EQ(reader.next(&r), ReplyReader::Status::kReply);
  EXPECT_EQ(r.type, Reply::Type::kError);
  EXPECT_TRUE(r.is_error());
  EXPECT_EQ(r.str, "ERR wrong");
  ASSERT_EQ(reader.next(&r), ReplyReader::Status::kReply);
  EXPECT_EQ(r.type, Reply::Type::kInteger);
  EXPECT_EQ(r.integer, -42);
  ASSERT_EQ(reader.next(&r), ReplyReader::Status::kReply);
  EXPECT_EQ(r.type, Reply::Type::kString);
  EXPECT_EQ(r.str, "he\r\no");
  ASSERT_EQ(reader.next(&r), ReplyReader::Status::kReply);
  EXPECT_EQ(r.type, Reply::Type::kNil);
  ASSERT_EQ(reader.next(&r), ReplyReader::Status::kReply);
  ASSERT_EQ(r.type, Reply::Type::kArray);
  ASSERT_EQ(r.elements.size(), 3u);
  EXPECT_EQ(r.elements[0].integer, 1);
  ASSERT_EQ(r.elements[1].type, Reply::Type::kArray);
  ASSERT_EQ(r.elements[1].elements.size(), 2u);
  EXPECT_EQ(r.elements[1].elements[0].str, "a");
  EXPECT_EQ(r.elements[1].elements[1].type, Reply::Type::kNil);
  EXPECT_EQ(r.elements[2].type, Reply::Type::kStatus);
  ASSERT_EQ(reader.next(&r), ReplyReader::Status::kReply);
  EXPECT_EQ(r.type, Reply::Type::kNil);  // a null array
  ASSERT_EQ(reader.next(&r), ReplyReader::Status::kReply);
  EXPECT_EQ(r.type, Reply::Type::kArray);
  EXPECT_TRUE(r.elements.empty());
  EXPECT_EQ(reader.next(&r), ReplyReader::Status::kNeedMore);
}

TEST(RedisResp, ReassemblesRepliesSplitAnywhere) {
  const std::string stream = "*2\r\n$11\r\nhello world\r\n:12345\r\n+PONG\r\n";
  ReplyReader reader;
  std::vector<Reply> got;
  for (char c : stream) {
    ASSERT_TRUE(reader.feed(std::string_view(&c, 1)));
    Reply r;
    while (reader.next(&r) == ReplyReader::Status::kReply) got.push_back(r);
  }
  ASSERT_EQ(got.size(), 2u);
  ASSERT_EQ(got[0].elements.size(), 2u);
  EXPECT_EQ(got[0].elements[0].str, "hello world");
  EXPECT_EQ(got[0].elements[1].integer, 12345);
  EXPECT_EQ(got[1].str, "PONG");
}

TEST(RedisResp, RejectsWhatIsNotResp) {
  ReplyReader reader;
  ASSERT_TRUE(reader.feed("HTTP/1.1 200 OK\r\n"));
  Reply r;
  EXPECT_EQ(reader.next(&r), ReplyReader::Status::kError);
  ReplyReader bad_length;
  ASSERT_TRUE(bad_length.feed("$abc\r\n"));
  EXPECT_EQ(bad_length.next(&r), ReplyReader::Status::kError);
}

// hiredis would allocate the whole table of elements on reading the count (out of memory under
// fuzz/redis_resp.cc): more than a CLUSTER SLOTS reply can hold is refused.
TEST(RedisResp, RefusesHugeArrayCounts) {
  Reply r;
  ReplyReader huge;
  ASSERT_TRUE(huge.feed("*2000000000\r\n"));
  EXPECT_EQ(huge.next(&r), ReplyReader::Status::kError);
  ReplyReader nested;
  ASSERT_TRUE(nested.feed("*1\r\n*1048577\r\n"));
  EXPECT_EQ(nested.next(&r), ReplyReader::Status::kError);
  ReplyReader large;
  ASSERT_TRUE(large.feed("*16384\r\n"));
  EXPECT_EQ(large.next(&r), ReplyReader::Status::kNeedMore);
  ReplyReader fine;
  ASSERT_TRUE(fine.feed("*2\r\n:1\r\n*0\r\n"));
  ASSERT_EQ(fine.next(&r), ReplyReader::Status::kReply);
  EXPECT_EQ(r.elements.size(), 2u);
}

TEST(RedisScript, Sha1ComputedOnce) {
  Script s("return 1");
  EXPECT_EQ(s.body(), "return 1");
  EXPECT_EQ(s.sha1(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
  EXPECT_EQ(Script("").sha1(), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

}  // namespace
}  // namespace gatehouse::redis
