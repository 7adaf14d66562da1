// One Redis connection (redis/connection.h): connect (resolve, TCP, TLS, AUTH, SELECT), pipelined
// writes, replies matched in order, deadlines, and the reconnecting Slot around it.
#include "redis/connection.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>

#include "observe/log.h"

namespace gatehouse::redis {

using net::Clock;
using net::tcp;

void Slot::connect() {
  link_ = std::make_shared<Link>(io_, endpoint_, this);
  link_->start();
}

void Slot::stop() {
  stopped_ = true;
  timer_.cancel();
  if (auto link = std::move(link_)) {
    link->detach();
    link->close(Failure::kDisconnected, "client stopped", /*post=*/true);
  }
}

void Slot::on_up() {
  backoff_ = kFirstBackoff;
  if (reported_down_) {
    spdlog::info("redis: connected again to {}:{}", endpoint_->host, endpoint_->port);
    reported_down_ = false;
  }
}

void Slot::on_closed(bool was_up, std::string_view reason) {
  link_.reset();
  if (stopped_) return;
  if (was_up || !reported_down_) {
    spdlog::warn("redis: connection to {}:{} {}: {}; reconnecting with backoff", endpoint_->host,
                 endpoint_->port, was_up ? "lost" : "failed", reason);
    reported_down_ = true;
  }
  timer_.expires_after(backoff_);
  backoff_ = std::min(backoff_ * 2, kMaxBackoff);
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec && !self->stopped_) self->connect();
  });
}

void Link::start() {
  connect_deadline_ = Clock::now() + endpoint_->connect_timeout;
  arm(connect_deadline_);
  boost::system::error_code ec;
  auto address = asio::ip::make_address(endpoint_->host, ec);
  if (!ec) {
    connect_to(std::array<tcp::endpoint, 1>{tcp::endpoint(address, endpoint_->port)});
    return;
  }
  // getaddrinfo runs on Asio's private resolver thread, never on the worker.
  resolver_.async_resolve(
      endpoint_->host, std::to_string(endpoint_->port),
      [self = shared_from_this()](boost::system::error_code ec, Resolver::results_type results) {
        if (self->state_ == State::kClosed) return;
        if (ec) {
          return self->close(Failure::kDisconnected, "cannot resolve: " + ec.message(), false);
        }
        self->connect_to(results);
      });
}

template <class Endpoints>
void Link::connect_to(const Endpoints& endpoints) {
  asio::async_connect(stream_.socket(), endpoints,
                      [self = shared_from_this()](boost::system::error_code ec, const auto&) {
                        if (self->state_ == State::kClosed) return;
                        if (ec) {
                          return self->close(Failure::kDisconnected,
                                             "cannot connect: " + ec.message(), false);
                        }
                        self->on_connected();
                      });
}

void Link::on_connected() {
  boost::system::error_code ignored;
  stream_.socket().set_option(tcp::no_delay(true), ignored);
  stream_.socket().non_blocking(true, ignored);  // for the synchronous first write in flush()
  if (!endpoint_->tls) return on_secure();
  std::string_view name = endpoint_->tls_context->server_name_for(endpoint_->host);
  if (!stream_.start_tls_client(*endpoint_->tls_context, name, nullptr))
    return close(Failure::kDisconnected, "cannot make a TLS session", false);
  // Under the connect deadline, like the TCP connect: the timer closes the socket.
  asio::co_spawn(stream_.socket().get_executor(), tls_handshake(shared_from_this()),
                 asio::detached);
}

net::Task<> Link::tls_handshake(std::shared_ptr<Link> self) {
  std::string why = "the connection closed";
  bool ok = co_await self->stream_.handshake(&why);
  if (self->state_ == State::kClosed) co_return;
  if (!ok) {
    self->close(Failure::kDisconnected, "TLS handshake failed: " + why, false);
    co_return;
  }
  self->on_secure();
}

void Link::on_secure() {
  start_read();
  if (!endpoint_->user.empty())
    handshake({"AUTH", endpoint_->user, endpoint_->password});  // Redis 6 ACLs
  else if (!endpoint_->password.empty())
    handshake({"AUTH", endpoint_->password});
  if (endpoint_->db != 0) {
    auto db = std::to_string(endpoint_->db);
    handshake({"SELECT", db});
  }
  if (handshake_left_ == 0) {
    state_ = State::kUp;
    if (slot_) slot_->on_up();
  }
}

// AUTH and SELECT are pipelined like any command; the link counts as up once both succeeded.
void Link::handshake(std::initializer_list<std::string_view> args) {
  ++handshake_left_;
  std::string what(*args.begin());
  append_command(out_, std::span<const std::string_view>(args.begin(), args.size()));
  enqueue(connect_deadline_, [self = shared_from_this(), what](Result r) {
    if (self->state_ != State::kConnecting) return;  // closed meanwhile
    auto* reply = std::get_if<Reply>(&r);
    if (!reply || reply->is_error()) {
      std::string why = what + " failed: " + (reply ? reply->str : to_string(std::get<Failure>(r)));
      return self->close(Failure::kDisconnected, why, false);
    }
    if (--self->handshake_left_ == 0) {
      self->state_ = State::kUp;
      if (self->slot_) self->slot_->on_up();
    }
  });
}

// Plain TCP reads with a callback straight from the reactor; TLS reads go through OpenSSL in one
// coroutine that lives as long as the link.
void Link::start_read() {
  if (stream_.tls()) {
    asio::co_spawn(stream_.socket().get_executor(), tls_read_loop(shared_from_this()),
                   asio::detached);
    return;
  }
  stream_.socket().async_read_some(
      asio::buffer(read_buf_), [self = shared_from_this()](boost::system::error_code ec, size_t n) {
        if (self->on_read(ec, n)) self->start_read();
      });
}

net::Task<> Link::tls_read_loop(std::shared_ptr<Link> self) {
  for (;;) {
    auto read = co_await self->stream_.read_some(asio::buffer(self->read_buf_));
    if (!self->on_read(std::get<0>(read), std::get<1>(read))) co_return;
  }
}

bool Link::on_read(boost::system::error_code ec, size_t n) {
  if (state_ == State::kClosed) return false;
  if (ec || n == 0) {
    close(Failure::kDisconnected,
          ec == asio::error::eof || !ec ? "closed by the server" : ec.message(), false);
    return false;
  }
  if (!reader_.feed(std::string_view(read_buf_.data(), n))) {
    close(Failure::kProtocol, "the reply reader failed", false);
    return false;
  }
  for (;;) {
    Reply reply;
    auto status = reader_.next(&reply);
    if (status == ReplyReader::Status::kNeedMore) break;
    if (status == ReplyReader::Status::kError) {
      close(Failure::kProtocol, "not RESP", false);
      return false;
    }
    if (pending_.empty()) {
      close(Failure::kProtocol, "a reply nobody asked for", false);
      return false;
    }
    Callback done = std::move(pending_.front().done);
    pending_.pop_front();
    done(std::move(reply));
    // The callback may have stopped or destroyed the client (which closed this link).
    if (state_ == State::kClosed) return false;
  }
  return true;
}

// One write per event-loop turn: the commands issued during a turn leave in one send.
void Link::schedule_flush() {
  if (flush_posted_ || writing_) return;
  flush_posted_ = true;
  asio::post(stream_.socket().get_executor(), [self = shared_from_this()] {
    self->flush_posted_ = false;
    self->flush();
  });
}

void Link::flush() {
  if (state_ == State::kClosed || writing_ || out_.empty()) return;
  std::swap(out_, writing_buf_);  // writing_buf_ was empty; out_ keeps its capacity for reuse
  std::string_view rest = writing_buf_, none;
  if (!stream_.send_now(rest, none)) return close(Failure::kDisconnected, "write failed", false);
  if (rest.empty()) {
    writing_buf_.clear();
    return;
  }
  writing_ = true;
  asio::co_spawn(stream_.socket().get_executor(), write_rest(shared_from_this(), rest),
                 asio::detached);
}

net::Task<> Link::write_rest(std::shared_ptr<Link> self, std::string_view rest) {
  bool ok = co_await self->stream_.send_rest(rest, {}, nullptr);
  self->writing_ = false;
  if (self->state_ == State::kClosed) co_return;
  if (!ok) {
    self->close(Failure::kDisconnected, "write failed", false);
    co_return;
  }
  self->writing_buf_.clear();
  self->flush();
}

void Link::arm(Clock::time_point t) {
  if (waiting_ && t >= armed_at_) return;
  waiting_ = true;
  armed_at_ = t;
  uint64_t gen = ++timer_gen_;
  timer_.expires_at(t);
  timer_.async_wait([self = shared_from_this(), gen](boost::system::error_code) {
    if (gen != self->timer_gen_ || self->state_ == State::kClosed) return;
    self->waiting_ = false;
    self->on_timer();
  });
}

void Link::on_timer() {
  auto now = Clock::now();
  if (state_ == State::kConnecting && now >= connect_deadline_) {
    return close(Failure::kDisconnected, "connect timed out", false);
  }
  auto next = Clock::time_point::max();
  for (const auto& p : pending_) {
    // The replies on this connection can no longer be matched to their commands: close it.
    if (p.deadline <= now) return close(Failure::kDisconnected, "a command timed out", false);
    next = std::min(next, p.deadline);
  }
  if (state_ == State::kConnecting) next = std::min(next, connect_deadline_);
  if (next != Clock::time_point::max()) arm(next);
}

void Link::close(Failure why, std::string_view reason, bool post) {
  if (state_ == State::kClosed) return;
  auto self = shared_from_this();  // the slot drops its reference in on_closed
  bool was_up = state_ == State::kUp;
  state_ = State::kClosed;
  boost::system::error_code ignored;
  stream_.socket().close(
      ignored);  // no close_notify: a pending TLS write may still hold the session
  timer_.cancel();
  resolver_.cancel();
  auto pending = std::move(pending_);
  pending_.clear();
  if (Slot* slot = std::exchange(slot_, nullptr)) slot->on_closed(was_up, reason);
  auto now = Clock::now();
  for (auto& p : pending) {
    Failure f = p.deadline <= now ? Failure::kTimeout : why;
    if (post) {
      asio::post(stream_.socket().get_executor(), [done = std::move(p.done), f] { done(f); });
    } else {
      p.done(f);
    }
  }
}

}  // namespace gatehouse::redis
