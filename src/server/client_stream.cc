#include "server/client_stream.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <climits>
#include <utility>

#include "server/send.h"
#include "tls/server_context.h"

namespace gatehouse::server {
namespace {

// Head and body at most this long together go out as one TLS record (one copy, one MAC).
constexpr size_t kJoinBelow = 16 * 1024;

}  // namespace

ClientStream::~ClientStream() {
  if (ssl_) SSL_free(ssl_);
}

void ClientStream::start_tls(std::shared_ptr<const tls::ServerContext> ctx) {
  ctx_ = std::move(ctx);
  ssl_ = ctx_->new_session();
  SSL_set_fd(ssl_, socket_.native_handle());
  SSL_set_accept_state(ssl_);
}

ClientStream::Wait ClientStream::after_error(int ret) {
  switch (SSL_get_error(ssl_, ret)) {
    case SSL_ERROR_WANT_READ: return Wait::kRead;
    case SSL_ERROR_WANT_WRITE: return Wait::kWrite;
    default:
      ERR_clear_error();  // the queue is per thread: leave it empty for the next connection
      return Wait::kBroken;
  }
}

net::Task<bool> ClientStream::handshake() {
  while (true) {
    int r = SSL_do_handshake(ssl_);
    if (r == 1) co_return true;
    Wait w = after_error(r);
    if (w == Wait::kBroken) co_return false;
    auto [ec] = co_await socket_.async_wait(
        w == Wait::kRead ? net::tcp::socket::wait_read : net::tcp::socket::wait_write, net::use_task);
    if (ec) co_return false;
  }
}

net::Task<std::tuple<boost::system::error_code, size_t>> ClientStream::read_some(
    net::asio::mutable_buffer b) {
  if (!ssl_) co_return co_await socket_.async_read_some(b, net::use_task);
  while (true) {
    int n = SSL_read(ssl_, b.data(), static_cast<int>(std::min<size_t>(b.size(), INT_MAX)));
    if (n > 0) co_return std::tuple{boost::system::error_code(), static_cast<size_t>(n)};
    if (SSL_get_error(ssl_, n) == SSL_ERROR_ZERO_RETURN)  // close_notify
      co_return std::tuple{boost::system::error_code(net::asio::error::eof), size_t{0}};
    Wait w = after_error(n);
    if (w == Wait::kBroken)
      co_return std::tuple{boost::system::error_code(net::asio::error::connection_reset), size_t{0}};
    auto [ec] = co_await socket_.async_wait(
        w == Wait::kRead ? net::tcp::socket::wait_read : net::tcp::socket::wait_write, net::use_task);
    if (ec) co_return std::tuple{ec, size_t{0}};
  }
}

// Writes what goes now. After a WANT_WRITE, OpenSSL needs the same bytes offered again, which
// the callers do: they keep the unsent rest and offer it next (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
// lets its address differ).
bool ClientStream::tls_write_now(std::string_view& s) {
  while (!s.empty()) {
    int n = SSL_write(ssl_, s.data(), static_cast<int>(std::min<size_t>(s.size(), INT_MAX)));
    if (n > 0) {
      s.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    return after_error(n) != Wait::kBroken;
  }
  return true;
}

bool ClientStream::send_now(std::string_view& a, std::string_view& b) {
  if (!ssl_) return server::send_now(socket_, a, b);
  joined_rest_ = {};
  if (!a.empty() && !b.empty() && a.size() + b.size() <= kJoinBelow) {
    small_.assign(a).append(b);
    std::string_view joined = small_;
    bool ok = tls_write_now(joined);
    // What is left must be offered again as one buffer (send_rest does); a and b say how much.
    joined_rest_ = joined;
    size_t sent = small_.size() - joined.size();
    size_t from_a = std::min(sent, a.size());
    a.remove_prefix(from_a);
    b.remove_prefix(sent - from_a);
    return ok;
  }
  return tls_write_now(a) && (!a.empty() || tls_write_now(b));
}

net::Task<bool> ClientStream::tls_write(std::string_view s, uint64_t* counter) {
  while (!s.empty()) {
    int n = SSL_write(ssl_, s.data(), static_cast<int>(std::min<size_t>(s.size(), INT_MAX)));
    if (n > 0) {
      s.remove_prefix(static_cast<size_t>(n));
      if (counter) *counter += static_cast<uint64_t>(n);
      continue;
    }
    Wait w = after_error(n);
    if (w == Wait::kBroken) co_return false;
    auto [ec] = co_await socket_.async_wait(
        w == Wait::kRead ? net::tcp::socket::wait_read : net::tcp::socket::wait_write, net::use_task);
    if (ec) co_return false;
  }
  co_return true;
}

net::Task<bool> ClientStream::send_rest(std::string_view a, std::string_view b, uint64_t* counter) {
  if (!ssl_) co_return co_await server::send_rest(socket_, a, b, counter);
  if (!joined_rest_.empty() && joined_rest_.size() == a.size() + b.size()) {
    std::string_view rest = std::exchange(joined_rest_, {});
    co_return co_await tls_write(rest, counter);
  }
  joined_rest_ = {};
  co_return co_await tls_write(a, counter) && co_await tls_write(b, counter);
}

net::Task<bool> ClientStream::send_all(const std::vector<net::asio::const_buffer>& bufs,
                                       uint64_t* counter) {
  if (!ssl_) {
    auto [ec, n] = co_await net::asio::async_write(socket_, bufs, net::use_task);
    if (counter) *counter += n;
    co_return !ec;
  }
  for (const auto& buf : bufs) {
    if (!co_await tls_write({static_cast<const char*>(buf.data()), buf.size()}, counter)) co_return false;
  }
  co_return true;
}

void ClientStream::shutdown_send() {
  if (ssl_) SSL_shutdown(ssl_);  // close_notify, best effort: the socket is non-blocking
  boost::system::error_code ec;
  socket_.shutdown(net::tcp::socket::shutdown_send, ec);
}

void ClientStream::close() {
  boost::system::error_code ec;
  if (ssl_ && SSL_is_init_finished(ssl_) && !(SSL_get_shutdown(ssl_) & SSL_SENT_SHUTDOWN))
    SSL_shutdown(ssl_);
  ERR_clear_error();
  socket_.shutdown(net::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
}

}  // namespace gatehouse::server
