// Loopback helpers for the upstream tests (pool, health, client): a connected TCP pair made in
// process, a tiny scripted HTTP/1.1 server on its own thread (plain blocking sockets, polled so
// that it stops promptly), a port nobody listens on, and a bounded io_context loop that waits for
// a condition instead of sleeping.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "net/asio.h"
#include "net/stream.h"

namespace gatehouse::test {

// Runs `io` until pred() holds or `limit` passes; true when pred() held.
template <class Pred>
bool run_until(net::asio::io_context& io, Pred pred,
               std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (io.stopped()) io.restart();
    // Out of work (waiting on the server's thread): poll again shortly instead of spinning.
    if (io.run_one_for(std::chrono::milliseconds(10)) == 0 && io.stopped())
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// Waits until fd is readable (data, EOF or an error), at most `limit`.
inline bool wait_readable(int fd,
                          std::chrono::milliseconds limit = std::chrono::milliseconds(2000)) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(limit.count())) == 1;
}

// True when the peer of fd closed it: readable and recv() says EOF (or a reset).
inline bool peer_closed(int fd, std::chrono::milliseconds limit = std::chrono::milliseconds(2000)) {
  if (!wait_readable(fd, limit)) return false;
  char c;
  ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

// A port on 127.0.0.1 that nobody listens on now: bound, read, closed.
inline uint16_t closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// A connected TCP pair on loopback: the client side as a net::Stream bound to `io` (as the pool
// keeps them), the server side as a plain socket.
struct TcpPair {
  net::Stream client;
  net::Socket server;
  uint16_t client_port() { return client.socket().local_endpoint().port(); }
  int server_fd() { return server.native_handle(); }
};

inline TcpPair tcp_pair(net::asio::io_context& io) {
  net::Acceptor acceptor(io.get_executor(),
                         net::tcp::endpoint(net::asio::ip::address_v4::loopback(), 0));
  net::Socket client(io.get_executor());
  client.connect(acceptor.local_endpoint());
  net::Socket server(io.get_executor());
  acceptor.accept(server);
  return TcpPair{net::Stream(std::move(client)), std::move(server)};
}

// A scripted HTTP/1.1 upstream on 127.0.0.1:<ephemeral>. Each connection gets its own thread,
// which reads request after request (head, then a Content-Length body) and asks the handler what
// to do with each. Everything it blocks on is polled in short slices, so the destructor stops it
// promptly whatever the clients do.
class HttpServer {
 public:
  struct Request {
    std::string head;  // request line and headers, up to and including the blank line
    std::string body;
    int connection = 0;  // 1 for the first connection accepted, ...
    int number = 0;      // 1 for the first request of the whole server, ...
  };
  enum class Then {
    kKeepOpen,  // read the next request on this connection
    kClose,     // close the connection after the reply
    kHang,      // hold the connection open, read nothing more, until the peer closes or stop
  };
  struct Reply {
    std::string bytes;
    Then then = Then::kKeepOpen;
  };
  using Handler = std::function<Reply(const Request&)>;

  // A complete response with a Content-Length body; "Connection: close" when close.
  static Reply respond(int status, std::string body = "", bool close = false) {
    std::string bytes = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) +
                        "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
                        (close ? "Connection: close\r\n" : "") + "\r\n" + body;
    return Reply{std::move(bytes), close ? Then::kClose : Then::kKeepOpen};
  }
  static Reply hang() { return Reply{"", Then::kHang}; }
  static Reply close_unanswered() { return Reply{"", Then::kClose}; }

  explicit HttpServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(listen_fd_, 64);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~HttpServer() {
    stop_ = true;
    acceptor_.join();
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mutex_);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
    ::close(listen_fd_);
  }
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int accepted() const { return accepted_.load(); }
  int requests() const { return requests_.load(); }
  int closed() const { return closed_.load(); }  // connections whose thread has ended
  std::vector<Request> received() const {
    std::lock_guard lock(mutex_);
    return received_;
  }

 private:
  static std::string reason(int status) {
    switch (status) {
      case 200:
        return "OK";
      case 204:
        return "No Content";
      case 302:
        return "Found";
      case 500:
        return "Internal Server Error";
      case 502:
        return "Bad Gateway";
      case 503:
        return "Service Unavailable";
      default:
        return "Status";
    }
  }

  // Waits for fd to be readable in slices; false when stopping.
  bool wait_in(int fd) {
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      int r = ::poll(&p, 1, 20);
      if (r > 0) return true;
      if (r < 0 && errno != EINTR) return false;
    }
    return false;
  }

  void accept_loop() {
    while (wait_in(listen_fd_)) {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      int n = ++accepted_;
      std::lock_guard lock(mutex_);
      threads_.emplace_back([this, fd, n] {
        serve(fd, n);
        ::close(fd);
        ++closed_;
      });
    }
  }

  // Appends what the peer sends next to buf. False: EOF, an error, or stopping.
  bool read_more(int fd, std::string& buf) {
    if (!wait_in(fd)) return false;
    char chunk[4096];
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buf.append(chunk, static_cast<size_t>(n));
    return true;
  }

  static size_t content_length(const std::string& head) {
    std::string lower;
    for (char c : head)
      lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    auto at = lower.find("\r\ncontent-length:");
    if (at == std::string::npos) return 0;
    return std::stoul(lower.substr(at + 17));
  }

  void serve(int fd, int connection) {
    std::string buf;
    while (true) {
      size_t end;
      while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
        if (!read_more(fd, buf)) return;
      }
      Request req;
      req.head = buf.substr(0, end + 4);
      buf.erase(0, end + 4);
      size_t length = content_length(req.head);
      while (buf.size() < length) {
        if (!read_more(fd, buf)) return;
      }
      req.body = buf.substr(0, length);
      buf.erase(0, length);
      req.connection = connection;
      req.number = ++requests_;
      {
        std::lock_guard lock(mutex_);
        received_.push_back(req);
      }
      Reply reply = handler_(req);
      size_t sent = 0;
      while (sent < reply.bytes.size()) {
        ssize_t n = ::send(fd, reply.bytes.data() + sent, reply.bytes.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return;
        sent += static_cast<size_t>(n);
      }
      if (reply.then == Then::kClose) return;
      if (reply.then == Then::kHang) {
        std::string ignored;
        while (read_more(fd, ignored)) ignored.clear();
        return;
      }
    }
  }

  Handler handler_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0}, requests_{0}, closed_{0};
  mutable std::mutex mutex_;
  std::vector<Request> received_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace gatehouse::test
