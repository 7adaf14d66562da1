// Asynchronous Redis client for the data plane (the rate_limit filter's cluster scope first).
// hiredis is used only as a RESP protocol reader; all I/O is Asio on the worker's io_context, and
// nothing here ever blocks the worker thread. Asio and hiredis stay in client.cc.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace boost::asio {
class io_context;
}
namespace gatehouse::tls {
class ClientContext;
}

namespace gatehouse::redis {

struct Endpoint {
  std::string host = "127.0.0.1";
  uint16_t port = 6379;
  int db = 0;
  std::string user;      // a Redis 6 ACL user (AUTH user password); empty: the default user
  std::string password;  // sent with AUTH on connect when not empty
  bool tls = false;       // rediss://: TLS to Redis, with tls_context (which the caller sets)
  bool cluster = false;   // Redis Cluster: this server is the seed of the map of hash slots
  // Redis Sentinel: these sentinels name the master; `host` is then the master's name.
  std::vector<std::pair<std::string, uint16_t>> sentinels;
  std::shared_ptr<const tls::ClientContext> tls_context;
  // Limit for one connection attempt: TCP connect, TLS handshake, AUTH and SELECT (not in the URL).
  std::chrono::milliseconds connect_timeout{1000};
};

// Parses redis://[[user]:password@]host[:port][/db], or rediss:// for TLS (user and password may
// be percent-encoded, an IPv6 host is written in brackets). nullopt and *error (when given) say why
// when malformed.
std::optional<Endpoint> parse_url(std::string_view url, std::string* error);

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

// A Lua script with its SHA-1 (hex), computed once, for EVALSHA. Build it at config load and keep
// it alive while commands use it: eval() holds a reference (not a shared_ptr, whose count would be
// one cache line bounced between every worker on each call) until its callback has run.
class Script {
 public:
  explicit Script(std::string body);
  const std::string& body() const { return body_; }
  const std::string& sha1() const { return sha1_; }

 private:
  std::string body_;
  std::string sha1_;
};

// The Redis Cluster hash slot of `key` (0-16383): CRC16 of the key, or of its {hash tag}.
size_t hash_slot(std::string_view key);

// Appends `args` as one RESP array of bulk strings (the request encoding Redis expects).
void append_command(std::string& out, std::span<const std::string_view> args);

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

// One per worker thread, bound to that worker's io_context; not thread-safe: every call, and every
// callback, happens on the io_context's thread.
//
// Keeps `connections` persistent connections, pipelines commands on them (requests written back
// to back, one write per event-loop turn per connection; replies matched in order), reconnects
// each connection with exponential backoff (50 ms doubling to 2 s, reset once it is up again)
// after a failure, and fails fast (kDisconnected, without waiting) while no connection is up.
// Connecting starts in the constructor, so the first commands fail fast until the first
// connection is up. AUTH and SELECT are sent on connect when configured; a connection is up only
// once they succeeded.
//
// Callbacks: `done` runs exactly once, always from the io_context (posted; never inline inside
// command(), eval(), stop() or the destructor, so a callback may call into the client or destroy
// it). stop() and the destructor hand every pending callback kDisconnected that way, so those run
// after the client is gone: they must not use it. If the io_context is destroyed without running
// them, they are destroyed uncalled (like any handler).
class Client {
 public:
  Client(boost::asio::io_context& io, Endpoint endpoint, int connections = 2);
  ~Client();  // stop()
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends one command; `done` gets the reply or a failure, at the latest `timeout` after the call
  // (kTimeout; the connection the command went on is then closed and reconnected, since its reply
  // order can no longer be trusted; the other commands pending on it get kDisconnected, or
  // kTimeout when their own timeout has passed too). The arguments are encoded before the call
  // returns, so views are enough. A timeout of zero or less fails at once with kTimeout (sending
  // it would only cost the connection).
  void command(std::span<const std::string_view> args, std::chrono::milliseconds timeout,
               Callback done);
  void command(std::initializer_list<std::string_view> args, std::chrono::milliseconds timeout,
               Callback done) {
    command(std::span<const std::string_view>(args.begin(), args.size()), timeout, std::move(done));
  }

  // EVALSHA of `script`, falling back to EVAL on NOSCRIPT transparently, within the same timeout.
  // `script` must outlive the callback (see Script).
  void eval(const Script& script, std::span<const std::string_view> keys,
            std::span<const std::string_view> args, std::chrono::milliseconds timeout,
            Callback done);
  void eval(const Script& script, std::initializer_list<std::string_view> keys,
            std::initializer_list<std::string_view> args, std::chrono::milliseconds timeout,
            Callback done) {
    eval(script, std::span<const std::string_view>(keys.begin(), keys.size()),
         std::span<const std::string_view>(args.begin(), args.size()), timeout, std::move(done));
  }

  bool connected() const;  // at least one connection is up
  // Closes everything for good; pending callbacks get kDisconnected, later commands too.
  void stop();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace gatehouse::redis
