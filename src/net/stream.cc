#include "net/stream.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

#include "tls/server_context.h"

namespace gatehouse::net {
namespace {

// Head and body at most this long together go out as one TLS record (one copy, one MAC).
constexpr size_t kJoinBelow = 16 * 1024;

// Why a handshake failed, in words for the 502 message and the log. Read before the error queue
// is cleared.
std::string handshake_failure(ssl_st* ssl, int error, int saved_errno) {
  if ((SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) && SSL_get_verify_result(ssl) != X509_V_OK) {
    return std::string("certificate verify failed: ") +
           X509_verify_cert_error_string(SSL_get_verify_result(ssl));
  }
  if (unsigned long e = ERR_peek_last_error()) {
    // What a plain-HTTP (or other non-TLS) peer answering a ClientHello looks like.
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER)
      return "the peer does not speak TLS (wrong version number)";
    if (const char* reason = ERR_reason_error_string(e)) return reason;
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
  }
  if (error == SSL_ERROR_ZERO_RETURN) return "the peer closed the connection (close_notify)";
  if (error == SSL_ERROR_SYSCALL && saved_errno) return std::strerror(saved_errno);
  return "the connection closed during the handshake";
}

}  // namespace

Stream::~Stream() {
  if (ssl_) SSL_free(ssl_);
}

void Stream::start_tls_server(std::shared_ptr<const tls::ServerContext> ctx) {
  server_ctx_ = std::move(ctx);
  ssl_ = server_ctx_->new_session();
  SSL_set_fd(ssl_, socket_.native_handle());
  SSL_set_accept_state(ssl_);
}

bool Stream::start_tls_client(const tls::ClientContext& ctx, std::string_view server_name,
                              tls::SessionPtr resume) {
  ssl_ = ctx.new_session(server_name);
  if (!ssl_) return false;
  SSL_set_fd(ssl_, socket_.native_handle());
  // A session for another name or context is never offered: the pool that kept it is per target,
  // name and context identity. SSL_set_session takes its own reference.
  if (resume) SSL_set_session(ssl_, resume.get());
  return true;
}

Stream::Wait Stream::after_error(int ret) {
  switch (SSL_get_error(ssl_, ret)) {
    case SSL_ERROR_WANT_READ:
      return Wait::kRead;
    case SSL_ERROR_WANT_WRITE:
      return Wait::kWrite;
    default:
      ERR_clear_error();  // the queue is per thread: leave it empty for the next connection
      return Wait::kBroken;
  }
}

net::Task<bool> Stream::handshake(std::string* why) {
  while (true) {
    errno = 0;
    int r = SSL_do_handshake(ssl_);
    if (r == 1) co_return true;
    int saved_errno = errno;
    int error = SSL_get_error(ssl_, r);
    if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) {
      if (why) *why = handshake_failure(ssl_, error, saved_errno);
      ERR_clear_error();
      co_return false;
    }
    auto [ec] = co_await socket_.async_wait(
        error == SSL_ERROR_WANT_READ ? net::tcp::socket::wait_read : net::tcp::socket::wait_write,
        net::use_task);
    if (ec) {
      if (why) *why = ec.message();
      co_return false;
    }
  }
}

tls::SessionPtr Stream::resumable_session() const {
  if (!ssl_) return nullptr;
  tls::SessionPtr s(SSL_get1_session(ssl_));
  if (s && !SSL_SESSION_is_resumable(s.get())) s.reset();
  return s;
}

bool Stream::session_reused() const { return ssl_ && SSL_session_reused(ssl_) == 1; }

std::string_view Stream::alpn() const {
  if (!ssl_) return {};
  const unsigned char* proto = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &proto, &len);
  return {reinterpret_cast<const char*>(proto), len};
}

std::string_view Stream::tls_version() const {
  return ssl_ ? std::string_view(SSL_get_version(ssl_)) : std::string_view();  // a static string
}

net::Task<std::tuple<boost::system::error_code, size_t>> Stream::tls_read_some(
    net::asio::mutable_buffer b) {
  while (true) {
    int n = SSL_read(ssl_, b.data(), static_cast<int>(std::min<size_t>(b.size(), INT_MAX)));
    if (n > 0) co_return std::tuple{boost::system::error_code(), static_cast<size_t>(n)};
    if (SSL_get_error(ssl_, n) == SSL_ERROR_ZERO_RETURN)  // close_notify
      co_return std::tuple{boost::system::error_code(net::asio::error::eof), size_t{0}};
    // An EOF without close_notify lands here too (OpenSSL 3: "unexpected eof"): a reset, not an
    // end, so a close-delimited body cut short by an attacker is not taken as complete.
    Wait w = after_error(n);
    if (w == Wait::kBroken)
      co_return std::tuple{boost::system::error_code(net::asio::error::connection_reset),
                           size_t{0}};
    auto [ec] = co_await socket_.async_wait(
        w == Wait::kRead ? net::tcp::socket::wait_read : net::tcp::socket::wait_write,
        net::use_task);
    if (ec) co_return std::tuple{ec, size_t{0}};
  }
}

bool Stream::tls_idle_ok() {
  char byte;
  int n = SSL_peek(ssl_, &byte, 1);
  if (n > 0) return false;  // bytes nobody asked for: they would be taken for the next response
  int error = SSL_get_error(ssl_, n);
  ERR_clear_error();
  return error == SSL_ERROR_WANT_READ;
}

// Writes what goes now. After a WANT_WRITE, OpenSSL needs the same bytes offered again, which
// the callers do: they keep the unsent rest and offer it next (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
// lets its address differ).
bool Stream::tls_write_now(std::string_view& s) {
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

bool Stream::tls_send_now(std::string_view& a, std::string_view& b) {
  joined_left_ = 0;
  if (!a.empty() && !b.empty() && a.size() + b.size() <= kJoinBelow) {
    small_.assign(a).append(b);
    std::string_view joined = small_;
    bool ok = tls_write_now(joined);
    // What is left must be offered again as one buffer (send_rest does); a and b say how much.
    joined_left_ = joined.size();
    size_t sent = small_.size() - joined.size();
    size_t from_a = std::min(sent, a.size());
    a.remove_prefix(from_a);
    b.remove_prefix(sent - from_a);
    return ok;
  }
  return tls_write_now(a) && (!a.empty() || tls_write_now(b));
}

net::Task<bool> Stream::tls_write(std::string_view s, uint64_t* counter) {
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
        w == Wait::kRead ? net::tcp::socket::wait_read : net::tcp::socket::wait_write,
        net::use_task);
    if (ec) co_return false;
  }
  co_return true;
}

net::Task<bool> Stream::tls_send_rest(std::string_view a, std::string_view b, uint64_t* counter) {
  if (joined_left_ != 0 && joined_left_ == a.size() + b.size()) {
    std::string_view rest = std::string_view(small_).substr(small_.size() - joined_left_);
    joined_left_ = 0;
    co_return co_await tls_write(rest, counter);
  }
  joined_left_ = 0;
  co_return co_await tls_write(a, counter) && co_await tls_write(b, counter);
}

net::Task<std::tuple<boost::system::error_code, size_t>> Stream::read_more(
    net::asio::mutable_buffer b) {
  boost::system::error_code ec;
  const size_t n = socket_.read_some(b, ec);  // the socket is non-blocking
  std::tuple<boost::system::error_code, size_t> read{ec, n};
  if (ec == net::asio::error::would_block || ec == net::asio::error::try_again) {
    read = co_await socket_.async_read_some(net::DrainingBuffer(b), net::use_task);
  }
  co_return read;
}

net::Task<bool> Stream::send_all(const std::vector<net::asio::const_buffer>& bufs,
                                 uint64_t* counter) {
  sent_ = true;
  if (!ssl_) {
    auto [ec, n] = co_await net::asio::async_write(socket_, bufs, net::use_task);
    if (counter) *counter += n;
    co_return !ec;
  }
  for (const auto& buf : bufs) {
    std::string_view s(static_cast<const char*>(buf.data()), buf.size());
    if (!co_await tls_write(s, counter)) co_return false;
  }
  co_return true;
}

// Best effort: the socket is non-blocking, and nobody waits for the peer's answer. Only on a
// socket still open: once closed (by a timer, say), its descriptor number may already belong to
// another connection of this thread.
void Stream::tls_close_notify() {
  if (ssl_ && socket_.is_open() && SSL_is_init_finished(ssl_) &&
      !(SSL_get_shutdown(ssl_) & SSL_SENT_SHUTDOWN))
    SSL_shutdown(ssl_);
  ERR_clear_error();
}

void Stream::shutdown_send() {
  if (ssl_ && socket_.is_open()) SSL_shutdown(ssl_);  // close_notify
  boost::system::error_code ec;
  socket_.shutdown(net::tcp::socket::shutdown_send, ec);
}

void Stream::close() {
  boost::system::error_code ec;
  if (ssl_) tls_close_notify();
  socket_.shutdown(net::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
}

void Stream::drop() {
  if (ssl_) tls_close_notify();
  boost::system::error_code ec;
  socket_.close(ec);
}

void Stream::reset() {
  boost::system::error_code ec;
  socket_.set_option(net::asio::socket_base::linger(true, 0), ec);
  socket_.close(ec);
}

}  // namespace gatehouse::net
