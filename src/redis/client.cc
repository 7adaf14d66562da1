#include "redis/client.h"

#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <openssl/evp.h>

#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/basic_resolver.hpp>
#include <boost/asio/post.hpp>
#include <charconv>
#include <deque>
#include <limits>

#include "crypto/digest.h"
#include "observe/log.h"
#include "net/asio.h"
#include "net/stream.h"

namespace gatehouse::redis {
namespace {

namespace asio = net::asio;
using net::Clock;
using net::tcp;
using Resolver = asio::ip::basic_resolver<tcp, net::Executor>;

constexpr std::chrono::milliseconds kFirstBackoff{50};
constexpr std::chrono::milliseconds kMaxBackoff{2000};
// Replies of the rate-limit script are a few dozen bytes; one read takes a whole burst of them.
constexpr size_t kReadChunk = 16 * 1024;

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

// Digits only (no sign, no spaces), at most `max`.
std::optional<long> parse_number(std::string_view s, long max) {
  long v = 0;
  if (s.empty() || s.size() > 10) return std::nullopt;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v < 0 || v > max) return std::nullopt;
  return v;
}

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
  void enqueue(Clock::time_point deadline, Callback done) {
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
    Clock::time_point deadline;
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
  void arm(Clock::time_point t);
  void on_timer();

  net::Stream stream_;
  net::Timer timer_;
  Resolver resolver_;
  std::shared_ptr<const Endpoint> endpoint_;
  Slot* slot_;  // null once closed or detached
  State state_ = State::kConnecting;
  Clock::time_point connect_deadline_;
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
  Clock::time_point armed_at_;
  uint64_t timer_gen_ = 0;
  std::array<char, kReadChunk> read_buf_;
};

// One of the client's persistent connections: keeps a Link up, reconnecting with backoff.
class Slot : public std::enable_shared_from_this<Slot> {
 public:
  Slot(asio::io_context& io, std::shared_ptr<const Endpoint> endpoint)
      : io_(io), timer_(io.get_executor()), endpoint_(std::move(endpoint)) {}

  void connect() {
    link_ = std::make_shared<Link>(io_, endpoint_, this);
    link_->start();
  }
  Link* up_link() const { return link_ && link_->up() ? link_.get() : nullptr; }

  void stop() {
    stopped_ = true;
    timer_.cancel();
    if (auto link = std::move(link_)) {
      link->detach();
      link->close(Failure::kDisconnected, "client stopped", /*post=*/true);
    }
  }

  void on_up() {
    backoff_ = kFirstBackoff;
    if (reported_down_) {
      spdlog::info("redis: connected again to {}:{}", endpoint_->host, endpoint_->port);
      reported_down_ = false;
    }
  }

  // The link is closed (the caller holds it alive). One log line per outage, not per attempt.
  void on_closed(bool was_up, std::string_view reason) {
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

 private:
  asio::io_context& io_;
  net::Timer timer_;
  std::shared_ptr<const Endpoint> endpoint_;
  std::shared_ptr<Link> link_;  // null while waiting to reconnect
  std::chrono::milliseconds backoff_ = kFirstBackoff;
  bool stopped_ = false;
  bool reported_down_ = false;
};

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
  asio::async_connect(
      stream_.socket(), endpoints, [self = shared_from_this()](boost::system::error_code ec, const auto&) {
        if (self->state_ == State::kClosed) return;
        if (ec) {
          return self->close(Failure::kDisconnected, "cannot connect: " + ec.message(), false);
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
  asio::co_spawn(stream_.socket().get_executor(), tls_handshake(shared_from_this()), asio::detached);
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
    asio::co_spawn(stream_.socket().get_executor(), tls_read_loop(shared_from_this()), asio::detached);
    return;
  }
  stream_.socket().async_read_some(asio::buffer(read_buf_),
                                   [self = shared_from_this()](boost::system::error_code ec, size_t n) {
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
    close(Failure::kDisconnected, ec == asio::error::eof || !ec ? "closed by the server" : ec.message(),
          false);
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
  asio::co_spawn(stream_.socket().get_executor(), write_rest(shared_from_this(), rest), asio::detached);
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
  stream_.socket().close(ignored);  // no close_notify: a pending TLS write may still hold the session
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

std::optional<Endpoint> parse_url(std::string_view url, std::string* error) {
  auto fail = [error](std::string why) -> std::optional<Endpoint> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  const bool secure = url.starts_with("rediss://");
  if (!secure && !url.starts_with("redis://"))
    return fail("expected redis:// or rediss://[[user]:password@]host[:port][/db]");
  std::string_view rest = url.substr(secure ? 9 : 8);
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return fail("query parameters and fragments are not supported");
  }
  Endpoint ep;
  ep.tls = secure;
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash + 1);

  // The last '@' ends the user info, so a password may contain '@'.
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority.remove_prefix(at + 1);
    size_t colon = userinfo.find(':');
    if (colon == std::string_view::npos) return fail("expected [user]:password@ before the host");
    // user (a Redis 6 ACL user; none: the default user) ":" password, both percent-decoded
    auto decode = [](std::string_view in, std::string* out) {
      for (size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
          *out += in[i];
          continue;
        }
        int hi = i + 2 < in.size() ? crypto::hex_value(in[i + 1]) : -1;
        int lo = i + 2 < in.size() ? crypto::hex_value(in[i + 2]) : -1;
        if (hi < 0 || lo < 0) return false;
        *out += static_cast<char>(hi * 16 + lo);
        i += 2;
      }
      return true;
    };
    if (!decode(userinfo.substr(0, colon), &ep.user) || !decode(userinfo.substr(colon + 1), &ep.password))
      return fail("bad percent-encoding in the user or password");
    if (!ep.user.empty() && ep.password.empty()) return fail("a user name needs a password");
  }

  std::string_view port;
  bool has_port = false;
  if (authority.starts_with("[")) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return fail("unclosed '[' in the host");
    ep.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(":")) return fail("unexpected text after the host");
      port = after.substr(1);
      has_port = true;
    }
  } else {
    size_t colon = authority.find(':');
    ep.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      has_port = true;
    }
  }
  if (ep.host.empty()) return fail("missing host");
  if (has_port) {
    auto p = parse_number(port, 65535);
    if (!p || *p == 0) return fail("bad port '" + std::string(port) + "'");
    ep.port = static_cast<uint16_t>(*p);
  }
  if (!path.empty()) {
    auto db = parse_number(path, std::numeric_limits<int>::max());
    if (!db) return fail("bad database number '" + std::string(path) + "'");
    ep.db = static_cast<int>(*db);
  }
  return ep;
}

Script::Script(std::string body) : body_(std::move(body)) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(body_.data(), body_.size(), md, &len, EVP_sha1(), nullptr);
  sha1_ = crypto::hex(md, len);
}

// CRC16-CCITT (XMODEM), as the Redis Cluster specification defines the key hash.
uint16_t crc16(std::string_view s) {
  uint16_t crc = 0;
  for (unsigned char c : s) {
    crc ^= static_cast<uint16_t>(c) << 8;
    for (int i = 0; i < 8; ++i) crc = crc & 0x8000 ? static_cast<uint16_t>((crc << 1) ^ 0x1021) : static_cast<uint16_t>(crc << 1);
  }
  return crc;
}

size_t hash_slot(std::string_view key) {
  // Only what is between the first '{' and the next '}' counts, when that is not empty.
  auto open = key.find('{');
  if (open != std::string_view::npos) {
    auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
  }
  return crc16(key) % 16384;
}

void append_command(std::string& out, std::span<const std::string_view> args) {
  append_length(out, '*', args.size());
  for (auto a : args) append_bulk(out, a);
}

ReplyReader::ReplyReader() : reader_(redisReaderCreate()) {}

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

class Client::Impl {
 public:
  Impl(asio::io_context& io, Endpoint endpoint, int connections)
      : io_(io),
        endpoint_(std::make_shared<const Endpoint>(std::move(endpoint))),
        connections_(std::max(connections, 1)),
        refresh_timer_(io.get_executor()) {
    if (sentinel()) {
      // One connection to each sentinel (no AUTH, database 0: a sentinel has neither); the master
      // is whatever they name.
      for (const auto& [host, port] : endpoint_->sentinels) {
        auto ep = std::make_shared<Endpoint>(*endpoint_);
        ep->host = host;
        ep->port = port;
        ep->user.clear();
        ep->password.clear();
        ep->db = 0;
        sentinels_.push_back(make_node(std::move(ep), 1));
      }
      refresh();
      return;
    }
    nodes_.push_back(make_node(endpoint_, connections_));
    if (cluster()) {
      owner_.assign(kHashSlots, 0);  // everything to the seed until the map is known
      refresh();
    }
  }
  ~Impl() { stop(); }

  void stop() {
    if (stopped_) return;
    stopped_ = true;
    *alive_ = nullptr;  // callbacks that outlive the client (failures, timer) see it is gone
    refresh_timer_.cancel();
    for (auto* nodes : {&nodes_, &sentinels_}) {
      for (auto& node : *nodes) stop_node(node);
    }
  }

  // Cluster mode: only once the map of hash slots is known; sentinel mode: the master's address.
  bool connected() const {
    if ((cluster() || sentinel()) && !topology_known_) return false;
    for (const auto& node : nodes_) {
      for (const auto& s : node.slots) {
        if (s->up_link()) return true;
      }
    }
    return false;
  }

  // Posted, never called inline, so a caller never sees its callback run inside its own call.
  void fail_fast(Callback done, Failure why = Failure::kDisconnected) {
    asio::post(io_, [done = std::move(done), why] { done(why); });
  }

  void command(std::span<const std::string_view> args, Clock::time_point deadline, Callback done) {
    if (deadline <= Clock::now()) return fail_fast(std::move(done), Failure::kTimeout);
    Link* link = nodes_.empty() ? nullptr : pick(nodes_[0]);
    if (!link) return fail_fast(std::move(done));
    append_command(link->out(), args);
    link->enqueue(deadline, std::move(done));
  }

  void eval(const Script& script, std::span<const std::string_view> keys,
            std::span<const std::string_view> args, Clock::time_point deadline, Callback done) {
    if (deadline <= Clock::now()) return fail_fast(std::move(done), Failure::kTimeout);
    // EVALSHA sha numkeys keys... args...; the tail after the SHA is kept for a NOSCRIPT retry.
    auto call = std::make_shared<Eval>(Eval{&script, {}, 0, 3 + keys.size() + args.size(), deadline,
                                            std::move(done)});
    append_length(call->encoded, '*', call->count);
    append_bulk(call->encoded, "EVALSHA");
    append_bulk(call->encoded, script.sha1());
    call->tail = call->encoded.size();
    char num[24];
    auto end = std::to_chars(num, num + sizeof(num), keys.size()).ptr;
    append_bulk(call->encoded, std::string_view(num, end - num));
    for (auto k : keys) append_bulk(call->encoded, k);
    for (auto a : args) append_bulk(call->encoded, a);
    size_t node = cluster() && !keys.empty() ? owner_[hash_slot(keys[0])] : 0;
    if (!send(call, node, /*sha=*/true, /*asking=*/false, kMaxRedirects)) fail_fast(std::move(call->done));
  }

 private:
  static constexpr size_t kHashSlots = 16384;
  static constexpr int kMaxRedirects = 2;

  // The connections to one Redis server: `connections` persistent links, used round robin.
  struct Node {
    std::shared_ptr<const Endpoint> endpoint;
    std::vector<std::shared_ptr<Slot>> slots;
    size_t cursor = 0;
  };

  // One EVALSHA (or EVAL) on its way, kept for NOSCRIPT and cluster redirections.
  struct Eval {
    const Script* script;
    std::string encoded;  // EVALSHA ...
    size_t tail;          // where numkeys starts in `encoded`
    size_t count;         // array length
    Clock::time_point deadline;
    Callback done;
  };

  bool cluster() const { return endpoint_->cluster; }
  bool sentinel() const { return !endpoint_->sentinels.empty(); }

  Node make_node(std::shared_ptr<const Endpoint> endpoint, int connections) {
    Node node{std::move(endpoint), {}, 0};
    for (int i = 0; i < connections; ++i) {
      node.slots.push_back(std::make_shared<Slot>(io_, node.endpoint));
      node.slots.back()->connect();
    }
    return node;
  }

  static void stop_node(Node& node) {
    for (auto& s : node.slots) s->stop();
  }

  // The node at host:port, connected to on first use (with the seed's password, database and TLS).
  size_t node_at(std::string_view host, uint16_t port) {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i].endpoint->host == host && nodes_[i].endpoint->port == port) return i;
    }
    auto ep = std::make_shared<Endpoint>(*endpoint_);
    ep->host = std::string(host);
    ep->port = port;
    nodes_.push_back(make_node(std::move(ep), connections_));
    return nodes_.size() - 1;
  }

  // The next connection of `node` that is up, round robin; null when none is.
  Link* pick(Node& node) {
    if (stopped_) return nullptr;
    size_t n = node.slots.size();
    for (size_t i = 0; i < n; ++i) {
      size_t k = node.cursor + i < n ? node.cursor + i : node.cursor + i - n;
      if (Link* link = node.slots[k]->up_link()) {
        node.cursor = k + 1 == n ? 0 : k + 1;
        return link;
      }
    }
    return nullptr;
  }

  // Sends `call` to `node`: EVALSHA, or EVAL after NOSCRIPT; preceded by ASKING on the same
  // connection when a slot is being migrated there (Redis Cluster spec, "ASK redirection").
  // False, with nothing sent, when no connection to the node is up.
  bool send(const std::shared_ptr<Eval>& call, size_t node, bool sha, bool asking, int redirects_left) {
    Link* link = node < nodes_.size() ? pick(nodes_[node]) : nullptr;
    if (!link) {
      // A node down may have been replaced by a promoted replica: the map (or the sentinels)
      // will say.
      if (cluster() || sentinel()) refresh();
      return false;
    }
    std::string& out = link->out();
    if (asking) {
      append_command(out, std::initializer_list<std::string_view>{"ASKING"});
      link->enqueue(call->deadline, [](Result) {});
    }
    if (sha) {
      out.append(call->encoded);
    } else {
      append_length(out, '*', call->count);
      append_bulk(out, "EVAL");
      append_bulk(out, call->script->body());
      out.append(std::string_view(call->encoded).substr(call->tail));
    }
    // Safe to capture `this`: a reply (rather than a failure) is delivered only while the client
    // is alive, since stopping it closes every link before returning.
    link->enqueue(call->deadline, [this, call, node, sha, asking, redirects_left](Result r) {
      auto* reply = std::get_if<Reply>(&r);
      if (!reply || !reply->is_error()) return call->done(std::move(r));
      std::string_view error = reply->str;
      // The server does not have the script (restarted, SCRIPT FLUSH): EVAL loads it, and every
      // later EVALSHA finds it again.
      if (sha && error.starts_with("NOSCRIPT")) return resend(call, node, false, asking, redirects_left);
      // A master demoted to a replica by a failover: the sentinels know the new one.
      if (sentinel() && error.starts_with("READONLY")) refresh();
      // MOVED / ASK <slot> <host>:<port>: the slot lives (for good / for now) on another node.
      bool moved = error.starts_with("MOVED ");
      if ((moved || error.starts_with("ASK ")) && redirects_left > 0 && cluster()) {
        if (auto target = redirect_target(error)) {
          size_t to = node_at(target->host, target->port);
          if (moved) {
            owner_[target->slot] = static_cast<uint16_t>(to);
            refresh();  // more slots than this one have probably moved
          }
          return resend(call, to, sha, !moved, redirects_left - 1);
        }
      }
      call->done(std::move(r));
    });
    return true;
  }

  // Sends again from a reply's handler, where the callback may run at once.
  void resend(const std::shared_ptr<Eval>& call, size_t node, bool sha, bool asking, int redirects_left) {
    if (Clock::now() >= call->deadline) return call->done(Failure::kTimeout);
    if (!send(call, node, sha, asking, redirects_left)) call->done(Failure::kDisconnected);
  }

  struct Redirect {
    size_t slot;
    std::string host;
    uint16_t port;
  };
  // "MOVED 3999 127.0.0.1:6381" (an IPv6 host keeps its colons: the port follows the last one).
  static std::optional<Redirect> redirect_target(std::string_view error) {
    auto first = error.find(' ');
    auto second = error.find(' ', first + 1);
    if (first == std::string_view::npos || second == std::string_view::npos) return std::nullopt;
    auto slot = parse_number(error.substr(first + 1, second - first - 1), kHashSlots - 1);
    std::string_view address = error.substr(second + 1);
    auto colon = address.rfind(':');
    if (!slot || colon == std::string_view::npos || colon == 0) return std::nullopt;
    auto port = parse_number(address.substr(colon + 1), 65535);
    if (!port || *port == 0) return std::nullopt;
    return Redirect{static_cast<size_t>(*slot), std::string(address.substr(0, colon)),
                    static_cast<uint16_t>(*port)};
  }

  // Learns where the data is: the map of hash slots (CLUSTER SLOTS, from any node that is up), or
  // the master's address (SENTINEL get-master-addr-by-name, from any sentinel that is up). Until
  // the first answer, tries every 100 ms; later, at most once a second, when a MOVED, a READONLY
  // or an unreachable node says the picture is stale.
  void refresh() {
    if (refreshing_ || stopped_) return;
    auto now = Clock::now();
    if (topology_known_ && now < last_refresh_ + std::chrono::seconds(1)) return;
    Link* link = nullptr;
    for (auto& node : sentinel() ? sentinels_ : nodes_) {
      if ((link = pick(node))) break;
    }
    if (!link) return retry_refresh();
    refreshing_ = true;
    last_refresh_ = now;
    if (sentinel()) {
      append_command(link->out(), std::initializer_list<std::string_view>{
                                      "SENTINEL", "get-master-addr-by-name", endpoint_->host});
    } else {
      append_command(link->out(), std::initializer_list<std::string_view>{"CLUSTER", "SLOTS"});
    }
    link->enqueue(now + std::chrono::seconds(1), [alive = alive_](Result r) {
      Impl* self = *alive;
      if (!self) return;
      self->refreshing_ = false;
      auto* reply = std::get_if<Reply>(&r);
      if (reply && (self->sentinel() ? self->load_master(*reply) : self->load_map(*reply))) {
        self->topology_known_ = true;
      } else if (!self->topology_known_) {
        self->retry_refresh();
      }
    });
  }

  void retry_refresh() {
    if (topology_known_ || stopped_) return;
    refresh_timer_.expires_after(std::chrono::milliseconds(100));
    refresh_timer_.async_wait([alive = alive_](boost::system::error_code ec) {
      if (!ec && *alive) (*alive)->refresh();
    });
  }

  // [ip, port]: the master now. A new address replaces the connections to the old one.
  bool load_master(const Reply& reply) {
    if (reply.type != Reply::Type::kArray || reply.elements.size() != 2 ||
        reply.elements[0].type != Reply::Type::kString || reply.elements[1].type != Reply::Type::kString)
      return false;  // nil: the sentinels do not know this master name
    const std::string& host = reply.elements[0].str;
    auto port = parse_number(reply.elements[1].str, 65535);
    if (host.empty() || !port || *port == 0) return false;
    if (!nodes_.empty() && nodes_[0].endpoint->host == host && nodes_[0].endpoint->port == *port) return true;
    if (!nodes_.empty()) {
      spdlog::warn("redis: sentinels name {}:{} as master {} now", host, *port, endpoint_->host);
      stop_node(nodes_[0]);
      nodes_.clear();
    }
    node_at(host, static_cast<uint16_t>(*port));
    return true;
  }

  // [[start, end, [host, port, id, ...], replicas...], ...]: masters only (writes go there).
  bool load_map(const Reply& reply) {
    if (reply.type != Reply::Type::kArray || reply.elements.empty()) return false;
    std::vector<uint16_t> owner(kHashSlots, 0);
    for (const auto& range : reply.elements) {
      if (range.type != Reply::Type::kArray || range.elements.size() < 3) return false;
      const auto& master = range.elements[2];
      if (range.elements[0].type != Reply::Type::kInteger || range.elements[1].type != Reply::Type::kInteger ||
          master.type != Reply::Type::kArray || master.elements.size() < 2 ||
          master.elements[0].type != Reply::Type::kString || master.elements[1].type != Reply::Type::kInteger)
        return false;
      int64_t first = range.elements[0].integer, last = range.elements[1].integer;
      int64_t port = master.elements[1].integer;
      if (first < 0 || last >= static_cast<int64_t>(kHashSlots) || first > last || port <= 0 || port > 65535)
        return false;
      // An empty or unknown host ("?"): the node has not learnt its address; take the URL's host.
      std::string_view host = master.elements[0].str;
      if (host.empty() || host == "?") host = endpoint_->host;
      size_t node = node_at(host, static_cast<uint16_t>(port));
      for (int64_t slot = first; slot <= last; ++slot) owner[slot] = static_cast<uint16_t>(node);
    }
    owner_ = std::move(owner);
    return true;
  }

  asio::io_context& io_;
  std::shared_ptr<const Endpoint> endpoint_;  // the URL's
  int connections_;
  // [0]: the URL's server (the seed, in cluster mode; the master the sentinels name, in sentinel
  // mode, none until they named it).
  std::vector<Node> nodes_;
  std::vector<Node> sentinels_;   // sentinel mode
  std::vector<uint16_t> owner_;   // cluster mode: hash slot -> index in nodes_
  bool topology_known_ = false;   // cluster: the slot map; sentinel: the master's address
  bool refreshing_ = false;
  Clock::time_point last_refresh_{};
  net::Timer refresh_timer_;
  bool stopped_ = false;
  std::shared_ptr<Impl*> alive_ = std::make_shared<Impl*>(this);  // null once stopped
};

Client::Client(boost::asio::io_context& io, Endpoint endpoint, int connections)
    : impl_(std::make_unique<Impl>(io, std::move(endpoint), connections)) {}

Client::~Client() = default;

void Client::command(std::span<const std::string_view> args, std::chrono::milliseconds timeout,
                     Callback done) {
  impl_->command(args, Clock::now() + timeout, std::move(done));
}

void Client::eval(const Script& script, std::span<const std::string_view> keys,
                  std::span<const std::string_view> args, std::chrono::milliseconds timeout,
                  Callback done) {
  impl_->eval(script, keys, args, Clock::now() + timeout, std::move(done));
}

bool Client::connected() const { return impl_->connected(); }

void Client::stop() { impl_->stop(); }

}  // namespace gatehouse::redis
