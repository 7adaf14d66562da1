// One connection to one Redis server (private to src/redis/): a Link is one socket from connect to
// close, with AUTH and SELECT, pipelined commands and replies matched in order; a Slot keeps one
// Link up, replacing it with backoff after a failure. The client (client.cc) holds a few Slots per
// server. Everything runs on the worker's io_context thread.
#pragma once

#include <array>
#include <boost/asio/ip/basic_resolver.hpp>
#include <chrono>
#include <deque>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include "net/asio.h"
#include "net/stream.h"
#include "redis/endpoint.h"
#include "redis/resp.h"

namespace gatehouse::redis {

namespace asio = net::asio;
using Resolver = asio::ip::basic_resolver<net::tcp, net::Executor>;

// Replies of the rate-limit script are a few dozen bytes; one read takes a whole burst of them.
constexpr size_t kReadChunk = 16 * 1024;
// A Slot reconnects after this wait, doubled after each failed attempt up to kMaxBackoff, and
// back to this once a connection is up again.
constexpr std::chrono::milliseconds kFirstBackoff{50};
constexpr std::chrono::milliseconds kMaxBackoff{2000};

class Slot;

// One TCP connection (TLS on top for rediss://), from connect to close; never reused after it
// closed (a new Link replaces it), so a late completion from an old socket can never touch a new
// connection's state. Every asynchronous operation holds a shared_ptr to its Link.
class Link : public std::enable_shared_from_this<Link> {
 public:
  enum class State { kConnecting, kUp, kClosed };

  Link(asio::io_context& io, std::shared_ptr<const Endpoint> endpoint, Slot* slot)
      : stream_(io.get_executor()),
        timer_(io.get_executor()),
        resolver_(io.get_executor()),
        endpoint_(std::move(endpoint)),
        slot_(slot) {}

  void start();
  bool up() const { return state_ == State::kUp; }
  // Commands are encoded straight into the output buffer, then enqueue()d.
  std::string& out() { return out_; }
  void enqueue(net::Clock::time_point deadline, Callback done) {
    pending_.push_back({deadline, std::move(done)});
    arm(deadline);
    schedule_flush();
  }
  // Closes the socket and fails every pending command: kTimeout when its own deadline has passed,
  // else `why`. Callbacks are posted when `post` (stop: the caller is a user call), else called
  // here (we are in a completion handler). Detaches from the slot, which then reconnects.
  void close(Failure why, std::string_view reason, bool post);
  void detach() { slot_ = nullptr; }

 private:
  struct Pending {
    net::Clock::time_point deadline;
    Callback done;
  };

  template <class Endpoints>
  void connect_to(const Endpoints& endpoints);
  void on_connected();
  static net::Task<> tls_handshake(std::shared_ptr<Link> self);
  void on_secure();  // connected, and TLS established when there is TLS
  void handshake(std::initializer_list<std::string_view> args);
  void start_read();
  static net::Task<> tls_read_loop(std::shared_ptr<Link> self);
  bool on_read(boost::system::error_code ec, size_t n);  // false: the link closed
  static net::Task<> write_rest(std::shared_ptr<Link> self, std::string_view rest);
  void schedule_flush();
  void flush();
  void arm(net::Clock::time_point t);
  void on_timer();

  net::Stream stream_;
  net::Timer timer_;
  Resolver resolver_;
  std::shared_ptr<const Endpoint> endpoint_;
  Slot* slot_;  // null once closed or detached
  State state_ = State::kConnecting;
  net::Clock::time_point connect_deadline_;
  int handshake_left_ = 0;  // AUTH / SELECT replies still awaited
  ReplyReader reader_;
  std::deque<Pending> pending_;  // in the order the commands were written
  std::string out_;              // encoded, not yet handed to the socket
  std::string writing_buf_;      // being written by async_write
  bool writing_ = false;
  bool flush_posted_ = false;
  // The deadline timer is re-armed lazily: only for a deadline earlier than the armed one; when
  // it fires it finds the next deadline itself. timer_gen_ tells a stale wait from the live one.
  bool waiting_ = false;
  net::Clock::time_point armed_at_;
  uint64_t timer_gen_ = 0;
  std::array<char, kReadChunk> read_buf_;
};

// One of the client's persistent connections: keeps a Link up, reconnecting with backoff.
class Slot : public std::enable_shared_from_this<Slot> {
 public:
  Slot(asio::io_context& io, std::shared_ptr<const Endpoint> endpoint)
      : io_(io), timer_(io.get_executor()), endpoint_(std::move(endpoint)) {}

  void connect();
  Link* up_link() const { return link_ && link_->up() ? link_.get() : nullptr; }
  void stop();
  void on_up();
  // The link is closed (the caller holds it alive). One log line per outage, not per attempt.
  void on_closed(bool was_up, std::string_view reason);

 private:
  asio::io_context& io_;
  net::Timer timer_;
  std::shared_ptr<const Endpoint> endpoint_;
  std::shared_ptr<Link> link_;  // null while waiting to reconnect
  std::chrono::milliseconds backoff_ = kFirstBackoff;
  bool stopped_ = false;
  bool reported_down_ = false;
};

}  // namespace gatehouse::redis
