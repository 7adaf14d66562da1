// Asynchronous Redis client for the data plane (the rate_limit filter's cluster scope first).
// hiredis is used only as a RESP protocol reader; all I/O is Asio on the worker's io_context, and
// nothing here ever blocks the worker thread. Asio and hiredis stay out of the headers users
// include: this one brings the endpoint (endpoint.h), RESP types (resp.h) and hash slots
// (cluster.h) with it; the connections (connection.h) are private to src/redis/.
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

#include "redis/cluster.h"
#include "redis/endpoint.h"
#include "redis/resp.h"

namespace boost::asio {
class io_context;
}

namespace gatehouse::redis {

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
  // it would only cost the connection). On a Cluster the command goes to the node that serves
  // the hash slot of its key, args[1] (GET, HGET, DEL, SMEMBERS...), following MOVED and ASK as
  // eval() does; a command of one word (PING) goes to the seed.
  void command(std::span<const std::string_view> args, std::chrono::milliseconds timeout,
               Callback done);
  void command(std::initializer_list<std::string_view> args, std::chrono::milliseconds timeout,
               Callback done) {
    command(std::span<const std::string_view>(args.begin(), args.size()), timeout, std::move(done));
  }

  // The servers that hold the data: the one server, or the masters of a Cluster's hash slots (as
  // the client knows them now), for a command that each must run (SCAN) through command_on().
  std::vector<size_t> masters() const;
  void command_on(size_t master, std::span<const std::string_view> args,
                  std::chrono::milliseconds timeout, Callback done);
  void command_on(size_t master, std::initializer_list<std::string_view> args,
                  std::chrono::milliseconds timeout, Callback done) {
    command_on(master, std::span<const std::string_view>(args.begin(), args.size()), timeout,
               std::move(done));
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
  // Every server that holds data has a connection up (on a Cluster: the slot map known, and each
  // master reached). Data-plane commands fail fast instead; a job that must reach every master (a
  // purge, on a client of its own) waits for this.
  bool masters_up() const;
  // Closes everything for good; pending callbacks get kDisconnected, later commands too.
  void stop();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace gatehouse::redis
