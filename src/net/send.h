// Writing with no trip through the reactor when the socket takes everything at once (nearly always
// for heads and small bodies): one sendmsg on the non-blocking socket, and only what is left is
// handed to async_write. Saves a posted completion and a coroutine resumption per write.
#pragma once

#include <array>
#include <string_view>

#include "net/asio.h"

namespace gatehouse::net {

// Sends as much of a then b as the socket takes now; on return a and b hold what is left.
// Returns false on a hard error (the connection is broken).
inline bool send_now(net::Socket& s, std::string_view& a, std::string_view& b) {
  boost::system::error_code ec;
  size_t n;
  if (b.empty()) {  // a head alone (nearly every request): send(), no iovec array to copy in
    n = s.write_some(net::asio::buffer(a.data(), a.size()), ec);
  } else {
    std::array<net::asio::const_buffer, 2> bufs{net::asio::buffer(a.data(), a.size()),
                                                net::asio::buffer(b.data(), b.size())};
    n = s.write_some(bufs, ec);
  }
  if (ec && ec != net::asio::error::would_block && ec != net::asio::error::try_again) return false;
  size_t from_a = std::min(n, a.size());
  a.remove_prefix(from_a);
  b.remove_prefix(n - from_a);
  return true;
}

// Sends a and b completely: synchronously when possible, else waiting for the socket.
// Adds the bytes sent to *counter when given. Returns false when the connection broke.
inline net::Task<bool> send_rest(net::Socket& s, std::string_view a, std::string_view b,
                                 uint64_t* counter) {
  std::array<net::asio::const_buffer, 2> bufs{net::asio::buffer(a.data(), a.size()),
                                              net::asio::buffer(b.data(), b.size())};
  auto [ec, n] = co_await net::asio::async_write(s, bufs, net::use_task);
  if (counter) *counter += n;
  co_return !ec;
}

}  // namespace gatehouse::net
