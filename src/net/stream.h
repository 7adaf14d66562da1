// One side of a proxied exchange: a TCP socket, with TLS on top when the listener terminates it
// (server side) or the upstream is configured with `tls:` (client side).
//
// TLS runs OpenSSL directly on the non-blocking socket (SSL_set_fd) and waits for readiness with
// Asio only when OpenSSL says it must (SSL_ERROR_WANT_READ / WANT_WRITE): no extra buffering
// layer and no copy between Asio and OpenSSL. Plain TCP takes exactly the paths it took before
// there was TLS: read_some, send_now and send_rest go straight to Asio and send.h (inline, no
// extra coroutine frame, no virtual call).
//
// Movable, so that pools keep idle streams by value: the SSL* knows only the descriptor number,
// which moving the socket does not change, and nothing in OpenSSL points back at the Stream.
// Not movable while an operation is pending. Used on one worker's thread only.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "net/asio.h"
#include "net/draining_read.h"
#include "net/send.h"
#include "tls/client_context.h"

struct ssl_st;

namespace gatehouse::tls {
class ServerContext;
}

namespace gatehouse::net {

class Stream {
 public:
  explicit Stream(net::Socket socket) : socket_(std::move(socket)) {}
  explicit Stream(const net::Executor& ex) : socket_(ex) {}
  Stream(Stream&& o) noexcept
      : socket_(std::move(o.socket_)),
        ssl_(std::exchange(o.ssl_, nullptr)),
        server_ctx_(std::move(o.server_ctx_)),
        small_(std::move(o.small_)),
        joined_left_(std::exchange(o.joined_left_, 0)),
        answers_(o.answers_),
        sent_(o.sent_) {}
  Stream& operator=(Stream&&) = delete;
  Stream(const Stream&) = delete;
  ~Stream();

  net::Socket& socket() { return socket_; }
  bool tls() const { return ssl_ != nullptr; }

  // Makes this the server side of a TLS connection with a listener's context.
  void start_tls_server(std::shared_ptr<const tls::ServerContext> ctx);
  // Makes this the client side of a TLS connection to `server_name` (SNI and the name the
  // certificate must carry), resuming `resume` when given. False when no session could be made.
  bool start_tls_client(const tls::ClientContext& ctx, std::string_view server_name,
                        tls::SessionPtr resume);
  // The TLS handshake, for either side; false when it failed or the socket was closed, with the
  // reason in *why when given (a certificate that did not verify, an alert, a closed connection).
  net::Task<bool> handshake(std::string* why = nullptr);
  // Client side, after the handshake: the session to offer on the next connection to the same
  // place, when the server gave a resumable one (TLS 1.3 tickets arrive after the handshake,
  // so ask once a response has been read). Null otherwise.
  tls::SessionPtr resumable_session() const;
  bool session_reused() const;
  // After the handshake: the protocol ALPN chose ("h2", "http/1.1"), or empty when none was.
  std::string_view alpn() const;
  // After the handshake: the TLS version ("TLSv1.3"); empty without TLS.
  std::string_view tls_version() const;

  // The peer speaks when spoken to, or resets (an upstream): after a send, the next read waits for
  // epoll without trying first when the read before it emptied the socket (draining_read.h).
  void expect_answers() { answers_ = true; }

  net::Task<std::tuple<boost::system::error_code, size_t>> read_some(net::asio::mutable_buffer b) {
    // Not a coroutine: plain TCP hands back Asio's own operation, as direct as calling it.
    if (ssl_) return tls_read_some(b);
    if (!answers_) return socket_.async_read_some(b, net::use_task);
    if (std::exchange(sent_, false)) {
      // An answer (or a reset) to what was sent raises an edge, whatever came before.
      return socket_.async_read_some(net::DrainingBuffer(b), net::use_task);
    }
    return read_more(b);
  }
  // Sends as much of a then b as goes out now; a and b keep what is left. False: broken.
  bool send_now(std::string_view& a, std::string_view& b) {
    sent_ = true;
    return ssl_ ? tls_send_now(a, b) : net::send_now(socket_, a, b);
  }
  // Sends all of a then b, waiting as needed; adds what was sent to *counter. False: broken.
  net::Task<bool> send_rest(std::string_view a, std::string_view b, uint64_t* counter) {
    sent_ = true;
    if (!ssl_) return net::send_rest(socket_, a, b, counter);
    return tls_send_rest(a, b, counter);
  }
  // Sends every buffer in order (writev for TCP).
  net::Task<bool> send_all(const std::vector<net::asio::const_buffer>& bufs, uint64_t* counter);

  // For a TLS connection that sat idle in a pool: true when it is open and the peer sent nothing
  // but handshake messages, which are consumed here (TLS 1.3 session tickets and key updates,
  // RFC 8446 4.6, may arrive at any time). Application data, close_notify, EOF: false.
  bool tls_idle_ok();

  void shutdown_send();  // TLS: close_notify first
  // Closes for good (TCP shutdown first, so a peer blocked on us wakes up). TLS: close_notify
  // first when the session is established and the socket still open.
  void close();
  // Closes without the TCP shutdown: for upstream connections, where nobody waits on the
  // other side. TLS still says close_notify (RFC 8446 6.1) when it can.
  void drop();
  // Closes abortively: a TCP reset (SO_LINGER 0), no close_notify, bytes not yet sent dropped.
  // For a response cut short whose end a close would otherwise mark (a close-delimited body):
  // the peer must see an error, not an end (RFC 9112 8).
  void reset();

 private:
  enum class Wait { kNone, kRead, kWrite, kBroken };
  Wait after_error(int ret);  // what SSL_get_error says to do next
  net::Task<std::tuple<boost::system::error_code, size_t>> tls_read_some(
      net::asio::mutable_buffer b);
  // A read with nothing sent since the last: tried at once (bytes, or an end that came with the
  // last ones, which raises no new edge), then left to epoll only if the socket is empty.
  net::Task<std::tuple<boost::system::error_code, size_t>> read_more(net::asio::mutable_buffer b);
  bool tls_send_now(std::string_view& a, std::string_view& b);
  net::Task<bool> tls_send_rest(std::string_view a, std::string_view b, uint64_t* counter);
  bool tls_write_now(std::string_view& s);
  net::Task<bool> tls_write(std::string_view s, uint64_t* counter);
  void tls_close_notify();

  net::Socket socket_;
  ssl_st* ssl_ = nullptr;
  std::shared_ptr<const tls::ServerContext> server_ctx_;  // outlives the session's callbacks
  std::string small_;       // a short head and body joined into one TLS record
  size_t joined_left_ = 0;  // the tail of small_ that send_now left unsent, for send_rest
  bool answers_ = false;    // expect_answers()
  bool sent_ = false;       // something was sent since the last read began
};

}  // namespace gatehouse::net
