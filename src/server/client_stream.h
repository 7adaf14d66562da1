// The client side of a connection: a TCP socket, with TLS on top when the listener terminates it.
//
// TLS runs OpenSSL directly on the non-blocking socket (SSL_set_fd) and waits for readiness with
// Asio only when OpenSSL says it must (SSL_ERROR_WANT_READ / WANT_WRITE): no extra buffering
// layer and no copy between Asio and OpenSSL. Plain TCP takes the same paths as before: one
// synchronous send first (send.h), reads through Asio.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "server/asio.h"

struct ssl_st;

namespace gatehouse::tls {
class ServerContext;
}

namespace gatehouse::server {

class ClientStream {
 public:
  explicit ClientStream(net::Socket socket) : socket_(std::move(socket)) {}
  ~ClientStream();
  ClientStream(const ClientStream&) = delete;
  ClientStream& operator=(const ClientStream&) = delete;

  net::Socket& socket() { return socket_; }
  bool tls() const { return ssl_ != nullptr; }

  // Makes this a TLS connection with the listener's context; handshake() must follow.
  void start_tls(std::shared_ptr<const tls::ServerContext> ctx);
  // The server side of the TLS handshake; false when it failed or the socket was closed.
  net::Task<bool> handshake();

  net::Task<std::tuple<boost::system::error_code, size_t>> read_some(net::asio::mutable_buffer b);
  // Sends as much of a then b as goes out now; a and b keep what is left. False: broken.
  bool send_now(std::string_view& a, std::string_view& b);
  // Sends all of a then b, waiting as needed; adds what was sent to *counter. False: broken.
  net::Task<bool> send_rest(std::string_view a, std::string_view b, uint64_t* counter);
  // Sends every buffer in order (writev for TCP).
  net::Task<bool> send_all(const std::vector<net::asio::const_buffer>& bufs, uint64_t* counter);

  void shutdown_send();  // TLS: close_notify first
  void close();

 private:
  enum class Wait { kNone, kRead, kWrite, kBroken };
  Wait after_error(int ret);  // what SSL_get_error says to do next
  bool tls_write_now(std::string_view& s);
  net::Task<bool> tls_write(std::string_view s, uint64_t* counter);

  net::Socket socket_;
  ssl_st* ssl_ = nullptr;
  std::shared_ptr<const tls::ServerContext> ctx_;  // outlives the session's callbacks
  std::string small_;  // a short head and body joined into one TLS record
  std::string_view joined_rest_;  // in small_: what send_now left of it, for send_rest
};

}  // namespace gatehouse::server
