// RESP, the Redis protocol: commands encoded as arrays of bulk strings, replies read incrementally
// (hiredis's protocol reader only; hiredis stays in resp.cc), and the reply and failure types every
// caller of the client sees. No I/O here, so all of it is tested without sockets.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace gatehouse::redis {

// A parsed RESP reply, owned.
struct Reply {
  enum class Type { kString, kStatus, kError, kInteger, kNil, kArray };
  Type type = Type::kNil;
  std::string str;  // kString, kStatus, kError
  int64_t integer = 0;
  std::vector<Reply> elements;  // kArray

  bool is_error() const { return type == Type::kError; }
};

enum class Failure {
  kTimeout,       // no reply within the command's timeout
  kDisconnected,  // no connection up, the connection broke, or the client was stopped
  kProtocol,      // the server sent bytes that are not RESP
};
const char* to_string(Failure f);

// A reply (which may be a Redis error reply), or why there is none.
using Result = std::variant<Reply, Failure>;
using Callback = std::function<void(Result)>;

// Appends `args` as one RESP array of bulk strings (the request encoding Redis expects).
void append_command(std::string& out, std::span<const std::string_view> args);
// The pieces of that encoding, for a command built in parts (EVALSHA, then EVAL on NOSCRIPT):
// "<prefix><n>\r\n" (an array's or a bulk string's length), and one bulk string.
void append_length(std::string& out, char prefix, size_t n);
void append_bulk(std::string& out, std::string_view s);

// Incremental RESP reader over hiredis's protocol reader (redisReaderFeed/GetReply). Used by the
// client for every connection; exposed for tests.
class ReplyReader {
 public:
  ReplyReader();
  ~ReplyReader();
  ReplyReader(const ReplyReader&) = delete;
  ReplyReader& operator=(const ReplyReader&) = delete;

  // Returns false when the reader cannot take the bytes (out of memory or already broken).
  bool feed(std::string_view bytes);
  enum class Status { kReply, kNeedMore, kError };
  // kReply: *out holds the next complete reply. kError: the stream is not RESP; the reader is
  // then unusable (the connection must be closed).
  Status next(Reply* out);

 private:
  void* reader_;  // redisReader
};

// A decimal number as Redis writes them in replies, URLs and redirections: digits only (no sign,
// no spaces), at most `max`.
std::optional<long> parse_number(std::string_view s, long max);

}  // namespace gatehouse::redis
