// RESP encoding and decoding (redis/resp.h): hiredis's reader turned into owned Reply values.
#include "redis/resp.h"

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <charconv>

namespace gatehouse::redis {
namespace {

Reply convert(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(r->elements);
      // hiredis bounds the nesting (7 levels), so the recursion is bounded too.
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default:
      out.type = Reply::Type::kNil;
      break;
  }
  return out;
}

// hiredis 0.14 allocates an array reply's table of elements as soon as it reads the count, and
// bounds the count only by INT_MAX (1.0's maxelements is not in Debian 12's 0.14): 13 bytes from
// the server, "*2000000000\r\n", were a 16 GB calloc (out of memory under fuzz/redis_resp.cc). The
// largest reply the client reads is CLUSTER SLOTS, one element per range of slots (at most 16384),
// so a count above 2^20 is refused: a null object from createArray is a reader error in hiredis,
// and the connection closes as on any protocol error.
constexpr int kMaxArrayElements = 1 << 20;

// hiredis's own reply functions (static in hiredis.c, so read from a reader that uses them).
const redisReplyObjectFunctions* hiredis_functions() {
  static const redisReplyObjectFunctions* fn = [] {
    static redisReplyObjectFunctions copy;
    redisReader* r = redisReaderCreate();
    bool got = r && r->fn;
    if (got) copy = *r->fn;
    if (r) redisReaderFree(r);
    return got ? &copy : nullptr;
  }();
  return fn;
}

void* create_bounded_array(const redisReadTask* task, int elements) {
  if (elements > kMaxArrayElements) return nullptr;
  return hiredis_functions()->createArray(task, elements);
}

// hiredis's functions with create_bounded_array; null when hiredis could not be asked for its own.
redisReplyObjectFunctions* bounded_functions() {
  static redisReplyObjectFunctions* fn = [] {
    static redisReplyObjectFunctions bounded;
    const redisReplyObjectFunctions* base = hiredis_functions();
    if (!base || !base->createArray) return static_cast<redisReplyObjectFunctions*>(nullptr);
    bounded = *base;
    bounded.createArray = create_bounded_array;
    return &bounded;
  }();
  return fn;
}

}  // namespace

const char* to_string(Failure f) {
  switch (f) {
    case Failure::kTimeout:
      return "timeout";
    case Failure::kDisconnected:
      return "disconnected";
    case Failure::kProtocol:
      return "protocol error";
  }
  return "unknown";
}

void append_length(std::string& out, char prefix, size_t n) {
  char buf[24];
  buf[0] = prefix;
  auto end = std::to_chars(buf + 1, buf + sizeof(buf) - 2, n).ptr;
  *end++ = '\r';
  *end++ = '\n';
  out.append(buf, end);
}

void append_bulk(std::string& out, std::string_view s) {
  append_length(out, '$', s.size());
  out.append(s);
  out.append("\r\n", 2);
}

void append_command(std::string& out, std::span<const std::string_view> args) {
  append_length(out, '*', args.size());
  for (auto a : args) append_bulk(out, a);
}

ReplyReader::ReplyReader() {
  redisReplyObjectFunctions* fn = bounded_functions();
  reader_ = fn ? redisReaderCreateWithFunctions(fn) : nullptr;  // null: feed() fails
}

ReplyReader::~ReplyReader() {
  if (reader_) redisReaderFree(static_cast<redisReader*>(reader_));
}

bool ReplyReader::feed(std::string_view bytes) {
  return reader_ && redisReaderFeed(static_cast<redisReader*>(reader_), bytes.data(),
                                    bytes.size()) == REDIS_OK;
}

ReplyReader::Status ReplyReader::next(Reply* out) {
  if (!reader_) return Status::kError;
  void* obj = nullptr;
  if (redisReaderGetReply(static_cast<redisReader*>(reader_), &obj) != REDIS_OK) {
    return Status::kError;
  }
  if (!obj) return Status::kNeedMore;
  *out = convert(static_cast<const redisReply*>(obj));
  freeReplyObject(obj);
  return Status::kReply;
}

std::optional<long> parse_number(std::string_view s, long max) {
  long v = 0;
  if (s.empty() || s.size() > 10) return std::nullopt;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v < 0 || v > max) return std::nullopt;
  return v;
}

}  // namespace gatehouse::redis
